import pytest

from benchmarks import continual
from benchmarks.common import compose_config
from benchmarks.results import (
    COLUMNS,
    Recorder,
    append,
    config_hash,
    read,
    run_columns,
    variant_of,
)


def test_a_recorded_run_reads_back_row_by_row_at_full_precision(tmp_path):
    recorder = Recorder("continual", "default-methods", "benchmarks.continual", tmp_path)
    config = {"seed": 1, "scenario": {"name": "sequential_sites"},
              "task": {"_target_": "sites.tasks.segmentation.SegmentationTask"}}
    recorder.record(config, {"memorizability": 0.123456789012, "held_out": None, "primary": "t1ce",
                             "parameters": 27026}, seed=1,
                    method="pga_smd", variant="strategy.alpha=0.001", split_or_site="test")

    rows = read("continual", tmp_path)

    assert [row["metric"] for row in rows] == ["memorizability", "primary", "parameters"]  # undefined: left out
    assert float(rows[0]["value"]) == 0.123456789012
    assert [rows[1]["value"], rows[2]["value"]] == ["t1ce", "27026"]
    assert {key: rows[0][key] for key in ("study", "seed", "statistic", "method", "variant", "scenario", "task",
                                          "split_or_site", "config_hash", "source")} == {
        "study": "default-methods", "seed": "1", "statistic": "value", "method": "pga_smd",
        "variant": "strategy.alpha=0.001", "scenario": "sequential_sites", "task": "segmentation",
        "split_or_site": "test", "config_hash": config_hash(config), "source": "benchmarks.continual"}
    assert "Python" in rows[0]["machine"] and "torch" in rows[0]["machine"]


def test_appending_keeps_earlier_rows_and_writes_the_header_once(tmp_path):
    row = dict.fromkeys(COLUMNS, "x")
    append("privacy", [row], tmp_path)
    append("privacy", [{**row, "value": "y"}], tmp_path)

    assert [r["value"] for r in read("privacy", tmp_path)] == ["x", "y"]
    assert (tmp_path / "privacy.csv").read_text().count("study,seed") == 1


def test_a_row_without_every_column_is_refused(tmp_path):
    with pytest.raises(ValueError, match="exactly the columns"):
        append("privacy", [{"value": "1"}], tmp_path)


def test_a_file_with_other_columns_is_refused(tmp_path):
    (tmp_path / "old.csv").write_text("seed,value\n0,1\n")
    with pytest.raises(ValueError, match="old.csv: columns"):
        read("old", tmp_path)


def test_the_config_hash_is_stable_and_ignores_key_order():
    config = {"seed": 0, "strategy": {"alpha": 1e-4, "inner_step": "normalized"}, "task": {"channels": [16, 32]}}
    reordered = {"task": {"channels": [16, 32]}, "strategy": {"inner_step": "normalized", "alpha": 1e-4}, "seed": 0}

    assert config_hash(config) == config_hash(reordered) == "4800cd7bd7e2"
    assert config_hash({**config, "seed": 1}) != config_hash(config)


def test_the_run_columns_and_the_variant_leave_out_what_other_columns_hold():
    config = {"scenario": {"name": "multivendor_sites"}, "task": {"_target_": "sites.tasks.grading.GradingTask"}}

    assert run_columns(config) == {"scenario": "multivendor_sites", "task": "grading"}
    assert variant_of(["scenario=multivendor_sites", "task=grading", "seed=2", "strategy.server_steps=0"]) == (
        "strategy.server_steps=0")


def test_a_continual_run_appends_its_figures_with_the_config_it_ran(tmp_path, monkeypatch):
    matrix = {"sites": ["A", "B", "E"], "held_out": ["E"], "R": [[0.9, 0.1, 0.2], [0.5, 0.8, 0.3]]}
    summary = {"per_stage": [{"generalizability": 0.15}, {"generalizability": 0.3}], "memorizability": 0.65,
               "bwt": -0.4, "forgetting": 0.4}
    monkeypatch.setattr(continual, "simulate", lambda overrides, outputs: (
        12.5, {"matrix.json": matrix, "summary.json": summary, "metrics.jsonl": ""}))
    recorder = Recorder("continual", "check", "benchmarks.continual", tmp_path)

    continual.run("ewc", 2, ["scenario=multivendor_sites", "strategy.weight=10"], recorder)

    rows = {row["metric"]: row for row in read("continual", tmp_path)}
    assert {metric: float(row["value"]) for metric, row in rows.items()} == {
        "memorizability": 0.65, "unseen": 0.15, "held_out": 0.3, "bwt": -0.4, "forgetting": 0.4, "wall_s": 12.5}
    assert {(r["seed"], r["method"], r["variant"], r["scenario"], r["task"], r["split_or_site"])
            for r in rows.values()} == {("2", "ewc", "strategy.weight=10", "multivendor_sites", "segmentation", "test")}
    ran = compose_config(["strategy=ewc", "seed=2", "scenario=multivendor_sites", "strategy.weight=10"])
    assert rows["bwt"]["config_hash"] == config_hash(ran)
