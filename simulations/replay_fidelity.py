"""How faithful SMD's replay is (docs/design.md#smd), measured after a run against the sites' real
data, which the simulation can regenerate (a deployment could not: this is an instrument of
the simulator, not part of the federation).

- recognisability: a small MONAI classifier trained on the real training images of every
  learned site tells the site (and, for classification tasks, another tells the class) of
  real test images, of held-out real training images and of replay; replay accuracy near the
  held-out training images' means site and class survive generation. The held-out training
  images are the reference because they come from the distribution the generator learned:
  where a task's test split is drawn otherwise (debiasing's is bias-balanced, its training
  split bias-aligned), the test accuracy measures that shift, not the generator;
- per-site statistics of replay vs real: intensity mean and standard deviation, and for
  segmentation the mask's share of the image and the organ-to-tissue contrast (the mean
  intensity inside the mask minus outside: its sign differs between scanners, so it shows
  whether generated masks sit on generated organs).
"""

import itertools
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.nets import Classifier
from torch.utils.data import TensorDataset

from server.scenario import Scenario
from server.smd import load_generator
from sites import seeding
from sites.diffusion import sample
from sites.tasks import Task

from .replay_report import image_channels

CLASSIFIER_STEPS = 150
CLASSIFIER_BATCH = 32


def _hold_out(data: TensorDataset, n: int, seed: int) -> tuple[TensorDataset, TensorDataset]:
    """``data`` split at random into the rest and ``n`` held-out samples (at most a quarter)."""
    n = min(n, len(data) // 4)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return TensorDataset(*data[order[n:]]), TensorDataset(*data[order[:n]])


def _site_labels(encoded: list[tuple[torch.Tensor, Any]]) -> torch.Tensor:
    """The k-th site's index for each of its samples (``encoded``: each site's images and classes)."""
    return torch.cat([torch.full((len(x),), k) for k, (x, _) in enumerate(encoded)])


def _train_classifier(x: torch.Tensor, y: torch.Tensor, classes: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = Classifier(in_shape=tuple(x.shape[1:]), classes=classes, channels=(8, 16, 32), strides=(2, 2, 2),
                       num_res_units=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    order = itertools.chain.from_iterable(torch.randperm(len(x), generator=generator).split(CLASSIFIER_BATCH)
                                          for _ in itertools.count())
    model.train()
    for index in itertools.islice(order, CLASSIFIER_STEPS):
        optimizer.zero_grad()
        F.cross_entropy(model(x[index]), y[index]).backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float | None:
    # None where no image is left to test (a site of a few real images holds none out).
    return float((model(x).argmax(dim=1) == y).float().mean()) if len(x) else None


def _statistics(task: Task, data: TensorDataset) -> dict[str, float]:
    x, _ = task.encode_replay(data)
    images = image_channels(task, x)
    stats = {"mean": float(images.mean()), "std": float(images.std())}
    if task.replay_classes == 0:
        masks = x[:, 1:] > 0
        stats["mask_share"] = float(masks.float().mean())
        inside, outside = images[masks], images[~masks]
        stats["organ_contrast"] = float(inside.mean() - outside.mean()) if len(inside) and len(outside) else None
    return stats


def contrast_ratio(site: dict[str, dict[str, float]]) -> float | None:
    """A site's organ contrast in replay as a share of real (``site``: its ``real`` and
    ``replay`` statistics); ``None`` where replay drew no organ."""
    replay = site["replay"].get("organ_contrast")
    return None if replay is None else replay / site["real"]["organ_contrast"]


def measure_fidelity(generator: Path, task: Task, scenario: Scenario, seed: int, per_site: int,
                     sampling_steps: int, guidance: float = 1.0, samples: Path | None = None) -> dict[str, Any]:
    """Fidelity of the generator saved in ``generator`` (a run's ``checkpoints/replay.pt``),
    sampled with ``guidance``: returns ``{"sites": {site: {"real": stats, "replay": stats}},
    "site_accuracy": {"real", "real_training", "replay"}, "class_accuracy": ...}`` (``real``: the
    test split; ``real_training``: held-out training images); the replay samples are kept
    in ``samples`` where given (the report's grid)."""
    network, prompts = load_generator(generator, task)
    specs = {site.id: site for site in scenario.sites}
    learned = [site for site in scenario.site_ids if site in prompts]
    real = {site: task.site_data(specs[site], seed) for site in learned}
    replay = {}
    for k, site in enumerate(learned):
        classes = torch.arange(per_site) % task.replay_classes if task.replay_classes else None
        x = sample(network, prompts[site], classes, per_site, sampling_steps,
                   seeding.stream_seed(seed, seeding.Stream.REPLAY, 2, k), guidance=guidance)
        replay[site] = task.decode_replay(x, classes)
    result: dict[str, Any] = {"sites": {site: {"real": _statistics(task, real[site].train),
                                                "replay": _statistics(task, replay[site])} for site in learned},
                              "samples_per_site": per_site}
    fit, held_out = {}, {}
    for site in learned:
        fit[site], held_out[site] = _hold_out(real[site].train, len(real[site].test), seed)
    # Each split is encoded once: (images, classes) per site, in the order of ``learned``.
    train = [task.encode_replay(fit[site]) for site in learned]
    splits = {"real": {site: real[site].test for site in learned}, "real_training": held_out, "replay": replay}
    test = {kind: [task.encode_replay(data[site]) for site in learned] for kind, data in splits.items()}
    train_x = torch.cat([image_channels(task, x) for x, _ in train])
    test_x = {kind: torch.cat([image_channels(task, x) for x, _ in encoded]) for kind, encoded in test.items()}
    if len(learned) > 1:
        model = _train_classifier(train_x, _site_labels(train), len(learned), seed)
        result["site_accuracy"] = {kind: _accuracy(model, test_x[kind], _site_labels(encoded))
                                   for kind, encoded in test.items()}
    if task.replay_classes:
        model = _train_classifier(train_x, torch.cat([y for _, y in train]), task.replay_classes, seed + 1)
        result["class_accuracy"] = {kind: _accuracy(model, test_x[kind], torch.cat([y for _, y in encoded]))
                                    for kind, encoded in test.items()}
    result["chance"] = {"site": 1 / len(learned), "class": 1 / task.replay_classes if task.replay_classes else None}
    if samples is not None:
        torch.save({site: data.tensors for site, data in replay.items()}, samples)
    return result
