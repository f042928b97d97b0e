"""Experience replay: each local step trains on the current batch together with a replay
batch of the earlier sites (Rolnick et al., 2019). The base of every replay strategy.

With ``replay=real`` this is the real-buffer baseline (data leaves the sites: a reference
only); with ``replay=smd`` it is SMD replay without PGA.
"""

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from sites.protocol import RecordName, ReplayOptions, TrainConfig

from .arguments import FedAvgArguments


class ExperienceReplay(FedAvg):
    """FedAvg whose training messages also carry, under ``replay``, samples of earlier sites,
    and whose training config tells the sites how to use them (:meth:`replay_options`). Here
    each step's loss is taken over the current batch and an equal-sized replay batch (drawn
    evenly from the earlier sites) together.

    The server hands the strategy its replay before each stage (:meth:`set_replay`: a
    :class:`~strategies.capabilities.ReplayConsumer`); without replay (the first stage,
    ``replay=none``) the messages are FedAvg's own. Its arguments: Flower's FedAvg's
    (:class:`~strategies.arguments.FedAvgArguments`).
    """

    arguments = FedAvgArguments

    #: What the strategy adds to the sites' loss (:class:`~strategies.capabilities.SiteObjectiveChanger`).
    site_terms = "replay"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replay: ArrayRecord | None = None

    def set_replay(self, replay: ArrayRecord | None) -> None:
        """Replay for the coming stage (``None``: no earlier site to replay)."""
        self.replay = replay

    def replay_options(self) -> ReplayOptions:
        """What tells the sites how to train with replay, in the training config."""
        return ReplayOptions(objective="mix")

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        config = replace(TrainConfig.from_record(config), replay=self.replay_options()).to_record()
        messages = list(super().configure_train(server_round, arrays, config, grid))
        if self.replay is not None:
            for message in messages:
                message.content[RecordName.REPLAY] = self.replay
        return messages
