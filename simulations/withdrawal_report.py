"""The withdrawal section of a run's report, and the methods table of a ``-m unlearning=...``
sweep (``withdrawal_table.md`` in the sweep directory, like the paper's table)."""

import json
from pathlib import Path

from server.records import WithdrawalPrivacy, WithdrawalRecord
from server.ues import MIN_FORGET_GAP, SCORES, SUBSETS

from .formatting import MISSING, fmt, table_header, table_row

SWEEP_TABLE = "withdrawal_table.md"
_UNDEFINED = (f"s_F (and so UES) is undefined: the oracle is within {MIN_FORGET_GAP} of the original model on "
              "the forget set, so there was nothing measurable to forget.")


_NO_METRIC = (f"The scores are undefined: {{metric}} has no value on some subset ({MISSING} above): the subset has no "
              "site (no other site had trained), or the task cannot compute the metric there (e.g. a group AUC "
              "on a training split that lacks one of the groups).")


def _mia(record: WithdrawalRecord) -> str:
    mia = record.mia_forget_auc
    return f"{fmt(mia['before'])} → {fmt(mia['after'])} (oracle {fmt(mia['oracle'])})"


def privacy_lines(privacy: WithdrawalPrivacy) -> list[str]:
    """Markdown lines: each involved site's DP-SGD steps and epsilon before → after a withdrawal."""
    lines = ["", f"Differential privacy (delta {privacy.delta:g}): what unlearning spent at each site, as its "
                 "accountant's DP-SGD steps and epsilon before → after the withdrawal (the oracle's retraining, "
                 "a yardstick only the simulator trains, is not charged; docs/privacy.md).", "",
             *table_header(["site", "role", "DP-SGD steps", "epsilon"])]
    for site, figures in privacy.sites.items():
        steps, epsilon = figures.steps, figures.epsilon
        lines.append(table_row([site, figures.role, f"{steps.before} → {steps.after}",
                                f"{fmt(epsilon.before)} → {fmt(epsilon.after)}"]))
    return lines


def withdrawal_section(records: list[WithdrawalRecord]) -> list[str]:
    """Markdown lines: per withdrawal, the three models on the three subsets, the scores, the
    cost, membership inference on the forget set and, with DP, the privacy each site spent."""
    lines = ["", "## Site withdrawal", "",
             "Forget: the withdrawn site's training split; retain: the remaining trained sites' training "
             "splits; test: the test splits of every remaining site (held-out ones included). UES and its "
             "parts are defined in docs/unlearning.md."]
    for record in records:
        performance, scores = record.performance, record.scores or {}
        lines += ["", f"### Site {record.site} withdraws after stage {record.stage} "
                      f"(reason: {record.reason}, method: {record.method})", "",
                  *table_header([record.metric, *(f"{s} ({', '.join(record.subsets[s]) or 'none'})"
                                                  for s in SUBSETS)])]
        for model, label in (("before", "before withdrawal"), ("after", f"after {record.method}"),
                             ("oracle", "retrained oracle")):
            lines.append(table_row([label, *(fmt(performance[model][s]) for s in SUBSETS)]))
        lines += ["", *table_header([*SCORES, "seconds", "retrain seconds", "cost ratio", "MIA AUC on forget"]),
                  table_row([*(fmt(scores.get(k)) for k in SCORES), fmt(record.seconds, 1),
                             fmt(record.retrain_seconds, 1), fmt(record.cost_ratio), _mia(record)])]
        if record.scores is None:
            lines += ["", _NO_METRIC.format(metric=record.metric)]
        elif scores["s_F"] is None:
            lines += ["", _UNDEFINED]
        if record.privacy is not None:
            lines += privacy_lines(record.privacy)
    return lines


def write_sweep_table(sweep_dir: Path) -> Path | None:
    """Gather every run of a sweep that withdrew a site into one methods table."""
    records = [WithdrawalRecord.from_dict(record) for path in sorted(sweep_dir.glob("*/withdrawal.json"))
               for record in json.loads(path.read_text())]
    if not records:
        return None
    lines = ["# Site withdrawal: methods compared", "",
             "One row per run of the sweep; performance of the unlearned model on each subset, the scores "
             "against the oracle retrained in the same run, the cost as a ratio to that retraining, and the "
             "loss attack's AUC on the forget set before → after.", "",
             *table_header(["site", "reason", "method", "metric", *SUBSETS, *SCORES, "cost ratio",
                            "MIA AUC on forget"])]
    for r in records:
        after, scores = r.performance["after"], r.scores or {}
        lines.append(table_row([r.site, r.reason, r.method, r.metric, *(fmt(after[s]) for s in SUBSETS),
                                *(fmt(scores.get(k)) for k in SCORES), fmt(r.cost_ratio), _mia(r)]))
    path = sweep_dir / SWEEP_TABLE
    path.write_text("\n".join(lines) + "\n")
    return path
