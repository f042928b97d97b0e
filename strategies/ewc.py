"""Elastic weight consolidation (Kirkpatrick et al., 2017) across the stages of a timeline
(online EWC, Schwarz et al., 2018): one anchor, the Fisher information summed over stages."""

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Result
from pydantic import NonNegativeFloat, PositiveInt

from sites.protocol import FISHER, FisherQuery, MetricKey, RecordName, TrainConfig, request
from sites.tasks import ClassLogits

from .aggregation import weighted_mean
from .arguments import FedAvgArguments


class EWCArguments(FedAvgArguments):
    """:class:`EWC`'s arguments, besides Flower's FedAvg's.

    Parameters
    ----------
    weight : float
        λ, the strength of the penalty (>= 0).
    fisher_samples : int
        Training samples per site the Fisher is estimated on.
    """

    weight: NonNegativeFloat = 1e7
    fisher_samples: PositiveInt = 64


class EWC(FedAvg):
    """FedAvg whose sites add ``weight / 2 · Σ F (θ − θ*)²`` to their loss, where ``θ*`` is the
    global model at the end of the previous stage and ``F`` the sum over earlier stages of the
    example-weighted mean of the sites' diagonal Fisher information (computed at each site on
    its own data, sent as arrays, at the end of its stage). Its arguments: :class:`EWCArguments`.
    """

    arguments = EWCArguments

    #: What the strategy adds to the sites' loss (:class:`~strategies.capabilities.SiteObjectiveChanger`).
    site_terms = "penalty"
    #: The Fisher is made of the task's per-sample losses
    #: (:class:`~strategies.capabilities.TaskCapabilityUser`).
    task_capabilities = (ClassLogits,)

    def __init__(self, weight: float, fisher_samples: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight, self.fisher_samples = weight, fisher_samples
        self.fisher: dict | None = None
        self.anchor: ArrayRecord | None = None
        # The stage being trained, and the Fisher and model at the end of its latest phase:
        # they become the penalty's once the next stage starts.
        self._stage = None
        self._stage_fisher: dict | None = None
        self._stage_arrays: ArrayRecord | None = None

    def start(self, grid: Grid, initial_arrays: ArrayRecord, num_rounds: int = 3, timeout: float = 3600,
              train_config: ConfigRecord | None = None, **kwargs: Any) -> Result:
        """FedAvg's rounds, then the present sites' Fisher of the resulting model."""
        stage = None if train_config is None else TrainConfig.from_record(train_config).stage
        if stage != self._stage:
            self._consolidate()
            self._stage = stage
        result = super().start(grid, initial_arrays, num_rounds, timeout, train_config, **kwargs)
        arrays = result.arrays if len(result.arrays) > 0 else initial_arrays
        self._stage_fisher = self._site_fisher(grid, arrays, timeout)
        self._stage_arrays = arrays
        return result

    def _consolidate(self) -> None:
        if self._stage_fisher is None:
            return
        if self.fisher is None:
            self.fisher = self._stage_fisher
        else:
            self.fisher = {k: self.fisher[k] + v for k, v in self._stage_fisher.items()}
        self.anchor = self._stage_arrays
        self._stage_fisher = None

    def _site_fisher(self, grid: Grid, arrays: ArrayRecord, timeout: float) -> dict:
        messages = FISHER.messages(request(FisherQuery(self.fisher_samples), model=arrays), grid.get_node_ids())
        replies = grid.send_and_receive(messages, timeout=timeout)
        return weighted_mean((reply.content[RecordName.FISHER].to_torch_state_dict(),
                              float(reply.content[RecordName.METRICS][MetricKey.NUM_EXAMPLES])) for reply in replies)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        if self.fisher is None:  # the first stage: nothing to consolidate yet
            return super().configure_train(server_round, arrays, config, grid)
        config = replace(TrainConfig.from_record(config), ewc_weight=self.weight).to_record()
        messages = list(super().configure_train(server_round, arrays, config, grid))
        fisher = ArrayRecord(self.fisher)
        for message in messages:
            message.content[RecordName.EWC_FISHER], message.content[RecordName.EWC_ANCHOR] = fisher, self.anchor
        return messages
