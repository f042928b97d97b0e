"""A site's local objective, composed from what the training message asks for.

The task's loss is the base; each layer of :data:`LAYERS` reads the message and either wraps
the objective so far or leaves it alone, in order: replay (experience replay, or PGA's
meta-objectives with pseudo-domains: :mod:`sites.replay_objectives`), then EWC's penalty
(:mod:`sites.ewc`). A new site behaviour is one more layer. FedProx's proximal term stays in
:meth:`~sites.tasks.base.Task.train`, and DP-SGD clips per-sample gradients of whatever
objective the layers build, inside the task's optimizer (:mod:`sites.privacy`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from flwr.app import Message
from torch.utils.data import TensorDataset

from ..alignment_meter import AlignmentMeter
from ..ewc import with_ewc
from ..protocol import RecordName, ReplayOptions, TrainConfig
from ..replay import unpack_domains
from ..replay_objectives import task_replay_objective
from ..tasks import Objective, Task


@dataclass(frozen=True)
class TrainingCall:
    """One training call, as the objective's layers see it.

    Parameters
    ----------
    task : Task
        The run's task.
    model : torch.nn.Module
        The model being trained (the received global model).
    train : TensorDataset
        The site's training split.
    message : Message
        The ``train`` message, with the strategy's arrays.
    config : TrainConfig
        Its config.
    seed : int
        The call's seed (replay batches and pseudo-domains draw from it).
    meter : AlignmentMeter, optional
        Measures PGA's steps (``None`` under DP, where its extra backward passes would run
        through Opacus's per-sample hooks).
    """

    task: Task
    model: torch.nn.Module
    train: TensorDataset
    message: Message
    config: TrainConfig
    seed: int
    meter: AlignmentMeter | None = None

    def arrays(self, name: str) -> dict[str, torch.Tensor] | None:
        """The message's array record ``name`` as tensors on the task's device; ``None`` if absent."""
        if name not in self.message.content.array_records:
            return None
        device = self.task.compute.device
        return {key: value.to(device) for key, value in self.message.content[name].to_torch_state_dict().items()}


#: ``layer(call, objective)``: the objective with the layer's term, or ``objective`` unchanged.
ObjectiveLayer = Callable[[TrainingCall, Objective], Objective]


def with_replay(call: TrainingCall, objective: Objective) -> Objective:
    """Train on ``objective`` together with the replayed earlier sites the message carries
    (``mix`` or PGA, as ``config.replay`` says), and PGA's pseudo-domains of the site's own
    images where asked for."""
    options = call.config.replay or ReplayOptions()
    replayed = RecordName.REPLAY in call.message.content.array_records
    if not (replayed or options.with_pseudo_domains):
        return objective
    replay = unpack_domains(call.message.content[RecordName.REPLAY]) if replayed else {}
    return task_replay_objective(call.task, call.model, call.config, call.train, replay, options, call.seed,
                                 call.meter, loss=objective)


def with_ewc_penalty(call: TrainingCall, objective: Objective) -> Objective:
    """Add EWC's penalty towards the anchor the message carries, weighted by ``ewc_weight``."""
    fisher, anchor = call.arrays(RecordName.EWC_FISHER), call.arrays(RecordName.EWC_ANCHOR)
    if fisher is None:
        return objective
    return with_ewc(objective, fisher, anchor, float(call.config.ewc_weight))


LAYERS: tuple[ObjectiveLayer, ...] = (with_replay, with_ewc_penalty)


def local_objective(call: TrainingCall) -> Objective | None:
    """The objective the call trains on; ``None`` (the task's own loss) when no layer adds a term."""
    def task_loss(model: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return call.task.batch_loss(model, batch, call.config)

    objective = task_loss
    for layer in LAYERS:
        objective = layer(call, objective)
    return None if objective is task_loss else objective
