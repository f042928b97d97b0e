"""One spelling for numbers in reports and benchmarks (a value, a missing value, a mean ± std) and tables."""

from simulations.formatting import MISSING, fmt, mean_std, table_header, table_row


def test_a_missing_value_prints_as_missing():
    assert MISSING == "n/a"
    assert fmt(None) == MISSING and fmt(None, 1) == MISSING


def test_a_value_is_rounded_to_the_digits_asked():
    assert fmt(0.12345) == "0.123"
    assert fmt(0.9996) == "1.000"
    assert fmt(2.25, 1) == "2.2" and fmt(20.46, 1) == "20.5"
    assert fmt(3) == "3.000"


def test_mean_std_of_one_value_has_no_spread():
    assert mean_std([0.5]) == "0.500 ± 0.000"


def test_mean_std_of_several_values_uses_the_population_std():
    assert mean_std([0.2, 0.4]) == "0.300 ± 0.100"
    assert mean_std(v for v in (1.0, 2.0, 3.0, 4.0)) == "2.500 ± 1.118"
    assert mean_std([1.0, 2.0], digits=1) == "1.5 ± 0.5"


def test_mean_std_skips_missing_values_and_says_how_many():
    assert mean_std([0.2, None, 0.4]) == f"0.300 ± 0.100 (1 of 3 {MISSING})"
    assert mean_std([None, None]) == MISSING
    assert mean_std([]) == MISSING


def test_a_table_row_prints_each_cell_as_str_does():
    assert table_row(["A", 2, fmt(None), fmt(0.5)]) == "| A | 2 | n/a | 0.500 |"
    assert table_row(c for c in ("x",)) == "| x |"


def test_a_table_header_is_the_names_and_a_rule_with_one_cell_per_column():
    assert table_header(("site", "AUC", "epsilon")) == ["| site | AUC | epsilon |", "|---|---|---|"]
