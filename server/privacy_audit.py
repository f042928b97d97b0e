"""The privacy audit (DESIGN.md §1.5): after the timeline, every site that trained runs
membership inference against the final global model on its own data
(:mod:`sites.membership_inference`); the server gathers the ROC summaries, judges each site in
plain words, and the run writes them to ``privacy_audit.json``."""

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import NonNegativeInt

from sites.config import ConfigModel
from sites.membership_inference import FPR_GRID

from .withdrawal_privacy import unlearning_spent

ATTACKS = ("loss", "reference")
# Exposure levels by the strongest attack's AUC and TPR at 1 % FPR (an attack at chance has
# AUC 0.5 and TPR 0.01 at 1 % FPR).
_LOW = {"auc": 0.55, "tpr": 0.05}
_HIGH = {"auc": 0.65, "tpr": 0.15}
# Markers count as more exposing when their AUC exceeds the unmarked patients' by this much.
_MARKER_GAP = 0.05


class AuditConfig(ConfigModel):
    """``scenario.audit``: run the privacy audit after the timeline.

    Parameters
    ----------
    reference_models : int
        Reference models each site trains for the reference-model attack (0: loss attack only).
    """

    reference_models: NonNegativeInt = 1


def judge(metrics: Mapping[str, Any], unlearning: Sequence[Mapping[str, Any]] = ()) -> dict[str, str]:
    """A site's exposure level (``low``, ``moderate``, ``high``) and the reasons, in plain words;
    ``unlearning`` lists the withdrawals whose unlearning spent budget at the site
    (:func:`~server.withdrawal_privacy.unlearning_spent`)."""
    attacks = [a for a in ATTACKS if metrics.get(f"{a}-auc") is not None]
    auc = max(metrics[f"{a}-auc"] for a in attacks)
    tpr = max(metrics[f"{a}-tpr-at-1pct-fpr"] for a in attacks)
    if auc < _LOW["auc"] and tpr < _LOW["tpr"]:
        level, words = "low", "barely better than chance"
    elif auc < _HIGH["auc"] and tpr < _HIGH["tpr"]:
        level, words = "moderate", "measurably better than chance"
    else:
        level, words = "high", "clearly"
    sentences = [f"An attacker holding the final model tells this site's training patients from others "
                 f"{words} (best attack AUC {auc:.2f}; at 1 % false alarms it finds {tpr:.0%} of them; "
                 f"measured on {metrics['n-members']} training patients and as many others)."]
    marked = [(metrics[f"{a}-marked-auc"], metrics[f"{a}-unmarked-auc"]) for a in attacks
              if metrics.get(f"{a}-marked-auc") is not None and metrics.get(f"{a}-unmarked-auc") is not None]
    if marked:
        marked_auc, unmarked_auc = max(marked, key=lambda pair: pair[0] - pair[1])
        if marked_auc - unmarked_auc > _MARKER_GAP:
            sentences.append(f"Patients whose images carry identifying markers are more exposed "
                             f"(AUC {marked_auc:.2f} vs {unmarked_auc:.2f} for the others).")
        else:
            sentences.append(f"Patients with identifying markers are not measurably more exposed "
                             f"(AUC {marked_auc:.2f} vs {unmarked_auc:.2f}).")
    if "epsilon" in metrics:
        sentences.append(f"The site trained with differential privacy: epsilon {metrics['epsilon']:.2f} "
                         f"bounds what any attack can learn.")
        sentences += [f"It includes the {spent['steps']} DP-SGD steps the site took to unlearn site "
                      f"{spent['withdrawn']} after stage {spent['stage']} ({spent['method']}), which took its "
                      f"epsilon from {spent['epsilon']['before']:.2f} to {spent['epsilon']['after']:.2f}."
                      for spent in unlearning]
    else:
        sentences.append("The site trained without differential privacy: no formal bound.")
    return {"level": level, "explanation": " ".join(sentences)}


def audit_result(site_metrics: Mapping[str, Mapping[str, Any]], delta: float | None,
                 withdrawals: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """``privacy_audit.json``'s content: every site's attack figures with its verdict and, where
    a withdrawal's unlearning spent budget at the site (``withdrawals``: the run's withdrawal
    records), what it spent (``unlearning``)."""
    sites = {}
    for site, metrics in site_metrics.items():
        unlearning = unlearning_spent(withdrawals, site)
        sites[site] = {**dict(metrics), **({"unlearning": unlearning} if unlearning else {}),
                       "verdict": judge(metrics, unlearning)}
    return {"delta": delta, "fpr_grid": FPR_GRID.tolist(), "sites": sites}
