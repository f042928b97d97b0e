"""Parallel Gradient Alignment (docs/design.md#pga): FedAvg whose sites take PGA's local steps on
their data and the replay of earlier sites, and which takes PGA meta-steps on the replay itself
after each aggregation.

The ablations are switches: ``orientational`` / ``arbitrary`` (which alignment),
``pseudo_domains=0`` (no pseudo-domains), ``server_steps=0`` (no server meta-steps), and the
``replay`` config group (``none``, ``smd``, ``real``).
"""

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Literal

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat

from sites import seeding
from sites.protocol import ReplayOptions, TrainConfig
from sites.replay import unpack_domains
from sites.replay_objectives import task_replay_objective
from sites.tasks import Task

from .arguments import FedAvgArguments
from .experience_replay import ExperienceReplay


class PGAArguments(FedAvgArguments):
    """:class:`PGA`'s arguments, besides Flower's FedAvg's.

    Parameters
    ----------
    alpha : float
        Inner step size of the meta-objectives, ``θ − α ∇L_A`` (> 0).
    weight : float
        λ, the weight of the generalizability objective (>= 0).
    orientational : bool
        Align the current site's gradient with the replayed sites' (memorizability).
    arbitrary : bool
        Align gradients between a fresh random meta-train / meta-test split of the available
        domains at every step (generalizability).
    second_order : bool
        Keep the Hessian term of the meta-gradient (slower; for checking the first-order one).
    inner_step : str
        ``sgd``: ``θ − α ∇L_A``, ``α`` in the loss's own units; ``normalized``:
        ``θ − α ∇L_A / rms(∇L_A)``, which moves the parameters by ``α`` in root mean square, the
        units of Adam's learning rate.
    pseudo_domains : int
        Pseudo-domains of each site's own images (random scanner signatures,
        :mod:`sites.pseudo_domains`) in the generalizability objective, so that it exists at
        the first stage and without replay; 0: none (the ablation).
    server_steps : int
        PGA steps (the task's optimizer, batch size and lr) that the server takes on the replay
        after each aggregation, the newest replayed site in the role of a site's own data and
        its pseudo-domains with it: the orientational objective from two replayed sites on,
        the arbitrary one from one (with pseudo-domains). 0: none (the ablation).
    seed : int
        Seeds the server's meta-steps.
    """

    alpha: PositiveFloat = 1e-4
    weight: NonNegativeFloat = 1.0
    orientational: bool = True
    arbitrary: bool = True
    second_order: bool = False
    inner_step: Literal["sgd", "normalized"] = "normalized"
    pseudo_domains: NonNegativeInt = 2
    server_steps: NonNegativeInt = 5
    seed: NonNegativeInt = 0


class PGA(ExperienceReplay):
    """FedAvg with PGA at the sites. Its arguments: :class:`PGAArguments`; all but
    ``server_steps`` and ``seed`` go to the sites as the training config's
    :class:`~sites.protocol.ReplayOptions`.
    """

    arguments = PGAArguments

    def __init__(self, alpha: float, weight: float, orientational: bool, arbitrary: bool, second_order: bool,
                 inner_step: str, pseudo_domains: int, server_steps: int, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = ReplayOptions("pga", alpha, weight, orientational, arbitrary, second_order, inner_step,
                                     pseudo_domains)
        self.server_steps, self.seed = server_steps, seed
        self.task: Task | None = None
        self._server_calls = 0
        # The current round's config and global model, for the server's meta-step.
        self._train_config, self._round_start = ConfigRecord(), ArrayRecord()

    def bind_task(self, task: Task) -> None:
        """The run's task, which the server's meta-steps train with
        (:class:`~strategies.capabilities.TaskAware`)."""
        self.task = task

    def replay_options(self) -> ReplayOptions:
        return self.options

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._train_config, self._round_start = config, arrays
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None or self.server_steps == 0 or self.replay is None:
            return arrays, metrics
        stepped = self._meta_step(arrays, unpack_domains(self.replay), TrainConfig.from_record(self._train_config))
        if stepped is None:
            return arrays, metrics
        metrics = MetricRecord(metrics or {})
        metrics[SERVER_SHARE] = relative_move(self._round_start, arrays, stepped)
        return stepped, metrics

    def _meta_step(self, arrays: ArrayRecord, replay: dict, config: TrainConfig) -> ArrayRecord | None:
        """``arrays`` after :attr:`server_steps` PGA steps on ``replay`` (``None``: the options
        leave no meta-objective to step on)."""
        *earlier, newest = replay
        options = self.options
        if not (earlier and (options.orientational or options.arbitrary) or options.with_pseudo_domains):
            return None
        task = self.task
        model = task.build_model()
        model.load_state_dict(arrays.to_torch_state_dict())
        self._server_calls += 1
        seed = seeding.stream_seed(self.seed, seeding.Stream.REPLAY, 1, self._server_calls)
        objective = task_replay_objective(task, model, config, replay[newest],
                                          {name: replay[name] for name in earlier}, options, seed)
        # Task.train makes the newest site's replay into the phase's training data itself.
        task.train(model, replay[newest], seed, replace(config, local_steps=self.server_steps), objective=objective)
        return ArrayRecord(model.state_dict())


#: The server's meta-steps' move of the global model relative to the round's aggregated move.
SERVER_SHARE = "pga-server-share"


def relative_move(start: ArrayRecord, aggregated: ArrayRecord, stepped: ArrayRecord) -> float:
    """``‖stepped − aggregated‖ / ‖aggregated − start‖`` over every array."""
    start, aggregated, stepped = (record.to_torch_state_dict() for record in (start, aggregated, stepped))

    def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return sum(float((value.double() - b[key].double()).pow(2).sum()) for key, value in a.items()) ** 0.5

    return distance(stepped, aggregated) / max(distance(aggregated, start), 1e-12)
