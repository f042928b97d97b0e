"""Site-Modulated Diffusion on the server (docs/design.md#smd): one generator shared by every site,
one set of prompt tokens per site.

While a site is present it trains the generator and its own prompt on its data (the site's
``train.generator`` handler), together with the replay of the earlier sites drawn for its
stage under their prompts (generative replay: without it the shared network drifts to the
site that trained last and every prompt gives that site); only the generator's weights and the
prompt come back, never an image. The server averages the generator over the sites of a stage (example-weighted, as
FedAvg), keeps each site's prompt as that site returned it, and samples replay for any site it
has learned: image and mask together for segmentation, class-conditional samples (classes in
equal shares) for classification tasks.
"""

import time
from pathlib import Path

import torch
from flwr.app import ArrayRecord
from torch.utils.data import TensorDataset

from sites import seeding
from sites.diffusion import build_generator, sample
from sites.networks.site_diffusion import SiteDiffusion
from sites.protocol import TRAIN_GENERATOR, GeneratorConfig, MetricKey, RecordName, request
from sites.replay import pack_domains
from sites.tasks import ReplayCodec, Task
from strategies.aggregation import weighted_mean

from .records import ReplayRecord
from .replay import ReplaySource
from .replay_config import ReplayConfig
from .site_grid import SiteGrid


class SiteModulatedDiffusion(ReplaySource):
    """``smd``: the server's generator and prompts.

    Parameters
    ----------
    task : Task
        Gives the replay space (shape, classes) and turns samples back into training data.
    config : ReplayConfig
        ``per_site`` and the generator's settings.
    seed : int
        The run's seed (initialisation, prompts, sampling).
    """

    task_capabilities = (ReplayCodec,)

    def __init__(self, task: Task, config: ReplayConfig, seed: int) -> None:
        super().__init__(task, config, seed)
        settings = config.generator
        self.wire = GeneratorConfig(list(settings.channels), settings.embed_dim, settings.heads,
                                    settings.steps, settings.batch_size, float(settings.lr),
                                    float(settings.prompt_dropout))
        torch.manual_seed(seeding.stream_seed(seed, seeding.Stream.REPLAY))
        self.network = build_generator(task, self.wire)
        self.prompts: dict[str, torch.Tensor] = {}
        self.training: dict[str, list[dict[str, float]]] = {}
        self.sampling_seconds: list[float] = []
        self._draws = 0
        # The replay drawn for the current stage: the stage's sites also train the generator on
        # it, under the earlier sites' prompts, so that the generator keeps them.
        self._replayed: dict[str, TensorDataset] = {}

    def _new_prompt(self, site: str, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seeding.stream_seed(self.seed, seeding.Stream.REPLAY, index + 1))
        return torch.randn((self.config.generator.prompt_tokens, self.config.generator.embed_dim),
                           generator=generator)

    def learn(self, view: SiteGrid, timeout: float) -> None:
        generator = ArrayRecord(self.network.state_dict())
        messages = []
        for index, node in enumerate(view.get_node_ids()):
            site = view.site_of_node(node)
            prompt = self.prompts.get(site)
            if prompt is None:
                prompt = self._new_prompt(site, len(self.prompts) + index)
            arrays = {RecordName.GENERATOR: generator, RecordName.PROMPT: ArrayRecord({RecordName.PROMPT: prompt})}
            replayed = {name: data for name, data in self._replayed.items() if name != site}
            if replayed:
                arrays[RecordName.REPLAY] = pack_domains(replayed)
                arrays[RecordName.REPLAY_PROMPTS] = ArrayRecord({name: self.prompts[name] for name in replayed})
            messages.append(TRAIN_GENERATOR.message(request(self.wire, arrays=arrays), node))
        replies = view.send_and_receive(messages, timeout=timeout)
        updates = []
        for reply in replies:
            site = view.site_of_node(reply.metadata.src_node_id)
            metrics = dict(reply.content[RecordName.METRICS])
            self.prompts[site] = reply.content[RecordName.PROMPT].to_torch_state_dict()[RecordName.PROMPT]
            self.training.setdefault(site, []).append(metrics)
            updates.append((reply.content[RecordName.GENERATOR].to_torch_state_dict(),
                            int(metrics[MetricKey.NUM_EXAMPLES])))
        self.network.load_state_dict(weighted_mean(updates))

    def generate(self, site: str, n: int) -> TensorDataset:
        """``n`` fresh samples of ``site`` in the task's training format."""
        classes = None
        if self.task.replay_classes:
            classes = torch.arange(n) % self.task.replay_classes
        self._draws += 1
        start = time.perf_counter()
        x = sample(self.network, self.prompts[site], classes, n, self.config.generator.sampling_steps,
                   seeding.stream_seed(self.seed, seeding.Stream.REPLAY, 0, self._draws),
                   compute=self.task.compute, guidance=self.config.generator.guidance)
        self.sampling_seconds.append(time.perf_counter() - start)
        return self.task.decode_replay(x, classes)

    def replay(self, sites: list[str]) -> dict[str, TensorDataset]:
        self._replayed = {site: self.generate(site, self.config.per_site) for site in sites}
        return self._replayed

    def summary(self) -> ReplayRecord:
        return ReplayRecord("smd", True, {"generator_parameters": sum(p.numel() for p in self.network.parameters()),
                                          "training": self.training, "sampling_seconds": self.sampling_seconds,
                                          "samples_per_draw": self.config.per_site})

    def save(self, path: Path) -> None:
        """The generator's weights, its architecture (as sent to the sites) and every prompt
        (:func:`load_generator` reads them back)."""
        torch.save({"generator": self.network.state_dict(), "wire": dict(self.wire.to_record()),
                    "prompts": dict(self.prompts)}, path)


def load_generator(path: Path, task: Task) -> tuple[SiteDiffusion, dict[str, torch.Tensor]]:
    """The generator and prompts :meth:`SiteModulatedDiffusion.save` wrote."""
    saved = torch.load(path)
    network = build_generator(task, GeneratorConfig.from_record(saved["wire"]))
    network.load_state_dict(saved["generator"])
    return network, saved["prompts"]
