"""Parallel Gradient Alignment (DESIGN.md §1.1): FedAvg whose sites take PGA's local steps on
their data and the replay of earlier sites, with an optional server-side meta-step on replay.

The ablations are switches: ``orientational`` / ``arbitrary`` (which alignment),
``pseudo_domains=0`` (no pseudo-domains), and the ``replay`` config group (``none``, ``smd``,
``real``).
"""

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from sites import seeding
from sites.replay import unpack_domains
from sites.errors import ConfigError
from sites.protocol import ReplayOptions, TrainConfig
from sites.replay_objectives import alignment_objective

from .experience_replay import ExperienceReplay


class PGA(ExperienceReplay):
    """FedAvg with PGA at the sites.

    Parameters
    ----------
    alpha : float
        Inner step size of the meta-objectives, ``θ − α ∇L_A``.
    weight : float
        λ, the weight of the generalizability objective.
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
        Adam steps of the generalizability objective on replay alone that the server takes
        after each aggregation (0: none; needs at least two replayed sites).
    seed : int
        Seeds the server's meta-steps.
    **kwargs
        Flower's :class:`~flwr.serverapp.strategy.FedAvg` arguments.
    """

    def __init__(self, alpha: float = 1e-3, weight: float = 1.0, orientational: bool = True, arbitrary: bool = True,
                 second_order: bool = False, inner_step: str = "sgd", pseudo_domains: int = 2, server_steps: int = 0,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self.options = ReplayOptions("pga", float(alpha), float(weight), bool(orientational), bool(arbitrary),
                                         bool(second_order), inner_step, pseudo_domains)
        except ConfigError as error:  # the options check themselves; the user set strategy.<field>
            raise ConfigError(f"strategy.{ReplayOptions.field_of(error.key)}", error.problem) from None
        self.server_steps, self.seed = int(server_steps), int(seed)
        self._server_calls = 0
        self._train_config = ConfigRecord()  # the current round's, for the server's meta-step

    def replay_options(self) -> ReplayOptions:
        return self.options

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._train_config = config
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        arrays, metrics = super().aggregate_train(server_round, replies)
        if arrays is None or self.server_steps == 0 or self.replay is None:
            return arrays, metrics
        domains = unpack_domains(self.replay)
        if len(domains) < 2:
            return arrays, metrics
        return self._meta_step(arrays, domains, TrainConfig.from_record(self._train_config)), metrics

    def _meta_step(self, arrays: ArrayRecord, domains: dict, config: TrainConfig) -> ArrayRecord:
        task = self.task
        model = task.build_model()
        model.load_state_dict(arrays.to_torch_state_dict())
        domains = {name: task.training_data(model, data, config) for name, data in domains.items()}
        self._server_calls += 1
        seed = seeding.stream_seed(self.seed, seeding.Stream.REPLAY, 1, self._server_calls)
        objective = alignment_objective(lambda network, batch: task.batch_loss(network, batch, config), domains,
                                        self.options, seed)
        # Task.train's own batches only set the batch size: the objective draws from each domain.
        task.train(model, next(iter(domains.values())), seed, replace(config, local_steps=self.server_steps),
                   objective=objective)
        return ArrayRecord(model.state_dict())
