"""The run report from a hand-made result: the phase configs the server set from statistics, a
user's replay source."""

import json

from server.records import ReplayRecord
from server.results import RunResult
from simulations.replay_report import replay_section
from simulations.report import write_report


def test_the_report_and_matrix_say_what_each_phase_was_set_to(scenario, tmp_path):
    result = RunResult(scenario, "auc")
    for stage, primary in enumerate(["t2", "t1ce", "t1ce", "t1ce"]):
        result.add_stage({site: {"auc": 0.5 + stage / 10} for site in scenario.site_ids},
                         {"guided": {"validation-n": 50.0}}, {"validation_auc_t1ce": 0.7},
                         {"guided": {"primary-modality": primary, "log-prior": [-0.25, -1.5]}})
    write_report(tmp_path, result)
    result.write(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| 1 | guided | primary-modality: t2, log-prior: [-0.250, -1.500] |" in report
    assert "| 4 | guided | primary-modality: t1ce, log-prior: [-0.250, -1.500] |" in report
    matrix = json.loads((tmp_path / "matrix.json").read_text())
    assert [stage["guided"]["primary-modality"] for stage in matrix["phase_configs"]] == ["t2", "t1ce", "t1ce", "t1ce"]


def test_a_run_without_phase_statistics_has_no_phase_config_section(scenario, tmp_path):
    result = RunResult(scenario, "dice")
    result.add_stage({site: {"dice": 0.5} for site in scenario.site_ids}, {}, {})
    write_report(tmp_path, result)
    assert "## Phase configs" not in (tmp_path / "report.md").read_text()


def test_the_report_describes_a_users_source_by_its_figures():
    lines = replay_section(ReplayRecord("noise", True, {"learned": ["A", "B"]}))
    assert lines[-1] == "Replay source noise (private): learned: ['A', 'B']."
