"""Membership inference, measured where the data is (DESIGN.md §1.5).

A site scores its own training samples (members) and samples of the same distribution that no
model of the federation trained on (non-members) with two attacks, and reports only each
attack's ROC summary, never a per-sample score:

- ``loss``: a sample is called a member when the model's loss on it is low;
- ``reference``: the loss minus the mean loss of reference models of the same architecture and
  training budget, trained on fresh data of the site's distribution (difficulty calibration:
  a sample that is easy for every model is not evidence of membership).

The ROC is written out on a fixed logarithmic grid of false-positive rates, so that low-FPR
behaviour (TPR at 1 % and 0.1 % FPR), where membership inference matters, stays readable. Every
summary travels with its 95 % confidence interval (:mod:`sites.intervals`): the scores never
leave the site, so the intervals are computed here too.
"""

import numpy as np
import torch

from .group_metrics import auc
from .intervals import auc_interval, clopper_pearson, smallest_resolvable_fpr

#: False-positive rates at which the ROC's true-positive rate is reported.
FPR_GRID = np.logspace(-3, 0, 31)
#: The low false-positive rates whose TPR is reported with an interval: key suffix -> rate.
LOW_FPRS = {"1pct": 0.01, "0.1pct": 0.001}


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


def attack_metrics(member_scores: np.ndarray, non_member_scores: np.ndarray, prefix: str) -> dict[str, float | list]:
    """``<prefix>-auc`` (MONAI's ROC AUC) with ``-auc-ci-low`` / ``-auc-ci-high`` (DeLong),
    ``-tpr-at-1pct-fpr`` and ``-tpr-at-0.1pct-fpr`` each with ``-ci-low`` / ``-ci-high``
    (Clopper–Pearson over the members), ``-advantage`` (max TPR - FPR) and ``-roc`` (TPR at
    :data:`FPR_GRID`); higher scores mean "member", at least 2 of each. With ``n`` non-members
    the smallest FPR above 0 is ``1 / n``: below it only the thresholds that call no non-member
    a member count, so TPR at 0.1 % FPR needs a thousand non-members to be more than a lower
    bound. The TPR intervals cover the members' sampling at the threshold the non-members
    picked, not the uncertainty of that threshold's own FPR."""
    fpr, tpr = roc_curve(member_scores, non_member_scores)
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(non_member_scores))]
    auc_low, auc_high = auc_interval(member_scores, non_member_scores)
    metrics = {f"{prefix}-auc": auc(np.r_[member_scores, non_member_scores], labels),
               f"{prefix}-auc-ci-low": auc_low, f"{prefix}-auc-ci-high": auc_high}
    for name, target in LOW_FPRS.items():
        rate = tpr_at_fpr(fpr, tpr, target)
        low, high = clopper_pearson(round(rate * len(member_scores)), len(member_scores))
        metrics.update({f"{prefix}-tpr-at-{name}-fpr": rate, f"{prefix}-tpr-at-{name}-fpr-ci-low": low,
                        f"{prefix}-tpr-at-{name}-fpr-ci-high": high})
    metrics[f"{prefix}-advantage"] = float((tpr - fpr).max())
    metrics[f"{prefix}-roc"] = [tpr_at_fpr(fpr, tpr, f) for f in FPR_GRID]
    return metrics


def audit_scores(target_losses: torch.Tensor, reference_losses: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Membership scores of each attack (higher = more likely a member) from per-sample losses."""
    scores = {"loss": -target_losses.numpy()}
    if reference_losses:
        scores["reference"] = -(target_losses - torch.stack(reference_losses).mean(dim=0)).numpy()
    return scores


def site_audit(task, model: torch.nn.Module, data, reference_models: list[torch.nn.Module], epsilon: float | None,
               rng: np.random.Generator) -> dict[str, float | list]:
    """Both attacks on one site: equal numbers of members (training samples) and non-members
    (test samples), all of them and, where patients carry markers, marked and unmarked apart.

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
    """
    n = min(len(data.train), len(data.test))
    members = torch.from_numpy(np.sort(rng.permutation(len(data.train))[:n]))
    non_members = torch.arange(n)
    splits = {"member": (data.train, members, data.marked_train),
              "non-member": (data.test, non_members, data.marked_test)}
    scores, marked = {}, {}
    for name, (split, rows, flags) in splits.items():
        subset = torch.utils.data.TensorDataset(*(t[rows] for t in split.tensors))
        losses = task.sample_losses(model, subset)
        scores[name] = audit_scores(losses, [task.sample_losses(ref, subset) for ref in reference_models])
        marked[name] = None if flags is None else flags[rows].numpy()
    metrics: dict[str, float | list] = {"n-members": n, "n-non-members": n,
                                        "min-resolvable-fpr": smallest_resolvable_fpr(n)}
    if epsilon is not None:
        metrics["epsilon"] = epsilon
    for attack in scores["member"]:
        metrics.update(attack_metrics(scores["member"][attack], scores["non-member"][attack], attack))
        if marked["member"] is None:
            continue
        for group, wanted in (("marked", True), ("unmarked", False)):
            inside = {name: marked[name] == wanted for name in splits}
            if all(inside[name].sum() >= 2 for name in splits):
                metrics.update(attack_metrics(scores["member"][attack][inside["member"]],
                                              scores["non-member"][attack][inside["non-member"]], f"{attack}-{group}"))
    if marked["member"] is not None:
        metrics["n-marked-members"] = float(marked["member"].sum())
        metrics["n-marked-non-members"] = float(marked["non-member"].sum())
    return metrics
