"""What every handler of a site needs besides the message: the run's fixed settings, the site's
data (made once per process) and the node's state between messages."""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, Message

from .. import seeding
from ..faults import FaultConfig
from ..privacy import DPConfig, PrivateTraining, SiteAccountant
from ..protocol import NodeState, model_record
from ..spec import SiteSpec
from ..tasks import SiteData, Task

# Where a node keeps its NodeState in Flower's context.
_STATE_KEY = "medsites"

# What a site's process keeps for the rest of the run, by app, site index and name: the site's
# data and the privacy audit's reference sample, made on first use. Not on the runtime: Flower's
# simulation engine pickles the ClientApp (and so the runtime) anew with every message it sends
# to a Ray actor.
_per_process: dict[tuple[str, int, str], Any] = {}


@dataclass(frozen=True)
class SiteRuntime:
    """The run's settings every site's handlers share; they travel with the app (pickled) to
    every site's process.

    Parameters
    ----------
    task : Task
        The task, built from the ``task`` config node.
    sites : tuple of SiteSpec
        All sites of the scenario; Flower's partition id ``i`` plays ``sites[i]``.
    seed : int
        The run's top-level seed.
    num_threads : int
        Torch threads per site process (the CPUs Ray gives each actor).
    dp : DPConfig, optional
        Train every site with DP-SGD (``privacy=dp``).
    planned_steps : mapping
        Site id -> DP-SGD steps the run plans for it (training, and unlearning for the
        scenario's withdrawals); with a ``target_epsilon``, each site picks the noise that
        reaches it after exactly these steps.
    faults : FaultConfig
        Simulated faults: each training call crashes with ``faults.crash_prob`` and spoils its
        reply with ``faults.bad_reply_prob``.
    app_id : str
        Names this app's data in the process's cache (a process may serve several apps).
    """

    task: Task
    sites: tuple[SiteSpec, ...]
    seed: int
    num_threads: int
    dp: DPConfig | None = None
    planned_steps: Mapping[str, int] = field(default_factory=dict)
    faults: FaultConfig = field(default_factory=FaultConfig)
    app_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def site(self, context: Context) -> SiteSpec:
        """The site this node plays."""
        return self.sites[int(context.node_config["partition-id"])]

    def load(self, context: Context) -> tuple[SiteSpec, SiteData]:
        """The node's site and its data, generated (or read) on the site's first message."""
        torch.set_num_threads(self.num_threads)
        site = self.site(context)
        return site, self.made_once(site, "data", lambda: self.task.site_data(site, self.seed))

    def made_once(self, site: SiteSpec, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` on the first call for ``site`` and ``name`` in this process, kept after."""
        key = (self.app_id, site.index, name)
        if key not in _per_process:
            _per_process[key] = make()
        return _per_process[key]

    def model(self, arrays: ArrayRecord) -> torch.nn.Module:
        """The task's network holding ``arrays``."""
        model = self.task.build_model()
        model.load_state_dict(arrays.to_torch_state_dict())
        return model

    def global_model(self, message: Message) -> torch.nn.Module:
        """The task's network holding the model the server sent."""
        return self.model(model_record(message))

    def noise_multiplier(self, site: SiteSpec, data: SiteData) -> float:
        """The DP-SGD noise of ``site``, which reaches the target epsilon (if any) after exactly
        its planned steps."""
        sample_rate = min(1.0, self.task.batch_size / len(data.train))
        return self.dp.noise_for(sample_rate, max(1, self.planned_steps.get(site.id, 1)))

    def accountant(self, context: Context) -> SiteAccountant:
        """The node's DP accountant, with every step it has taken in the run."""
        return SiteAccountant(node_state(context).dp_history or "[]")

    def private_training(self, site: SiteSpec, data: SiteData, context: Context) -> PrivateTraining | None:
        """DP-SGD charged to the node's accountant; ``None`` without DP."""
        if self.dp is None:
            return None
        return PrivateTraining(self.noise_multiplier(site, data), self.dp.max_grad_norm, self.accountant(context))

    def next_call_seed(self, site: SiteSpec, context: Context) -> int:
        """Seed of this node's next seeded call. The call count, not the round, seeds local
        training, so that any strategy (whatever it puts in its config) trains reproducibly."""
        calls = node_state(context).train_calls + 1
        keep(context, replace(node_state(context), train_calls=calls))
        return seeding.stream_seed(self.seed, site.index, seeding.Stream.LOCAL_TRAINING, calls)


def node_state(context: Context) -> NodeState:
    """What this node keeps between messages: its seeded-call count, its DP accountant."""
    record = context.state.config_records.get(_STATE_KEY)
    return NodeState() if record is None else NodeState.from_record(record)


def keep(context: Context, state: NodeState) -> None:
    """Make ``state`` what the node keeps."""
    context.state.config_records[_STATE_KEY] = state.to_record()
