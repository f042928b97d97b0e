import shutil

import pytest

from benchmarks.render_docs import DOCS_DIR, figure, render_docs


def test_every_generated_table_in_the_docs_is_what_the_results_give():
    stale = render_docs(check=True)

    assert stale == [], f"out of date: {stale}; run python -m benchmarks.render_docs"


def test_a_hand_edited_table_is_found_and_left_alone_in_check_mode(tmp_path):
    shutil.copy(DOCS_DIR / "results.md", tmp_path / "results.md")
    page = tmp_path / "results.md"
    edited = page.read_text().replace("0.861 ± 0.014", "0.961 ± 0.014", 1)
    assert edited != page.read_text()
    page.write_text(edited)

    assert render_docs(docs=tmp_path, check=True) == [page]
    assert page.read_text() == edited
    assert render_docs(docs=tmp_path) == [page]
    assert "0.861 ± 0.014" in page.read_text()


def test_a_marker_naming_no_table_is_refused(tmp_path):
    (tmp_path / "page.md").write_text("<!-- table: continual/nothing -->\n| a |\n<!-- /table -->\n")

    with pytest.raises(ValueError, match="page.md: no table 'continual/nothing'"):
        render_docs(docs=tmp_path, check=True)


def _row(statistic, value, seed="0 1 2"):
    return {"statistic": statistic, "value": value, "seed": seed, "source": "benchmarks.continual",
            "date": "2026-12-08"}


def test_a_recorded_aggregate_is_shown_as_recorded_else_computed_from_the_runs():
    recorded = [_row("mean", "0.5"), _row("std", "0.1"), _row("value", "0.9", "0")]
    runs = [_row("value", "0.4", "0"), _row("value", "0.6", "1"), _row("value", "0.9", "1")]  # seed 1 measured again

    assert figure(recorded, "mean_std", ".3f") == "0.500 ± 0.100"
    assert figure(runs, "mean_std", ".3f") == "0.650 ± 0.250"
    assert figure(runs, "per_seed", ".2f") == "0.40, 0.90"
    assert figure(runs, "pooled", ".3f") == "—"
    assert figure(runs, "measured", "") == "2026-12-08"
