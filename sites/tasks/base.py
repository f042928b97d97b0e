"""The contract every task fulfils, and the local training loop they share."""

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from pydantic import PositiveFloat, PositiveInt
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .. import seeding
from ..config import ConfigModel, instantiate
from ..data.markers import stamp_markers
from ..device import Compute
from ..errors import ConfigError
from ..privacy import PrivateTraining
from ..protocol import MetricKey, TrainConfig
from ..spec import SiteSpec

#: ``objective(model, batch)``: a scalar loss to minimise on one batch of the training split.
Objective = Callable[[nn.Module, list[torch.Tensor]], torch.Tensor]


def refuse_field_of_view(sites: Sequence[SiteSpec], task: str) -> None:
    """Raise ``ConfigError`` for a site whose scanner sets a field of view: ``task``'s renderer
    has no anatomy to frame, and a setting that changed nothing would mislead."""
    for site in sites:
        if site.scanner.field_of_view != 1.0:
            raise ConfigError(f"scenario.sites.{site.index}.scanner.field_of_view",
                              f"site {site.id}: the {task} task renders no field of view; leave it at 1 "
                              f"(got {site.scanner.field_of_view})")


@dataclass(frozen=True)
class SiteData:
    """A site's splits, held in memory at the site; ``validation`` only for tasks with
    :attr:`Task.validation_split`; ``marked_train`` / ``marked_test`` ((N,) bool) only
    where patients carry identifying markers."""

    train: TensorDataset
    test: TensorDataset
    validation: TensorDataset | None = None
    marked_train: torch.Tensor | None = None
    marked_test: torch.Tensor | None = None


@dataclass(frozen=True)
class Phase:
    """A part of every stage that runs as its own rounds of the strategy.

    Parameters
    ----------
    name : str
        Sent to the sites as the training config's :attr:`~sites.protocol.TrainConfig.phase`.
    statistics : bool
        Before the phase, each present site reports counts and the server turns their sums
        into the phase's config: the task needs
        :class:`~sites.tasks.capabilities.PhaseStatistics`.
    steps_share : float
        A training round of this phase takes this share of the task's ``local_steps``, so a
        task can split one budget across phases.
    """

    name: str
    statistics: bool = False
    steps_share: float = 1.0


class TaskArguments(ConfigModel):
    """What every task takes (``task.<argument>``); a task's own arguments extend it.

    Parameters
    ----------
    n_train, n_test : int
        Default sample counts per site (a site's own counts win).
    batch_size : int
        Local mini-batch size.
    local_steps : int
        Optimizer steps a site takes per training round.
    lr : float
        Adam learning rate; a fresh optimizer is made every round, as in FedAvg.
    """

    n_train: PositiveInt
    n_test: PositiveInt
    batch_size: PositiveInt
    local_steps: PositiveInt
    lr: PositiveFloat


class Task(ABC):
    """A learning problem as one site sees it: what every task does. Features such as replay,
    site withdrawals and the privacy audit need more, declared as protocols in
    :mod:`sites.tasks.capabilities`. Its arguments: :class:`TaskArguments`.
    """

    arguments = TaskArguments

    #: Name of the metric that fills R[t, j]; higher is better.
    primary_metric: str

    #: Where :meth:`train` and :meth:`evaluate_on_device` run; the run sets it (``device``,
    #: ``precision``) after building the task, so a task's own arguments never name a device.
    compute: Compute = Compute()

    #: Whether the task's sites hold a validation split (:class:`SiteData`), which settings are
    #: chosen on (``evaluate_split=validation``).
    validation_split = False

    def __init__(self, n_train: int, n_test: int, batch_size: int, local_steps: int, lr: float) -> None:
        self.n_train, self.n_test, self.batch_size, self.local_steps = n_train, n_test, batch_size, local_steps
        self.lr = float(lr)

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised network (seed torch before calling for reproducibility)."""

    @abstractmethod
    def load_site(self, site: SiteSpec, seed: int) -> SiteData:
        """The site's train and test splits, generated or read from disk."""

    def check_sites(self, sites: Sequence[SiteSpec]) -> None:
        """Raise ``ConfigError`` for what is wrong with the sites' data and can be seen without
        reading it (a manifest's rows, missing files), before anything starts. Synthetic data
        needs no check; the sites still check every image when they load it."""

    def site_data(self, site: SiteSpec, seed: int) -> SiteData:
        """:meth:`load_site`; the training labels corrupted if ``site.corrupt_labels`` (by
        :class:`~sites.tasks.capabilities.LabelCorruption`, which a run with such a site
        requires before it starts); then identifying markers burned into a
        ``site.marker_rate`` share of the training and test images (:mod:`sites.data.markers`)."""
        data = self.load_site(site, seed)
        if site.corrupt_labels:
            data = replace(data, train=self.corrupt_labels(data.train))
        if site.marker_rate == 0:
            return data
        marked = [stamp_markers(split.tensors[0], site.marker_rate,
                                seeding.numpy_rng(seed, site.index, seeding.Stream.MARKERS, i))
                  for i, split in enumerate((data.train, data.test))]
        return replace(data, marked_train=marked[0], marked_test=marked[1])

    def training_data(self, model: nn.Module, data: TensorDataset, config: TrainConfig) -> TensorDataset:
        """What a phase trains on, made from a training split (or replay) before the steps; by
        default the split itself."""
        return data

    @abstractmethod
    def batch_loss(self, model: nn.Module, batch: list[torch.Tensor], config: TrainConfig) -> torch.Tensor:
        """Training loss of one batch (the tensors of the training split) in the phase ``config.phase``."""

    @abstractmethod
    def evaluate(self, model: nn.Module, data: TensorDataset) -> dict[str, float | list[float]]:
        """Metrics of ``model`` on ``data``; must include :attr:`primary_metric`."""

    def evaluate_on_device(self, model: nn.Module, data: TensorDataset) -> dict[str, float | list[float]]:
        """:meth:`evaluate` with ``model`` and ``data`` on :attr:`compute`'s device."""
        with self.compute.placed(model), self.compute.autocast():
            return self.evaluate(model, self.compute.dataset(data))

    @property
    def phases(self) -> list[Phase]:
        """The phases of every stage, in order; most tasks have one."""
        return [Phase("train")]

    def pool_metrics(self, site_metrics: Mapping[str, Mapping[str, Any]],
                     statistics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """Federation-wide metrics of a stage, from every site's evaluation (e.g. summed
        histograms) and the site statistics summed before each phase."""
        return {}

    def phase_steps(self, phase: str) -> int:
        """Local steps of a training round in ``phase`` (its share of :attr:`local_steps`, at least 1)."""
        share = next((p.steps_share for p in self.phases if p.name == phase), 1.0)
        return max(1, round(self.local_steps * share))

    @property
    def round_steps(self) -> int:
        """Local steps a site takes in one round of every phase."""
        return sum(self.phase_steps(phase.name) for phase in self.phases)

    def train(self, model: nn.Module, data: TensorDataset, seed: int, config: TrainConfig,
              privacy: PrivateTraining | None = None, objective: Objective | None = None) -> dict[str, float]:
        """Run :meth:`phase_steps` Adam steps on :meth:`training_data` of ``data``.

        Parameters
        ----------
        model : nn.Module
            Trained in place.
        data : TensorDataset
            The site's training split.
        seed : int
            Seeds the batch order.
        config : TrainConfig
            The strategy's training config: the phase and its entries, and the overrides of
            :meth:`phase_steps` and the learning rate and FedProx's ``mu``, where it sets them.
        privacy : PrivateTraining, optional
            Train with DP-SGD (Opacus): per-sample clipping and noise, Poisson-sampled batches,
            the steps added to the site's accountant.
        objective : callable, optional
            ``objective(model, batch)`` replaces :meth:`batch_loss` (e.g. an unlearning objective).

        Returns
        -------
        dict
            ``train_loss`` (mean over steps) and ``num-examples``.
        """
        data = self.training_data(model, data, config)
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(data, batch_size=self.batch_size, shuffle=True, generator=generator)
        steps = int(self.phase_steps(config.phase) if config.local_steps is None else config.local_steps)
        lr = float(self.lr if config.lr is None else config.lr)
        objective = objective or (lambda network, batch: self.batch_loss(network, batch, config))
        proximal_mu = float(config.proximal_mu or 0.0)
        compute = self.compute
        with compute.placed(model):
            global_params = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
            model.train()
            if privacy is None:
                optimizer = torch.optim.Adam(model.parameters(), lr=lr)
                batches = itertools.islice(itertools.cycle(loader), steps)
            else:
                if proximal_mu > 0:  # a term outside the per-sample losses would escape clipping
                    raise ValueError("privacy=dp cannot train with a proximal term (FedProx's mu > 0)")
                probe = compute.put(next(iter(loader)))
                private_model, optimizer, loader = privacy.wrap(
                    model, loader, seed, lambda params: torch.optim.Adam(params, lr=lr),
                    lambda probed: objective(probed, probe))
                # Every step draws a fresh Poisson sample, as the accountant assumes (cycle would replay).
                batches = itertools.islice((batch for _ in itertools.count() for batch in loader), steps)
            total = 0.0
            try:
                for batch in batches:
                    optimizer.zero_grad()
                    # Opacus's hooks sit on the layers, so the task may call any method of ``model``.
                    with compute.autocast():
                        loss = objective(model, compute.put(batch))
                    if proximal_mu > 0:
                        drift = sum((p - g).pow(2).sum() for p, g in zip(model.parameters(), global_params))
                        loss = loss + proximal_mu / 2 * drift
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
            finally:
                if privacy is not None:
                    privacy.release(private_model, model)
        return {MetricKey.TRAIN_LOSS: total / steps, MetricKey.NUM_EXAMPLES: len(data)}


def build_task(config: dict[str, Any]) -> Task:
    """Instantiate the task described by a ``task`` config node (``_target_`` + arguments)."""
    return instantiate(config, "task", Task, "sites.tasks.Task")
