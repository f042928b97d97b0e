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
- ``train.generator``: train the replay generator of Site-Modulated Diffusion and this site's
  prompt tokens on the site's training split, with the server's replay of earlier sites under
  their own prompts (:mod:`sites.diffusion`); weights and prompt only go back;
- ``query.fisher``: the diagonal Fisher information of the received model on the training
  split (EWC, :mod:`sites.ewc`);
- ``query.exemplars``: training samples handed to the server: the real-buffer replay reference,
  which breaks the privacy rule on purpose (reports say so);
- ``evaluate``: the primary and secondary metrics of the received model on the site's test split
  (or, with ``split: train``, its training split: the forget and retain sets of a withdrawal);
- ``query.audit``: membership inference against the received model on the site's own data
  (:mod:`sites.membership_inference`): ROC summaries only, never a per-sample score;
- ``query.resume``: a resumed run sets the node's state back to the checkpoint's: its
  training-call count (which seeds local training) and its DP accountant.

A ``train`` message may carry, besides the model, ``replay`` (samples of earlier sites, which
the site trains on as the config says: :mod:`sites.replay_objectives`) and EWC's
``ewc-fisher`` / ``ewc-anchor`` arrays (:mod:`sites.ewc`).

Only model arrays (the task's model, the generator and its prompt, a Fisher), metrics, counts
and, with DP, the accountant's history (noise, sample rate, steps) leave the site, except
through ``query.exemplars``. The site's data is generated (or read)
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
from .ewc import fisher_diagonal, with_ewc
from .faults import FaultConfig, SiteCrash
from .membership_inference import site_audit
from .privacy import DPConfig, PrivateTraining, SiteAccountant
from .replay import pack_domains, unpack_domains
from .replay_objectives import ReplayOptions, replay_objective
from .spec import SiteSpec
from .tasks import Objective, SiteData, Task, build_task
from .tasks.capabilities import reference_sample
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
    return reference_sample(_task(task_json), SiteSpec.from_dict(json.loads(site_json)), seed)


# Message types whose handlers take the node's next training-call seed: a resumed run counts
# the ones it sent to each site to set the count back (``query.resume``).
SEEDED_MESSAGE_TYPES = ("train", "train.generator", "train.unlearn", "query.fisher")
# The reply record of a DP site's accountant history, kept by the server for resuming.
ACCOUNTANT_KEY = "accountant"

# ArrayRecords a strategy may send besides the global model, under these keys.
REPLAY_KEY = "replay"
EWC_KEYS = ("ewc-fisher", "ewc-anchor")
_EXTRA_KEYS = (REPLAY_KEY, *EWC_KEYS)


def _incoming_arrays(message: Message) -> ArrayRecord:
    """The global model: the one ArrayRecord a strategy sends besides replay and EWC's
    arrays, whatever key it uses."""
    records = [record for key, record in message.content.array_records.items() if key not in _EXTRA_KEYS]
    if len(records) != 1:
        raise ValueError(f"expected one model ArrayRecord in the {message.metadata.message_type} message, "
                         f"got {len(records)}")
    return records[0]


def _global_model(task: Task, message: Message) -> torch.nn.Module:
    """The task's network holding the arrays the server sent."""
    return _model(task, _incoming_arrays(message))


def _model(task: Task, arrays: ArrayRecord) -> torch.nn.Module:
    model = task.build_model()
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def _batch_loss(task: Task, config: dict, model: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
    return task.batch_loss(model, batch, config)


def _incoming_config(message: Message) -> ConfigRecord:
    records = list(message.content.config_records.values())
    return records[0] if records else ConfigRecord()


def _state(context: Context) -> ConfigRecord:
    """What this node keeps between messages: its training-call count, its DP accountant."""
    return context.state.config_records.setdefault(_STATE_KEY, ConfigRecord({"train-calls": 0}))


def _next_call_seed(seed: int, site: SiteSpec, context: Context) -> int:
    """Seed of this node's next training call: the call count, not the round, seeds local
    training, so any strategy (whatever it puts in its config) trains reproducibly."""
    state = _state(context)
    state["train-calls"] = int(state["train-calls"]) + 1
    return seeding.stream_seed(seed, site.index, seeding.Stream.LOCAL_TRAINING, int(state["train-calls"]))


def build_client_app(task: dict[str, Any], sites: list[SiteSpec], seed: int, num_threads: int,
                     privacy: dict[str, Any] | None = None, planned_steps: dict[str, int] | None = None,
                     faults: FaultConfig | None = None) -> ClientApp:
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
    faults : FaultConfig, optional
        Simulated failures: each training call crashes with ``faults.crash_prob``.
    """
    task_json = json.dumps(task, sort_keys=True)
    site_jsons = [json.dumps(site.to_dict(), sort_keys=True) for site in sites]
    dp = DPConfig.from_config(privacy or {"method": "off"})
    planned_steps = planned_steps or {}
    faults = faults or FaultConfig()

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
            return Message(Error(code=getattr(error, "code", SITE_ERROR_CODE), reason=reason), reply_to=message)

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
        config = dict(_incoming_config(message))
        call_seed = _next_call_seed(seed, site, context)
        call = int(_state(context)["train-calls"])
        if faults.crashes(seed, site.index, call):
            raise SiteCrash(f"simulated crash in training call {call} (faults.crash_prob={faults.crash_prob})")
        metrics = task.train(model, data.train, seed=call_seed, config=config, privacy=privacy,
                             objective=local_objective(task, model, message, config, call_seed))
        if privacy is not None:
            _state(context)["dp-history"] = privacy.accountant.to_json()
            metrics["epsilon"] = privacy.accountant.epsilon(dp.delta)
        reply = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
        if privacy is not None:
            reply[ACCOUNTANT_KEY] = ConfigRecord({"dp-history": privacy.accountant.to_json()})
        return Message(reply, reply_to=message)

    def local_objective(task: Task, model: torch.nn.Module, message: Message, config: dict,
                        call_seed: int) -> Objective | None:
        """The task's loss, with replayed earlier sites and/or EWC's penalty when the strategy
        sends them; ``None`` (the task's own loss) when it sends neither."""
        content = message.content
        if REPLAY_KEY not in content.array_records and EWC_KEYS[0] not in content.array_records:
            return None
        objective = functools.partial(_batch_loss, task, config)
        if REPLAY_KEY in content.array_records:
            replay = {name: task.training_data(model, domain, config)
                      for name, domain in unpack_domains(content[REPLAY_KEY]).items()}
            objective = replay_objective(objective, replay, ReplayOptions.from_config(config), call_seed)
        if EWC_KEYS[0] in content.array_records:
            fisher, anchor = (content[key].to_torch_state_dict() for key in EWC_KEYS)
            objective = with_ewc(objective, fisher, anchor, float(config["ewc-weight"]))
        return objective

    @app.train("generator")
    def train_site_generator(message: Message, context: Context) -> Message:
        # diffusers takes seconds to import: only runs that train a generator pay for it.
        from .diffusion import build_generator, train_generator

        site, task, data = load(context)
        config = _incoming_config(message)
        network = build_generator(task, config)
        network.load_state_dict(message.content["generator"].to_torch_state_dict())
        prompt = torch.nn.Parameter(message.content["prompt"].to_torch_state_dict()["prompt"])
        x, classes = task.encode_replay(data.train)
        replay = []
        if REPLAY_KEY in message.content.array_records:
            prompts = message.content["replay-prompts"].to_torch_state_dict()
            replay = [(*task.encode_replay(domain), prompts[name])
                      for name, domain in unpack_domains(message.content[REPLAY_KEY]).items()]
        metrics = train_generator(network, prompt, x, classes, int(config["steps"]), int(config["batch-size"]),
                                  float(config["lr"]),
                                  _next_call_seed(seed, site, context),
                                  replay)
        reply = RecordDict({"generator": ArrayRecord(network.state_dict()),
                            "prompt": ArrayRecord({"prompt": prompt.detach()}), "metrics": MetricRecord(metrics)})
        return Message(reply, reply_to=message)

    @app.query("fisher")
    def report_fisher(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        fisher = fisher_diagonal(task, _global_model(task, message), data.train,
                                 int(_incoming_config(message)["max-samples"]),
                                 _next_call_seed(seed, site, context))
        reply = RecordDict({"fisher": ArrayRecord(fisher), "metrics": MetricRecord({"num-examples": len(data.train)})})
        return Message(reply, reply_to=message)

    @app.query("exemplars")
    def share_exemplars(message: Message, context: Context) -> Message:
        # The real-buffer reference: training samples leave the site. It breaks the privacy rule
        # on purpose, to show what replay from real data would give; reports label it so.
        site, _, data = load(context)
        count = min(len(data.train), int(_incoming_config(message)["count"]))
        chosen = seeding.numpy_rng(seed, site.index, seeding.Stream.REPLAY).permutation(len(data.train))[:count]
        exemplars = TensorDataset(*(tensor[torch.from_numpy(chosen)] for tensor in data.train.tensors))
        return Message(RecordDict({"exemplars": pack_domains({site.id: exemplars})}), reply_to=message)

    @app.train("unlearn")
    def unlearn_site(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        model = _model(task, message.content["arrays"])
        metrics = unlearn(task, model, _model(task, message.content["reference"]), data.train,
                          dict(_incoming_config(message)),
                          seed=_next_call_seed(seed, site, context))
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
                             seeding.numpy_rng(seed, site.index, seeding.Stream.AUDIT))
        return Message(RecordDict({"audit": MetricRecord(metrics)}), reply_to=message)

    def reference_model(site: SiteSpec, task: Task, k: int, steps: int) -> torch.nn.Module:
        """A model of the same architecture, initialisation and step budget as the federation's,
        trained (without DP) on fresh data of the site's distribution."""
        sample = _reference_sample(task_json, site_jsons[site.index], seed)
        torch.manual_seed(seeding.stream_seed(seed, seeding.Stream.MODEL_INIT))
        model = task.build_model()
        for call in range(math.ceil(steps / task.local_steps)):
            task.train(model, sample, seeding.stream_seed(seed, site.index, seeding.Stream.AUDIT, k, call), {"phase": "train"})
        return model

    @app.query("resume")
    def resume(message: Message, context: Context) -> Message:
        state = _state(context)
        for key, value in _incoming_config(message).items():
            state[key] = value
        return Message(RecordDict({"site": ConfigRecord({"site-id": site_of(context).id})}), reply_to=message)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        _, task, data = load(context)
        split = _incoming_config(message).get("split", "test")
        if split not in ("train", "test"):
            raise ValueError(f"evaluate: unknown split {split!r} (train or test)")
        metrics = task.evaluate(_global_model(task, message), data.train if split == "train" else data.test)
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=message)

    return app
