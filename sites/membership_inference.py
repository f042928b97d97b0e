"""Membership inference, measured where the data is (docs/design.md#privacy).

A site scores its own training samples (members) and samples of the same distribution that no
model of the federation trained on (non-members) with up to three attacks, and reports only each
attack's ROC summary, never a per-sample score:

- ``loss``: a sample is called a member when the model's loss on it is low;
- ``reference``: the loss minus the mean loss of reference models of the same architecture and
  training budget, trained on fresh data of the site's distribution (difficulty calibration:
  a sample that is easy for every model is not evidence of membership);
- ``lira``: the offline likelihood-ratio attack (Carlini et al. 2022, "Membership inference
  attacks from first principles"): per sample, a Gaussian fitted to the reference models'
  logit-scaled confidence, and how far above it the audited model's confidence lies. Its
  reference models each have their own initialisation and data draw, so that the Gaussian's
  spread is the spread over training runs.

The ROC is written out on a fixed logarithmic grid of false-positive rates, so that low-FPR
behaviour (TPR at 1 % and 0.1 % FPR), where membership inference matters, stays readable. Every
summary travels with its 95 % confidence interval (:mod:`sites.intervals`): the scores never
leave the site, so the intervals are computed here too.
"""

import numpy as np
import torch

from .group_metrics import auc
from .intervals import auc_interval, clopper_pearson, smallest_resolvable_fpr
from .protocol import LOW_FPRS, AttackResult, AuditReply, Interval, RocSummary

#: False-positive rates at which the ROC's true-positive rate is reported.
FPR_GRID = np.logspace(-3, 0, 31)
#: Reference models LiRA needs: its Gaussians' variance needs two.
LIRA_MIN_MODELS = 2
#: Reference models from which LiRA fits each sample's own variance (below, one pooled variance).
PER_SAMPLE_VARIANCE_MODELS = 64


def roc_curve(member_scores: np.ndarray, non_member_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of "member if score >= t" for every threshold ``t``,
    from the strictest (nothing called a member) to the loosest (everything)."""
    scores = np.concatenate([member_scores, non_member_scores])
    is_member = np.concatenate([np.ones(len(member_scores)), np.zeros(len(non_member_scores))])
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    tp, fp = np.cumsum(is_member)[last_of_tie], np.cumsum(1 - is_member)[last_of_tie]
    return np.r_[0.0, fp / len(non_member_scores)], np.r_[0.0, tp / len(member_scores)]


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The best true-positive rate among thresholds whose false-positive rate is at most ``target``."""
    return float(tpr[fpr <= target + 1e-12].max())


def roc_summary(member_scores: np.ndarray, non_member_scores: np.ndarray) -> RocSummary:
    """The AUC (MONAI's ROC AUC) with DeLong's interval, the TPR at each of
    :data:`~sites.protocol.LOW_FPRS` with Clopper–Pearson's interval over the members, the
    advantage (max TPR - FPR) and the ROC (TPR at :data:`FPR_GRID`); higher scores mean
    "member", at least 2 of each. With ``n`` non-members
    the smallest FPR above 0 is ``1 / n``: below it only the thresholds that call no non-member
    a member count, so TPR at 0.1 % FPR needs a thousand non-members to be more than a lower
    bound. The TPR intervals cover the members' sampling at the threshold the non-members
    picked, not the uncertainty of that threshold's own FPR."""
    fpr, tpr = roc_curve(member_scores, non_member_scores)
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(non_member_scores))]
    area = Interval(auc(np.r_[member_scores, non_member_scores], labels),
                    *auc_interval(member_scores, non_member_scores))
    rates = {}
    for name, target in LOW_FPRS.items():
        rate = tpr_at_fpr(fpr, tpr, target)
        rates[name] = Interval(rate, *clopper_pearson(round(rate * len(member_scores)), len(member_scores)))
    return RocSummary(area, rates, float((tpr - fpr).max()), [tpr_at_fpr(fpr, tpr, f) for f in FPR_GRID])


def logit_confidence(losses: torch.Tensor) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p = exp(-loss)``: for a cross entropy, the logit of the
    probability the model gives the right answer (for dense outputs, the geometric mean over
    positions). Across models it is close to Gaussian where the loss and ``p`` are not."""
    # A loss that underflowed to 0 would give infinity; the smallest positive float keeps the order.
    loss = np.maximum(losses.double().numpy(), np.finfo(np.float64).tiny)
    return -loss - np.log(-np.expm1(-loss))


def lira_scores(target_losses: torch.Tensor, reference_losses: list[torch.Tensor]) -> np.ndarray:
    """Offline LiRA's score of each sample: ``z = (phi - mu) / sigma``, where ``phi`` is the
    audited model's :func:`logit_confidence` and ``mu`` the mean of the reference models', all of
    which trained without the sample. The paper's likelihood is ``Phi(z)``, the normal CDF; ``z``
    ranks the samples the same and does not saturate.

    ``sigma`` is the reference models' standard deviation pooled over every sample scored
    together (the paper's fixed-variance variant), and the sample's own only with at least
    :data:`PER_SAMPLE_VARIANCE_MODELS` reference models: with fewer, a per-sample variance is
    too noisy and weakens the attack, as the paper found for fewer than 64 shadow models.
    Needs :data:`LIRA_MIN_MODELS` reference models.

    Parameters
    ----------
    target_losses : torch.Tensor
        ``(N,)`` per-sample losses of the audited model; score members and non-members in one
        call, so that they share the pooled ``sigma``.
    reference_losses : list of torch.Tensor
        ``(N,)`` per-sample losses of each reference model.
    """
    phi = np.stack([logit_confidence(losses) for losses in reference_losses])
    variance = phi.var(axis=0, ddof=1)
    if len(reference_losses) < PER_SAMPLE_VARIANCE_MODELS:
        variance = np.full_like(variance, variance.mean())
    return (logit_confidence(target_losses) - phi.mean(axis=0)) / np.sqrt(variance)


def audit_scores(target_losses: torch.Tensor, reference_losses: list[torch.Tensor],
                 attack: str = "reference") -> dict[str, np.ndarray]:
    """Membership scores of each attack (higher = more likely a member) from per-sample losses:
    ``loss``, with reference models ``reference`` and, when ``attack`` is ``lira``, ``lira``."""
    scores = {"loss": -target_losses.numpy()}
    if reference_losses:
        scores["reference"] = -(target_losses - torch.stack(reference_losses).mean(dim=0)).numpy()
    if attack == "lira":
        scores["lira"] = lira_scores(target_losses, reference_losses)
    return scores


def site_audit(task, model: torch.nn.Module, data, reference_models: list[torch.nn.Module], epsilon: float | None,
               rng: np.random.Generator, attack: str = "reference") -> dict[str, float | list]:
    """The attacks on one site: equal numbers of members (training samples) and non-members
    (test samples), all of them and, where patients carry markers, marked and unmarked apart:
    the entries of its :class:`~sites.protocol.AuditReply`, as the reply's record carries them.

    Parameters
    ----------
    task : ClassLogits
        Gives per-sample losses (:meth:`~sites.tasks.capabilities.ClassLogits.sample_losses`).
    model : nn.Module
        The audited (final global) model.
    data : SiteData
        The site's splits and marker flags.
    reference_models : list of nn.Module
        Trained on the site's reference sample; empty for the loss attack only.
    epsilon : float or None
        The site's DP epsilon, reported alongside.
    rng : np.random.Generator
        Picks which training samples play the members.
    attack : str
        ``lira`` adds the likelihood-ratio attack (:func:`audit_scores`).
    """
    n = min(len(data.train), len(data.test))
    members = torch.from_numpy(np.sort(rng.permutation(len(data.train))[:n]))
    non_members = torch.arange(n)
    splits = {"member": (data.train, members, data.marked_train),
              "non-member": (data.test, non_members, data.marked_test)}
    losses, reference_losses, marked = [], [], {}
    for name, (split, rows, flags) in splits.items():
        subset = torch.utils.data.TensorDataset(*(t[rows] for t in split.tensors))
        losses.append(task.sample_losses(model, subset))
        reference_losses.append([task.sample_losses(ref, subset) for ref in reference_models])
        marked[name] = None if flags is None else flags[rows].numpy()
    # Members (the first n) and non-members scored together: LiRA pools its variance over both.
    together = audit_scores(torch.cat(losses), [torch.cat(pair) for pair in zip(*reference_losses)], attack)
    scores = {"member": {a: s[:n] for a, s in together.items()},
              "non-member": {a: s[n:] for a, s in together.items()}}
    attacks = {}
    for method in scores["member"]:
        groups = {}
        for group, wanted in (("marked", True), ("unmarked", False)):
            inside = {name: marked[name] == wanted for name in splits} if marked["member"] is not None else None
            if inside is not None and all(inside[name].sum() >= 2 for name in splits):
                groups[group] = roc_summary(scores["member"][method][inside["member"]],
                                            scores["non-member"][method][inside["non-member"]])
        attacks[method] = AttackResult(roc_summary(scores["member"][method], scores["non-member"][method]), **groups)
    counts = {} if marked["member"] is None else {"n_marked_members": float(marked["member"].sum()),
                                                   "n_marked_non_members": float(marked["non-member"].sum())}
    reply = AuditReply(n, n, smallest_resolvable_fpr(n), epsilon, attacks, **counts)
    return dict(reply.to_record())
