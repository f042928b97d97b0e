"""The Flower ClientApp a hospital runs.

Handlers:

- ``query``: which site this node is;
- ``query.data``: load (generate or read) the site's data now and report the split sizes, so
  that bad data stops a run before any training;
- ``query.statistics``: counts the task needs summed across sites before a phase (e.g. label x
  pseudo-bias counts); counts only, never samples;
- ``train``: local training of the received global model on the site's training split,
  inside the Flower mods the strategy needs (Flower's client-side differential-privacy
  wrappers: clipping the update to the norm their config carries); simulated faults may crash
  it or spoil its reply (:mod:`sites.faults`); with DP, its metrics are those
  ``privacy.train_metrics`` releases (:meth:`~sites.privacy.DPConfig.released_metrics`);
- ``train.unlearn``: the site's part of an unlearning round (:mod:`sites.unlearning`): the forget
  objective at a withdrawing site, the retain objective at the others; with DP, as DP-SGD
  charged to the site's accountant like training;
- ``train.generator``: train the replay generator of Site-Modulated Diffusion and this site's
  prompt tokens on the site's training split, with the server's replay of earlier sites under
  their own prompts (:mod:`sites.diffusion`); weights and prompt only go back;
- ``query.fisher``: the diagonal Fisher information of the received model on the training
  split (EWC, :mod:`sites.ewc`);
- ``query.exemplars``: training samples handed to the server: the real-buffer replay reference,
  which breaks the privacy rule on purpose (reports say so);
- ``evaluate``: the primary and secondary metrics of the received model on the site's test split
  (or, with ``split: validation``, its validation split; with ``split: train``, its training
  split: the forget and retain sets of a withdrawal);
- ``query.audit``: membership inference against the received model on the site's own data
  (:mod:`sites.membership_inference`): ROC summaries only, never a per-sample score;
- ``query.resume``: the server sets the node's state back to what it keeps of it: its
  training-call count (which seeds local training) and its DP accountant (a resumed run, and a
  withdrawal after the oracle's uncharged retraining).

The messages, their records and their configs are :mod:`sites.protocol`'s. A ``train`` message
may carry, besides the model, ``replay`` (samples of earlier sites, which
the site trains on as the config says: :mod:`sites.replay_objectives`) and EWC's
``ewc-fisher`` / ``ewc-anchor`` arrays (:mod:`sites.ewc`).

Only model arrays (the task's model, the generator and its prompt, a Fisher), metrics, counts
and, with DP, the accountant's history (noise, sample rate, steps) leave the site, except
through ``query.exemplars``. The site's data is generated (or read)
once per Ray actor and kept in memory for the rest of the run.
"""

import functools
import math
from dataclasses import replace
import uuid
from collections.abc import Callable
from typing import Any

import torch
from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from torch.utils.data import TensorDataset

from . import protocol, seeding
from .alignment_meter import AlignmentMeter
from .ewc import fisher_diagonal, with_ewc
from .faults import FaultConfig, SiteCrash
from .membership_inference import site_audit
from .privacy import DPConfig, PrivateTraining, SiteAccountant
from .protocol import (AccountantHistory, DataReport, MetricKey, NodeState, RecordName, ReplayOptions, SiteIdentity,
                       TrainConfig, model_record)
from .replay import pack_domains, unpack_domains
from .replay_objectives import task_replay_objective
from .spec import SiteSpec
from .tasks import Objective, SiteData, Task
from .tasks.capabilities import reference_sample
from .unlearning import unlearn

# Flower's error code range for application errors raised inside a ClientApp.
SITE_ERROR_CODE = 0
_STATE_KEY = "medsites"


# What a site's process keeps for the rest of the run, by app and site index: the site's data and
# the privacy audit's reference sample, made on first use. Not in the app's closure: Flower's
# simulation engine pickles the ClientApp anew with every message it sends to a Ray actor.
_per_process: dict[tuple[str, int, str], Any] = {}


def _made_once(key: tuple[str, int, str], make: Callable[[], Any]) -> Any:
    if key not in _per_process:
        _per_process[key] = make()
    return _per_process[key]


def _global_model(task: Task, message: Message) -> torch.nn.Module:
    """The task's network holding the arrays the server sent."""
    return _model(task, model_record(message))


def _model(task: Task, arrays: ArrayRecord) -> torch.nn.Module:
    model = task.build_model()
    model.load_state_dict(arrays.to_torch_state_dict())
    return model


def _batch_loss(task: Task, config: TrainConfig, model: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
    return task.batch_loss(model, batch, config)


def _state(context: Context) -> NodeState:
    """What this node keeps between messages: its training-call count, its DP accountant."""
    record = context.state.config_records.get(_STATE_KEY)
    return NodeState() if record is None else NodeState.from_record(record)


def _keep(context: Context, state: NodeState) -> None:
    context.state.config_records[_STATE_KEY] = state.to_record()


def _next_call_seed(seed: int, site: SiteSpec, context: Context) -> int:
    """Seed of this node's next training call: the call count, not the round, seeds local
    training, so any strategy (whatever it puts in its config) trains reproducibly."""
    calls = _state(context).train_calls + 1
    _keep(context, replace(_state(context), train_calls=calls))
    return seeding.stream_seed(seed, site.index, seeding.Stream.LOCAL_TRAINING, calls)


def _identity(site: SiteSpec, message: Message) -> Message:
    return Message(RecordDict({RecordName.SITE: SiteIdentity(site.id).to_record()}), reply_to=message)


def build_client_app(task: Task, sites: list[SiteSpec], seed: int, num_threads: int, dp: DPConfig | None = None,
                     planned_steps: dict[str, int] | None = None, faults: FaultConfig | None = None,
                     train_mods: list[Mod] | None = None) -> ClientApp:
    """Make the ClientApp for a federation.

    The arguments travel with the app (pickled) to every site's process; each process makes a
    site's data once, on the site's first message.

    Parameters
    ----------
    task : Task
        The task, built from the ``task`` config node.
    sites : list of SiteSpec
        All sites of the scenario; Flower's partition id ``i`` plays ``sites[i]``.
    seed : int
        The run's top-level seed.
    num_threads : int
        Torch threads per site process (the CPUs Ray gives each actor).
    dp : DPConfig, optional
        Train every site with DP-SGD (``privacy=dp``).
    planned_steps : dict, optional
        Site id -> DP-SGD steps the run plans for it (training, and unlearning for the scenario's
        withdrawals); with a ``target_epsilon``, each site picks the noise that reaches it after
        exactly these steps.
    faults : FaultConfig, optional
        Simulated faults: each training call crashes with ``faults.crash_prob`` and spoils its
        reply with ``faults.bad_reply_prob``.
    train_mods : list of Mod, optional
        Flower mods around the ``train`` handler that the strategy needs (the client-side
        clipping of Flower's client-side differential-privacy wrappers).
    """
    app_id = uuid.uuid4().hex  # names this app's data in _per_process
    planned_steps = planned_steps or {}
    faults = faults or FaultConfig()

    def noise_multiplier(site: SiteSpec, task: Task, data: SiteData) -> float:
        return dp.noise_for(min(1.0, task.batch_size / len(data.train)), max(1, planned_steps.get(site.id, 1)))

    def accountant(context: Context) -> SiteAccountant:
        return SiteAccountant(_state(context).dp_history or "[]")

    def private_training(site: SiteSpec, task: Task, data: SiteData, context: Context) -> PrivateTraining | None:
        if dp is None:
            return None
        return PrivateTraining(noise_multiplier(site, task, data), dp.max_grad_norm, accountant(context))

    def site_of(context: Context) -> SiteSpec:
        return sites[int(context.node_config["partition-id"])]

    def load(context: Context) -> tuple[SiteSpec, Task, SiteData]:
        torch.set_num_threads(num_threads)
        site = site_of(context)
        return site, task, _made_once((app_id, site.index, "data"), lambda: task.site_data(site, seed))

    def report_site_errors(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        # Turn any failure into an error reply that names the site, instead of a traceback
        # in a Ray worker's log.
        try:
            return call_next(message, context)
        except Exception as error:  # noqa: BLE001 - every failure must reach the server
            reason = f"{type(error).__name__}: {error}"
            return Message(Error(code=getattr(error, "code", SITE_ERROR_CODE), reason=reason), reply_to=message)

    app = ClientApp(mods=[report_site_errors])

    @protocol.IDENTIFY.register(app)
    def identify(message: Message, context: Context) -> Message:
        return _identity(site_of(context), message)

    @protocol.CHECK_DATA.register(app)
    def check_data(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        # an unreachable target epsilon stops the run here, before training
        report = DataReport(len(data.train), len(data.test),
                            None if dp is None else noise_multiplier(site, task, data))
        return Message(RecordDict({RecordName.DATA: report.to_record()}), reply_to=message)

    @protocol.STATISTICS.register(app)
    def report_statistics(message: Message, context: Context) -> Message:
        _, task, data = load(context)
        counts = task.site_statistics(_global_model(task, message), data, protocol.STATISTICS.config_of(message))
        return Message(RecordDict({RecordName.STATISTICS: MetricRecord(counts)}), reply_to=message)

    @protocol.TRAIN.register(app, mods=train_mods)
    def train(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        model = _global_model(task, message)
        privacy = private_training(site, task, data, context)
        config = protocol.TRAIN.config_of(message)
        call_seed = _next_call_seed(seed, site, context)
        call = _state(context).train_calls
        if faults.crashes(seed, site.index, call):
            raise SiteCrash(f"simulated crash in training call {call} (faults.crash_prob={faults.crash_prob})")
        # Under DP the meter's extra backward passes would run through Opacus's per-sample hooks.
        meter = AlignmentMeter() if privacy is None else None
        metrics = task.train(model, data.train, seed=call_seed, config=config, privacy=privacy,
                             objective=local_objective(task, model, data.train, message, config, call_seed, meter))
        metrics |= meter.metrics() if meter is not None else {}
        trained = model.state_dict()
        if faults.spoils(seed, site, call):
            trained, metrics = faults.spoil(trained, model_record(message).to_torch_state_dict(), metrics)
        return trained_reply(message, context, trained, metrics, privacy, lambda: task.sample_losses(model, data.train),
                             call_seed)

    def trained_reply(message: Message, context: Context, trained: dict[str, torch.Tensor],
                      metrics: dict[str, float], privacy: PrivateTraining | None,
                      sample_losses: Callable[[], torch.Tensor], call_seed: int) -> Message:
        """The model's arrays (``trained``) and metrics after local steps; with DP, the metrics
        are those ``privacy.train_metrics`` releases (``sample_losses``: the trained model's
        per-sample losses on the training split, for ``noise``, whose noise ``call_seed``
        seeds), the accountant's new history is kept in the node state and sent, and the
        metrics gain the epsilon spent so far."""
        reply = RecordDict({RecordName.MODEL: ArrayRecord(trained)})
        if privacy is not None:
            metrics = dp.released_metrics(metrics, sample_losses, privacy.accountant,
                                          seeding.stream_seed(call_seed, seeding.Stream.DP_METRICS))
            history = privacy.accountant.to_json()
            _keep(context, replace(_state(context), dp_history=history))
            metrics[MetricKey.EPSILON] = privacy.accountant.epsilon(dp.delta)
            reply[RecordName.ACCOUNTANT] = AccountantHistory(history).to_record()
        reply[RecordName.METRICS] = MetricRecord(metrics)
        return Message(reply, reply_to=message)

    def local_objective(task: Task, model: torch.nn.Module, train: TensorDataset, message: Message,
                        config: TrainConfig, call_seed: int, meter: AlignmentMeter | None) -> Objective | None:
        """The task's loss, with replayed earlier sites, PGA's pseudo-domains of ``train`` (the
        site's training split) and/or EWC's penalty when the strategy asks for them; ``None``
        (the task's own loss) when it asks for none. ``meter`` measures PGA's steps."""
        content = message.content
        replayed, penalised = RecordName.REPLAY in content.array_records, RecordName.EWC_FISHER in content.array_records
        options = config.replay or ReplayOptions()
        pseudo = options.with_pseudo_domains
        if not (replayed or penalised or pseudo):
            return None
        objective = functools.partial(_batch_loss, task, config)
        if replayed or pseudo:
            replay = unpack_domains(content[RecordName.REPLAY]) if replayed else {}
            objective = task_replay_objective(task, model, config, train, replay, options, call_seed, meter)
        if penalised:
            fisher, anchor = ({key: value.to(task.compute.device) for key, value in arrays.items()}
                              for arrays in (content[name].to_torch_state_dict()
                                             for name in (RecordName.EWC_FISHER, RecordName.EWC_ANCHOR)))
            objective = with_ewc(objective, fisher, anchor, float(config.ewc_weight))
        return objective

    @protocol.TRAIN_GENERATOR.register(app)
    def train_site_generator(message: Message, context: Context) -> Message:
        # diffusers takes seconds to import: only runs that train a generator pay for it.
        from .diffusion import build_generator, train_generator

        site, task, data = load(context)
        config = protocol.TRAIN_GENERATOR.config_of(message)
        content = message.content
        network = build_generator(task, config)
        network.load_state_dict(content[RecordName.GENERATOR].to_torch_state_dict())
        prompt = torch.nn.Parameter(content[RecordName.PROMPT].to_torch_state_dict()[RecordName.PROMPT])
        x, classes = task.encode_replay(data.train)
        replay = []
        if RecordName.REPLAY in content.array_records:
            prompts = content[RecordName.REPLAY_PROMPTS].to_torch_state_dict()
            replay = [(*task.encode_replay(domain), prompts[name])
                      for name, domain in unpack_domains(content[RecordName.REPLAY]).items()]
        metrics = train_generator(network, prompt, x, classes, config.steps, config.batch_size, config.lr,
                                  _next_call_seed(seed, site, context), replay, task.compute, config.prompt_dropout)
        reply = RecordDict({RecordName.GENERATOR: ArrayRecord(network.state_dict()),
                            RecordName.PROMPT: ArrayRecord({RecordName.PROMPT: prompt.detach()}),
                            RecordName.METRICS: MetricRecord(metrics)})
        return Message(reply, reply_to=message)

    @protocol.FISHER.register(app)
    def report_fisher(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        fisher = fisher_diagonal(task, _global_model(task, message), data.train,
                                 protocol.FISHER.config_of(message).max_samples,
                                 _next_call_seed(seed, site, context), task.compute)
        reply = RecordDict({RecordName.FISHER: ArrayRecord(fisher),
                            RecordName.METRICS: MetricRecord({MetricKey.NUM_EXAMPLES: len(data.train)})})
        return Message(reply, reply_to=message)

    @protocol.EXEMPLARS.register(app)
    def share_exemplars(message: Message, context: Context) -> Message:
        # The real-buffer reference: training samples leave the site. It breaks the privacy rule
        # on purpose, to show what replay from real data would give; reports label it so.
        site, _, data = load(context)
        count = min(len(data.train), protocol.EXEMPLARS.config_of(message).count)
        chosen = seeding.numpy_rng(seed, site.index, seeding.Stream.REPLAY).permutation(len(data.train))[:count]
        exemplars = TensorDataset(*(tensor[torch.from_numpy(chosen)] for tensor in data.train.tensors))
        return Message(RecordDict({RecordName.EXEMPLARS: pack_domains({site.id: exemplars})}), reply_to=message)

    @protocol.UNLEARN.register(app)
    def unlearn_site(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        model = _model(task, message.content[RecordName.MODEL])
        privacy = private_training(site, task, data, context)
        call_seed = _next_call_seed(seed, site, context)
        metrics = unlearn(task, model, _model(task, message.content[RecordName.REFERENCE]), data.train,
                          protocol.UNLEARN.config_of(message), seed=call_seed, privacy=privacy)
        return trained_reply(message, context, model.state_dict(), metrics, privacy,
                             lambda: task.sample_losses(model, data.train), call_seed)

    @protocol.AUDIT.register(app)
    def audit(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        query = protocol.AUDIT.config_of(message)
        references = [reference_model(site, task, k, query.reference_steps, query.attack)
                      for k in range(query.reference_models)]
        epsilon = None if dp is None else accountant(context).epsilon(dp.delta)
        metrics = site_audit(task, _global_model(task, message), data, references, epsilon,
                             seeding.numpy_rng(seed, site.index, seeding.Stream.AUDIT), query.attack)
        return Message(RecordDict({RecordName.AUDIT: MetricRecord(metrics)}), reply_to=message)

    def reference_model(site: SiteSpec, task: Task, k: int, steps: int, attack: str) -> torch.nn.Module:
        """A model of the same architecture and step budget as the federation's, trained (without
        DP) on fresh data of the site's distribution: for the ``reference`` attack from the
        federation's initialisation and one draw shared by all ``k``, for ``lira`` from an
        initialisation and a draw of its own (LiRA's Gaussians are the spread over training runs)."""
        if attack == "lira":
            init_seed, draw_seed = (seeding.stream_seed(seed, site.index, seeding.Stream.LIRA_REFERENCE, k, purpose)
                                    for purpose in range(2))
            sample = reference_sample(task, site, draw_seed)
        else:
            init_seed = seeding.stream_seed(seed, seeding.Stream.MODEL_INIT)
            sample = _made_once((app_id, site.index, "reference"), lambda: reference_sample(task, site, seed))
        torch.manual_seed(init_seed)
        model = task.build_model()
        for call in range(math.ceil(steps / task.local_steps)):
            task.train(model, sample, seeding.stream_seed(seed, site.index, seeding.Stream.AUDIT, k, call),
                       TrainConfig())
        return model

    @protocol.RESUME.register(app)
    def resume(message: Message, context: Context) -> Message:
        _keep(context, protocol.RESUME.config_of(message))
        return _identity(site_of(context), message)

    @protocol.EVALUATE.register(app)
    def evaluate(message: Message, context: Context) -> Message:
        site, task, data = load(context)
        split = protocol.EVALUATE.config_of(message).split
        evaluated = {"train": data.train, "validation": data.validation, "test": data.test}[split]
        if evaluated is None:
            raise ValueError(f"site {site.id} has no validation split to evaluate on (evaluate_split=validation; "
                             "a manifest must name validation rows)")
        metrics = task.evaluate_on_device(_global_model(task, message), evaluated)
        return Message(RecordDict({RecordName.METRICS: MetricRecord(metrics)}), reply_to=message)

    return app
