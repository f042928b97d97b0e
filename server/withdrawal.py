"""A site withdrawal, end to end: unlearn, retrain the oracle, and score (docs/design.md#unlearning).

The subsets: *forget* is the withdrawn site's training split (as it holds it: with corrupted
labels when it withdraws for incorrectness); *retain* the training splits of the sites that
trained and remain; *test* the test splits (correct labels) of every site but the withdrawn
ones, held-out sites included. Each subset's value is the task's primary metric, averaged over
its sites (those that can compute it: a site whose split lacks what the metric needs is left
out; a subset where no site can makes the scores undefined). Membership inference (the loss
attack of :mod:`sites.membership_inference`, the site's training patients against its test
patients) runs at the withdrawn site on the model before, after and retrained. With DP, the
record says what the withdrawal spent of each involved site's privacy budget
(:mod:`server.withdrawal_privacy`).
"""

import time

import numpy as np
import torch
from flwr.app import ArrayRecord

from sites.protocol import AUDIT, EVALUATE, AuditQuery, AuditReply, EvaluateConfig, RecordName, request

from .records import WithdrawalRecord
from .scenario import Withdrawal
from .ues import unlearning_efficiency
from .unlearning import UnlearningContext, UnlearningMethod
from .withdrawal_privacy import privacy_record

MODELS = ("before", "after", "oracle")


def _mean(values) -> float | None:
    """Mean of the defined values; ``None`` if there are none."""
    defined = [float(v) for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


class WithdrawalEvent:
    """Runs one withdrawal and describes it (:class:`~server.records.WithdrawalRecord`).

    The unlearned model and the oracle are saved next to the stage checkpoints
    (``stage_<t>_without_<site>.pt``, ``stage_<t>_oracle_without_<site>.pt``).

    Parameters
    ----------
    method : UnlearningMethod
        The configured method.
    context : UnlearningContext
        What the method (and the oracle's retraining) may use.
    metric : str
        The task's primary metric.
    dp_delta : float, optional
        The delta of the sites' DP guarantee (``None``: the sites train without DP).
    """

    def __init__(self, method: UnlearningMethod, context: UnlearningContext, metric: str,
                 dp_delta: float | None = None) -> None:
        self.method, self.context, self.metric, self.dp_delta = method, context, metric, dp_delta
        self.scenario = context.scenario

    def run(self, withdrawal: Withdrawal, before: ArrayRecord) -> tuple[ArrayRecord, WithdrawalRecord]:
        """Unlearn ``withdrawal.site`` from ``before``; return the new global model and the record."""
        gone = set(self.scenario.gone_at(withdrawal))
        subsets = {"forget": [withdrawal.site],
                   "retain": [s for s in self.scenario.seen_by(withdrawal.stage) if s not in gone],
                   "test": [s for s in self.scenario.site_ids if s not in gone]}
        charged = dict(self.context.views.sites.accountants)  # DP histories before the withdrawal
        start = time.perf_counter()
        oracle = self.context.retrain(withdrawal)
        retrain_seconds = time.perf_counter() - start
        if self.dp_delta is not None and not self.method.is_oracle:  # the yardstick is not charged
            self.context.views.set_accountants(charged, self.context.timeout)
        start = time.perf_counter()
        after = oracle if self.method.is_oracle else self.method.unlearn(withdrawal, before, self.context)
        seconds = retrain_seconds if self.method.is_oracle else time.perf_counter() - start
        models = {"before": before, "after": after, "oracle": oracle}
        for name, model in (("without", after), ("oracle_without", oracle)):
            torch.save(model.to_torch_state_dict(),
                       self.context.checkpoints / f"stage_{withdrawal.stage}_{name}_{withdrawal.site}.pt")
        # `none` keeps the model before and an oracle method returns the oracle itself: measure each model once.
        measured: dict[int, tuple[dict, float]] = {}
        for model in models.values():
            if id(model) not in measured:
                measured[id(model)] = (self._subset_metrics(model, subsets), self._forget_mia(withdrawal.site, model))
        per_site = {name: measured[id(model)][0] for name, model in models.items()}
        performance = {name: {subset: _mean(values[subset].values()) for subset in subsets}
                       for name, values in per_site.items()}
        defined = all(value is not None for values in performance.values() for value in values.values())
        privacy = None
        if self.dp_delta is not None:
            roles = {withdrawal.site: "forget", **{site: "retain" for site in subsets["retain"]}}
            privacy = privacy_record(roles, charged, self.context.views.sites.accountants, self.dp_delta)
        record = WithdrawalRecord(
            site=withdrawal.site, stage=withdrawal.stage, reason=self.scenario.reason, method=self.method.name,
            metric=self.metric, subsets=subsets, performance=performance, per_site=per_site,
            scores=unlearning_efficiency(*(performance[name] for name in MODELS)) if defined else None,
            seconds=seconds, retrain_seconds=retrain_seconds,
            cost_ratio=seconds / retrain_seconds if retrain_seconds > 0 else None,
            mia_forget_auc={name: measured[id(model)][1] for name, model in models.items()}, privacy=privacy)
        return after, record

    def _subset_metrics(self, arrays: ArrayRecord,
                        subsets: dict[str, list[str]]) -> dict[str, dict[str, float | None]]:
        """Subset -> site -> primary metric of ``arrays`` on that site's split of the subset
        (``None`` where the task cannot compute it, e.g. a group AUC on a split without that group)."""
        values = {}
        for subset, sites in subsets.items():
            if not sites:
                values[subset] = {}
                continue
            view = self.context.view(sites)
            split = "test" if subset == "test" else "train"
            messages = EVALUATE.messages(request(EvaluateConfig(split=split), model=arrays), view.get_node_ids())
            replies = view.send_and_receive(messages, timeout=self.context.timeout)
            values[subset] = {view.site_of_node(reply.metadata.src_node_id):
                              reply.content[RecordName.METRICS].get(self.metric) for reply in replies}
        return values

    def _forget_mia(self, site: str, arrays: ArrayRecord) -> float:
        view = self.context.view([site])
        query = AuditQuery(reference_models=0, reference_steps=0)
        (reply,) = view.send_and_receive(AUDIT.messages(request(query, model=arrays), view.get_node_ids()),
                                         timeout=self.context.timeout)
        return float(AuditReply.from_record(reply.content[RecordName.AUDIT]).attacks["loss"].overall.auc.value)
