"""The Flower ClientApp a hospital runs.

Handlers:

- ``query``: which site this node is;
- ``query.data``: load (generate or read) the site's data now and report the split sizes, so
  that bad data stops a run before any training;
- ``query.statistics``: counts the task needs summed across sites before a phase (e.g. label x
  pseudo-bias counts); counts only, never samples;
- ``train``: local training of the received global model on the site's training split;
- ``train.unlearn``: the site's part of an unlearning round (:mod:`sites.unlearning`): the forget
  objective at a withdrawing site, the retain objective at the others;
- ``evaluate``: the primary and secondary metrics of the received model on the site's test split
  (or, with ``split: train``, its training split: the forget and retain sets of a withdrawal);
- ``query.audit``: membership inference against the received model on the site's own data
  (:mod:`sites.membership_inference`): ROC summaries only, never a per-sample score.

Only model arrays, metrics and counts leave the site. The site's data is generated (or read)
once per Ray actor and kept in memory for the rest of the run.
"""

import functools
import json
import math
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from torch.utils.data import TensorDataset

from . import seeding
from .membership_inference import site_audit
from .privacy import DPConfig, PrivateTraining, SiteAccountant
from .spec import SiteSpec
from .tasks import SiteData, Task, build_task
from .unlearning import unlearn

# Flower's error code range for application errors raised inside a ClientApp.
SITE_ERROR_CODE = 0
_STATE_KEY = "medsites"


@functools.lru_cache(maxsize=None)
def _task(task_json: str) -> Task:
    return build_task(json.loads(task_json))


@functools.lru_cache(maxsize=None)
def _site_data(task_json: str, site_json: str, seed: int) -> SiteData:
    return _task(task_json).site_data(SiteSpec.from_dict(json.loads(site_json)), seed)


@functools.lru_cache(maxsize=None)
def _reference_sample(task_json: str, site_json: str, seed: int) -> TensorDataset:
    return _task(task_json).reference_sample(SiteSpec.from_dict(json.loads(site_json)), seed)


def _incoming_arrays(message: Message) -> ArrayRecord:
    """The one ArrayRecord a strategy sends, whatever key it uses."""
    records = list(message.content.array_records.values())
    if len(records) != 1:
        raise ValueError(f"expected one ArrayRecord in the {message.metadata.message_type} message, got {len(records)}")
    return records[0]


def _global_model(task: Task, message: Message) -> torch.nn.Module:
    """The task's network holding the arrays the server sent."""
    return _model(task, _incoming_arrays(message))


def _model(task: Task, arrays: ArrayRecord) -> torch.nn.Module:
    model = task.build_model()
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def _incoming_config(message: Message) -> ConfigRecord:
    records = list(message.content.config_records.values())
    return records[0] if records else ConfigRecord()


def _state(context: Context) -> ConfigRecord:
    """What this node keeps between messages: its training-call count, its DP accountant."""
    return context.state.config_records.setdefault(_STATE_KEY, ConfigRecord({"train-calls": 0}))


def _next_train_call(context: Context) -> int:
    """Count this node's training calls: the count, not the round, seeds local training,
    so any strategy (whatever it puts in its config) trains reproducibly."""
    state = _state(context)
    state["train-calls"] = int(state["train-calls"]) + 1
    return int(state["train-calls"])


def build_client_app(task: dict[str, Any], sites: list[SiteSpec], seed: int, num_threads: int,
                     privacy: dict[str, Any] | None = None, planned_steps: dict[str, int] | None = None) -> ClientApp:
    """Make the ClientApp for a federation.

    Parameters
    ----------
    task : dict
        The resolved ``task`` config node (``_target_`` and arguments).
    sites : list of SiteSpec
        All sites of the scenario; Flower's partition id ``i`` plays ``sites[i]``.
    seed : int
        The run's top-level seed.
    num_threads : int
        Torch threads per site process (the CPUs Ray gives each actor).
    privacy : dict, optional
        The resolved ``privacy`` config node; ``method: dp`` trains every site with DP-SGD.
    planned_steps : dict, optional
        Site id -> local steps the timeline plans for it; with a ``target_epsilon``, each site
        picks the noise that reaches it after exactly these steps.
    """
    task_json = json.dumps(task, sort_keys=True)
    site_jsons = [json.dumps(site.to_dict(), sort_keys=True) for site in sites]
    dp = DPConfig.from_config(privacy or {"method": "off"})
    planned_steps = planned_steps or {}

    def noise_multiplier(site: SiteSpec, task: Task, data: SiteData) -> float:
        return dp.noise_for(min(1.0, task.batch_size / len(data.train)), max(1, planned_steps.get(site.id, 1)))

    def private_training(site: SiteSpec, task: Task, data: SiteData, context: Context) -> PrivateTraining | None:
        if dp is None:
            return None
        history = _state(context).get("dp-history", "[]")
        return PrivateTraining(noise_multiplier(site, task, data), dp.max_grad_norm, SiteAccountant(history))

    def site_of(context: Context) -> SiteSpec:
        return sites[int(context.node_config["partition-id"])]

    def load(context: Context) -> tuple[SiteSpec, Task, SiteData]:
        torch.set_num_threads(num_threads)
        site = site_of(context)
        return site, _task(task_json), _site_data(task_json, site_jsons[site.index], seed)

    def report_site_errors(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        # Turn any failure into an error reply that names the site, instead of a traceback
        # in a Ray worker's log.
        try:
            return call_next(message, context)
        except Exception as error:  # noqa: BLE001 - every failure must reach the server
            reason = f"{type(error).__name__}: {error}"
            return Message(Error(code=SITE_ERROR_CODE, reason=reason), reply_to=message)

    app = ClientApp(mods=[report_site_errors])

    @app.query()
    def identify(message: Message, context: Context) -> Message:
        reply = ConfigRecord({"site-id": site_of(context).id})
        return Message(RecordDict({"site": reply}), reply_to=message)

    @app.query("data")
    def check_data(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        reply = MetricRecord({"n-train": len(data.train), "n-test": len(data.test)})
        if dp is not None:  # an unreachable target epsilon stops the run here, before training
            reply["noise-multiplier"] = noise_multiplier(site, task, data)
        return Message(RecordDict({"data": reply}), reply_to=message)

    @app.query("statistics")
    def report_statistics(message: Message, context: Context) -> Message:
        _, task, data = load(context)
        model = _global_model(task, message)
        counts = task.site_statistics(model, data, dict(_incoming_config(message)))
        return Message(RecordDict({"statistics": MetricRecord(counts)}), reply_to=message)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        model = _global_model(task, message)
        privacy = private_training(site, task, data, context)
        metrics = task.train(
            model,
            data.train,
            seed=seeding.stream_seed(seed, site.index, seeding.LOCAL_TRAINING, _next_train_call(context)),
            config=dict(_incoming_config(message)),
            privacy=privacy,
        )
        if privacy is not None:
            _state(context)["dp-history"] = privacy.accountant.to_json()
            metrics["epsilon"] = privacy.accountant.epsilon(dp.delta)
        reply = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
        return Message(reply, reply_to=message)

    @app.train("unlearn")
    def unlearn_site(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        model = _model(task, message.content["arrays"])
        metrics = unlearn(task, model, _model(task, message.content["reference"]), data.train,
                          dict(_incoming_config(message)),
                          seed=seeding.stream_seed(seed, site.index, seeding.LOCAL_TRAINING, _next_train_call(context)))
        reply = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
        return Message(reply, reply_to=message)

    @app.query("audit")
    def audit(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        config = _incoming_config(message)
        references = [reference_model(site, task, k, int(config["reference-steps"]))
                      for k in range(int(config["reference-models"]))]
        epsilon = None if dp is None else SiteAccountant(_state(context).get("dp-history", "[]")).epsilon(dp.delta)
        metrics = site_audit(task, _global_model(task, message), data, references, epsilon,
                             seeding.numpy_rng(seed, site.index, seeding.AUDIT))
        return Message(RecordDict({"audit": MetricRecord(metrics)}), reply_to=message)

    def reference_model(site: SiteSpec, task: Task, k: int, steps: int) -> torch.nn.Module:
        """A model of the same architecture, initialisation and step budget as the federation's,
        trained (without DP) on fresh data of the site's distribution."""
        sample = _reference_sample(task_json, site_jsons[site.index], seed)
        torch.manual_seed(seeding.stream_seed(seed, seeding.MODEL_INIT))
        model = task.build_model()
        for call in range(math.ceil(steps / task.local_steps)):
            task.train(model, sample, seeding.stream_seed(seed, site.index, seeding.AUDIT, k, call), {"phase": "train"})
        return model

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        _, task, data = load(context)
        split = _incoming_config(message).get("split", "test")
        if split not in ("train", "test"):
            raise ValueError(f"evaluate: unknown split {split!r} (train or test)")
        metrics = task.evaluate(_global_model(task, message), data.train if split == "train" else data.test)
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)

    return app
