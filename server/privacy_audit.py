"""The privacy audit (docs/design.md#privacy): after the timeline, every site that trained runs
membership inference against the final global model on its own data
(:mod:`sites.membership_inference`); the server gathers the ROC summaries, judges each site in
plain words, and the run writes them to ``privacy_audit.json``."""

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import NonNegativeInt, model_validator

from sites.config import ConfigModel, invalid
from sites.intervals import resolves, smallest_resolvable_fpr
from sites.membership_inference import FPR_GRID, LIRA_MIN_MODELS
from sites.protocol import AuditReply, Interval

from .records import AuditRecord, SiteAudit, UnlearningSpend, Verdict, WithdrawalRecord
from .withdrawal_privacy import unlearning_spent

# Exposure levels: an attack at chance has AUC 0.5 and TPR 0.01 at 1 % FPR.
_CHANCE_AUC = 0.5
_LOW = {"auc": 0.55, "tpr": 0.05}
_HIGH = {"auc": 0.65, "tpr": 0.15}
#: The false-positive rate whose TPR the verdict uses, where the non-members resolve it, and its
#: entry among the reply's low-FPR rates (:data:`~sites.protocol.LOW_FPRS`).
VERDICT_FPR = 0.01
_AT_VERDICT_FPR = "1pct"
#: The verdict levels, from least to most exposed; ``inconclusive`` when the intervals support none.
LEVELS = ("low", "moderate", "high", "inconclusive")


class AuditConfig(ConfigModel):
    """``scenario.audit``: run the privacy audit after the timeline.

    Parameters
    ----------
    reference_models : int
        Reference models each site trains for the reference-model attacks (0: loss attack only).
    attack : str
        ``reference``: the reference models share the federation's initialisation and one draw
        of the site's data, and the ``reference`` attack subtracts their mean loss. ``lira``:
        each has its own initialisation and data draw, and the site runs the likelihood-ratio
        attack beside ``loss`` and ``reference`` (whose mean then runs over these models); it
        fits a Gaussian per patient, so it needs at least two
        (:data:`~sites.membership_inference.LIRA_MIN_MODELS`).
    """

    reference_models: NonNegativeInt = 1
    attack: Literal["reference", "lira"] = "reference"

    @model_validator(mode="after")
    def _enough_for_lira(self) -> "AuditConfig":
        if self.attack == "lira" and self.reference_models < LIRA_MIN_MODELS:
            raise invalid("reference_models", f"the lira attack fits a Gaussian to each patient's reference models' "
                          f"confidence and needs at least {LIRA_MIN_MODELS} (got {self.reference_models}; 4 to 8 "
                          "is usual)")
        return self


def level(reply: AuditReply) -> str:
    """A site's exposure level, claimed only where every attack's 95 % intervals support it:

    - ``high``: some attack's AUC is at least 0.65 (its interval's lower end), or its TPR at
      1 % FPR at least 15 % where the non-members resolve 1 % FPR;
    - ``moderate``: otherwise, some attack is better than chance (its AUC interval lies above 0.5);
    - ``low``: otherwise, every attack's AUC interval lies below 0.55 and, with 1 % FPR
      resolved, every TPR interval at 1 % FPR below 5 %;
    - ``inconclusive``: none of these (e.g. an interval that spans chance and reaches 0.55, or
      1 % FPR unresolved, which leaves low-false-alarm exposure unmeasured).

    An AUC below 0.5 is never better than chance: its interval's lower end is below 0.5 too.
    """
    aucs = [result.overall.auc for result in reply.attacks.values()]
    resolved = resolves(VERDICT_FPR, reply.n_non_members)
    tprs = [result.overall.tpr[_AT_VERDICT_FPR] for result in reply.attacks.values()] if resolved else []
    if any(auc.low >= _HIGH["auc"] for auc in aucs) or any(tpr.low >= _HIGH["tpr"] for tpr in tprs):
        return "high"
    if any(auc.low > _CHANCE_AUC for auc in aucs):
        return "moderate"
    if resolved and all(auc.high < _LOW["auc"] for auc in aucs) and all(tpr.high < _LOW["tpr"] for tpr in tprs):
        return "low"
    return "inconclusive"


def _figures(attack: str, auc: Interval) -> str:
    return f"the {attack} attack's AUC is {auc.value:.2f} (95 % CI {auc.low:.2f}-{auc.high:.2f})"


_NO_LOW = ", so low exposure cannot be claimed"
_WORDS = {"high": "clearly", "moderate": "measurably better than chance",
          "low": "no better than chance within what was measured"}


def _exposure(reply: AuditReply, verdict: str) -> list[str]:
    """The sentences of the verdict's measurements: the deciding attack with its interval, what
    the low-FPR figure shows or why it cannot be used, and how many patients it rests on."""
    aucs = {attack: result.overall.auc for attack, result in reply.attacks.items()}
    # high / moderate: the attack with the strongest evidence; otherwise the one that came closest
    deciding = max(aucs, key=lambda a: aucs[a].low if verdict in ("high", "moderate") else aucs[a].high)
    n_members, n_non_members = reply.n_members, reply.n_non_members
    if verdict == "inconclusive":
        opening = (f"The measurement cannot tell whether an attacker holding the final model tells this "
                   f"site's training patients from others: {_figures(deciding, aucs[deciding])}")
    else:
        opening = (f"An attacker holding the final model tells this site's training patients from others "
                   f"{_WORDS[verdict]}: {_figures(deciding, aucs[deciding])}")
    sentences = [f"{opening}, measured on {n_members} training patients and {n_non_members} others."]
    if resolves(VERDICT_FPR, n_non_members):
        tpr = max((result.overall.tpr[_AT_VERDICT_FPR] for result in reply.attacks.values()), key=lambda t: t.low)
        sentences.append(f"At 1 % false alarms the stronger attack finds {tpr.value:.0%} of them "
                         f"(95 % CI {tpr.low:.0%}-{tpr.high:.0%}).")
    else:
        sentences.append(f"1 % false alarms cannot be resolved with {n_non_members} non-members (the smallest "
                         f"non-zero false-positive rate they show is 1/{n_non_members} = "
                         f"{smallest_resolvable_fpr(n_non_members):.1%}): the true-positive rate there is not used "
                         f"for the verdict{_NO_LOW if verdict == 'inconclusive' else ''}.")
    if aucs[deciding].high < _CHANCE_AUC:
        sentences.append("The attack does worse than chance: members' losses are higher than non-members', a sign "
                         "that training and test patients differ, not evidence of membership.")
    return sentences


def _markers(reply: AuditReply) -> list[str]:
    """Marked patients are more exposed only where some attack's AUC interval on them lies
    wholly above its interval on the unmarked ones (a conservative test: both are 95 %)."""
    pairs = [(result.marked.auc, result.unmarked.auc) for result in reply.attacks.values()
             if result.marked is not None and result.unmarked is not None]
    if not pairs:
        return []
    marked, unmarked = max(pairs, key=lambda pair: pair[0].low - pair[1].high)  # the widest gap between intervals
    figures = (f"AUC {marked.value:.2f} (95 % CI {marked.low:.2f}-{marked.high:.2f}) vs {unmarked.value:.2f} "
               f"({unmarked.low:.2f}-{unmarked.high:.2f}) for the others, on {reply.n_marked_members:.0f} marked "
               f"training patients")
    if marked.low > unmarked.high:
        return [f"Patients whose images carry identifying markers are more exposed ({figures})."]
    return [f"Patients with identifying markers are not measurably more exposed ({figures})."]


def judge(reply: AuditReply, unlearning: Sequence[UnlearningSpend] = (),
          scope: Mapping[str, Sequence[str]] | None = None) -> Verdict:
    """A site's exposure :func:`level` and the reasons, in plain words.

    Parameters
    ----------
    reply : AuditReply
        The site's audit reply (:func:`~sites.membership_inference.site_audit`).
    unlearning : sequence of UnlearningSpend
        The withdrawals whose unlearning spent budget at the site
        (:func:`~server.withdrawal_privacy.unlearning_spent`).
    scope : mapping, optional
        With DP, what the site's epsilon covers and what left the site outside it
        (:func:`dp_scope`).
    """
    verdict = level(reply)
    sentences = _exposure(reply, verdict) + _markers(reply)
    if reply.epsilon is not None:
        covered = [*(scope or {}).get("covered", ["its DP-SGD training"])]
        sentences.append(f"The site trained with differential privacy: epsilon {reply.epsilon:.2f} bounds what "
                         f"an attack can learn from {_listed(covered)}.")
        sentences += [f"It includes the {spent.steps} DP-SGD steps the site took to unlearn site "
                      f"{spent.withdrawn} after stage {spent.stage} ({spent.method}), which took its "
                      f"epsilon from {spent.epsilon.before:.2f} to {spent.epsilon.after:.2f}."
                      for spent in unlearning]
        if scope and scope.get("outside"):
            sentences.append(f"It does not cover what else left the site: {_listed(scope['outside'])}.")
    else:
        sentences.append("The site trained without differential privacy: no formal bound.")
    return Verdict(verdict, " ".join(sentences))


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{'; '.join(items[:-1])}; and {items[-1]}"


def dp_scope(train_metrics: str, phase_statistics: bool, withdrawals: bool) -> dict[str, list[str]]:
    """What a DP site's epsilon covers in a run and what its replies released outside it
    (the handlers of ``sites/client/`` a DP run calls: strategies that change the sites'
    objective, hence EWC's Fisher, the generator and real exemplars, are refused with DP).

    Parameters
    ----------
    train_metrics : str
        ``privacy.train_metrics``: ``release``, ``noise`` or ``withhold``.
    phase_statistics : bool
        The task has a phase whose sites report statistics first (``query.statistics``).
    withdrawals : bool
        The scenario has withdrawals (their unlearning, evaluations and forget-set attack).
    """
    covered = ["the model updates it sent from DP-SGD training"]
    outside = ["its split sizes, which its replies' example counts and its accountant's history (noise, "
               "sampling rate, steps) also reveal"]
    if withdrawals:
        covered.append("the model updates of the unlearning and retraining steps a withdrawal charged to it")
    if train_metrics == "noise":
        covered.append("the training losses it reported, each through a Gaussian mechanism charged to the same "
                       "accountant")
    elif train_metrics == "release":
        outside.append("the mean training loss of every training call (train_loss)")
    if phase_statistics:
        outside.append("the statistics it reported before a phase (e.g. PBBL's label x pseudo-bias counts, "
                       "grading's per-modality validation losses)")
    outside.append("the evaluation metrics of each stage's model on its test split")
    if withdrawals:
        outside.append("the metrics of the models around a withdrawal on its training split, and the loss "
                       "attack's AUC on a withdrawing site's patients")
    outside.append("this audit's ROC summaries")
    return {"covered": covered, "outside": outside}


def audit_result(site_replies: Mapping[str, AuditReply], delta: float | None,
                 withdrawals: Sequence[WithdrawalRecord] = (),
                 scope: Mapping[str, Sequence[str]] | None = None) -> AuditRecord:
    """``privacy_audit.json``'s content: every site's attack figures with its verdict and, where
    a withdrawal's unlearning spent budget at the site (``withdrawals``: the run's withdrawal
    records), what it spent (``unlearning``); with DP, what epsilon covers and what left the
    sites outside it (``scope``: :func:`dp_scope`)."""
    sites = {}
    for site, reply in site_replies.items():
        unlearning = unlearning_spent(withdrawals, site)
        sites[site] = SiteAudit(reply, judge(reply, unlearning, scope), unlearning)
    return AuditRecord(delta, FPR_GRID.tolist(), list(LEVELS), sites, dict(scope) if scope else None)
