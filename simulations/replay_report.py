"""The replay section of a run's report: the source, its costs, and for SMD a grid of replay
samples per site and the fidelity figures (:mod:`simulations.replay_fidelity`)."""

from pathlib import Path
from statistics import median

import matplotlib.pyplot as plt
import torch
from torch.utils.data import TensorDataset

from server.records import ReplayRecord
from sites.tasks import Task

from .formatting import fmt, table_header, table_row

GRID_COLUMNS = 8
#: The two sides of each fidelity statistic, in the order of the table's columns.
DATA = ("real", "replay")


def image_channels(task: Task, x: torch.Tensor) -> torch.Tensor:
    """The image channels of samples in replay space (segmentation: without the mask channel)."""
    return x[:, :1] if task.replay_classes == 0 else x


def plot_replay_grid(samples: dict[str, tuple[torch.Tensor, ...]], task: Task, path: Path) -> None:
    """One row per site, :data:`GRID_COLUMNS` replay samples each: the image channel with the
    most variation, of volumes the middle slice (and the generated mask's outline for
    segmentation, the class above)."""
    fig, axes = plt.subplots(len(samples), GRID_COLUMNS, figsize=(1.3 * GRID_COLUMNS, 1.4 * len(samples) + 0.4),
                             squeeze=False)
    for row, (site, tensors) in zip(axes, samples.items()):
        x, classes = task.encode_replay(TensorDataset(*tensors))
        images = image_channels(task, x)
        if images.dim() == 5:
            images = images[:, :, images.shape[2] // 2]
        channel = int(images.flatten(2).std(dim=2).mean(dim=0).argmax())
        for k, ax in enumerate(row):
            ax.set_axis_off()
            if k >= len(x):
                continue
            ax.imshow(images[k, channel].numpy(), cmap="gray", vmin=-1, vmax=1)
            if task.replay_classes == 0:
                ax.contour(x[k, 1].numpy(), levels=[0.0], colors="tab:red", linewidths=0.8)
            else:
                ax.set_title(f"class {int(classes[k])}", fontsize=7)
        row[0].text(-0.15, 0.5, f"site {site}", transform=row[0].transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle("SMD replay samples per site", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replay_section(replay: ReplayRecord) -> list[str]:
    """Markdown lines for the report (``replay_samples.png`` beside it for SMD); a user's source
    is described by its figures."""
    lines = ["", "## Replay", ""]
    figures = replay.figures
    if replay.source == "real":
        exemplars = ", ".join(f"{site}: {n}" for site, n in figures["exemplars"].items())
        return lines + ["**Not private: real training samples left the sites** (replay=real, a reference "
                        f"only). Exemplars kept per site: {exemplars}."]
    if replay.source != "smd":
        privacy = "private" if replay.private else "**not private: data left the sites**"
        return lines + [f"Replay source {replay.source} ({privacy}): "
                        + "; ".join(f"{key}: {value}" for key, value in figures.items()) + "."]
    training = figures["training"]
    seconds = [m["seconds"] for runs in training.values() for m in runs]
    lines += [f"Site-Modulated Diffusion: one generator ({figures['generator_parameters']:,} parameters) shared by "
              f"the sites, a prompt per site. Training per site and stage: median {median(seconds):.1f} s; "
              f"sampling {figures['samples_per_draw']} samples of a site: median "
              f"{median(figures['sampling_seconds']) if figures['sampling_seconds'] else float('nan'):.2f} s."]
    fidelity = replay.fidelity
    if fidelity is None:
        return lines
    chance = fidelity["chance"]
    lines += ["", "### Fidelity", "",
              f"A classifier trained on the real training images of every learned site, tested on real test "
              f"images, on held-out real training images (the distribution the generator learned: replay is "
              f"faithful where it scores like these) and on {fidelity['samples_per_site']} replay samples per "
              f"site (chance: site {fmt(chance['site'])}"
              + (f", class {fmt(chance['class'])}" if chance["class"] else "") + ").", "",
              *table_header(("accuracy", "real test", "real training, held out", "replay"))]
    for key in ("site_accuracy", "class_accuracy"):
        if key in fidelity:
            lines.append(table_row((key.split("_")[0], *(fmt(fidelity[key].get(kind))
                                                         for kind in ("real", "real_training", "replay")))))
    keys = list(next(iter(fidelity["sites"].values()))["real"])
    lines += ["", "Per-site statistics in replay space (intensities / 3, clipped to [-1, 1]): real training "
              "split vs replay.", "", *table_header(["site", *(f"{k} {data}" for k in keys for data in DATA)])]
    for site, stats in fidelity["sites"].items():
        lines.append(table_row([site, *(fmt(stats[data][k]) for k in keys for data in DATA)]))
    lines += ["", "![replay samples](replay_samples.png)"]
    return lines


def write_replay_figures(run_dir: Path, task: Task) -> None:
    """``replay_samples.png`` from the samples the fidelity measurement kept."""
    samples = torch.load(run_dir / "checkpoints" / "replay_samples.pt")
    plot_replay_grid({site: tuple(tensors) for site, tensors in samples.items()}, task, run_dir / "replay_samples.png")
