"""The withdrawal section of the run report and the sweep's methods table, from records."""

import json

from server.records import WithdrawalRecord
from simulations.withdrawal_report import SWEEP_TABLE, withdrawal_section, write_sweep_table


def _record(method="npo", scores=None, forget=(0.9, 0.6, 0.55), **extra) -> WithdrawalRecord:
    return WithdrawalRecord.from_dict(_entry(method, scores, forget, **extra))


def _entry(method="npo", scores=None, forget=(0.9, 0.6, 0.55), **extra) -> dict:
    """A ``withdrawal.json`` entry."""
    performance = {model: {"forget": f, "retain": 0.8, "test": 0.7} for model, f in zip(("before", "after", "oracle"),
                                                                                           forget)}
    return {"site": "B", "stage": 2, "reason": "privacy", "method": method, "metric": "dice",
            "subsets": {"forget": ["B"], "retain": ["A"], "test": ["A", "E"]}, "performance": performance,
            "per_site": {}, "scores": scores, "seconds": 1.5, "retrain_seconds": 30.0, "cost_ratio": 0.05,
            "mia_forget_auc": {"before": 0.8, "after": 0.5, "oracle": 0.45}, **extra}


def test_the_section_shows_each_model_on_each_subset_and_the_scores():
    scores = {"s_F": 0.857, "s_R": 1.0, "s_T": 1.0, "UES": 0.947}
    text = "\n".join(withdrawal_section([_record(scores=scores)]))
    assert "Site B withdraws after stage 2 (reason: privacy, method: npo)" in text
    assert "| after npo | 0.600 | 0.800 | 0.700 |" in text
    assert "| 0.857 | 1.000 | 1.000 | 0.947 | 1.5 | 30.0 | 0.050 | 0.800 → 0.500 (oracle 0.450) |" in text
    assert "undefined" not in text


def test_the_section_says_why_a_score_is_undefined():
    no_gap = {"s_F": None, "s_R": 1.0, "s_T": 1.0, "UES": None}
    assert "nothing measurable to forget" in "\n".join(withdrawal_section([_record(scores=no_gap)]))
    assert "has no value on some subset" in "\n".join(withdrawal_section([_record(scores=None)]))


def test_a_sweep_table_has_one_row_per_run(tmp_path):
    for i, method in enumerate(("ga", "rewind")):
        (tmp_path / str(i)).mkdir()
        scores = {"s_F": 0.5, "s_R": 1.0, "s_T": 0.9, "UES": 0.75}
        (tmp_path / str(i) / "withdrawal.json").write_text(json.dumps([_entry(method, scores)]))
    (tmp_path / "2").mkdir()  # a run without a withdrawal (or one that failed) adds no row
    path = write_sweep_table(tmp_path)
    assert path == tmp_path / SWEEP_TABLE
    rows = [line for line in path.read_text().splitlines() if line.startswith("| B |")]
    assert [row.split("|")[3].strip() for row in rows] == ["ga", "rewind"]
    assert "| 0.500 | 1.000 | 0.900 | 0.750 | 0.050 |" in rows[0]


def test_no_withdrawals_no_table(tmp_path):
    assert write_sweep_table(tmp_path) is None and not (tmp_path / SWEEP_TABLE).exists()


def test_with_dp_the_section_gives_each_sites_steps_and_epsilon_before_and_after():
    privacy = {"delta": 1e-5, "sites": {
        "B": {"role": "forget", "steps": {"before": 2, "after": 22}, "epsilon": {"before": 3.1, "after": 8.0}},
        "A": {"role": "retain", "steps": {"before": 2, "after": 2}, "epsilon": {"before": 3.1, "after": 3.1}}}}
    text = "\n".join(withdrawal_section([_record(privacy=privacy)]))
    assert "Differential privacy (delta 1e-05)" in text
    assert "| B | forget | 2 → 22 | 3.100 → 8.000 |" in text
    assert "| A | retain | 2 → 2 | 3.100 → 3.100 |" in text
    assert "Differential privacy" not in "\n".join(withdrawal_section([_record()]))
