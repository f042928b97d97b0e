"""How reports and benchmarks print numbers (a value, a missing value, a mean ± std) and Markdown tables.

A missing value (a metric that is undefined, e.g. a forget score without a measurable gap, or a
site that was never evaluated) prints as :data:`MISSING`, ``"n/a"``: plain ASCII, so it reads the
same in a terminal, a Markdown table and a log.
"""

from collections.abc import Iterable, Sequence

import numpy as np

MISSING = "n/a"


def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` rounded to ``digits`` decimals, or :data:`MISSING` for ``None``.

    Parameters
    ----------
    value
        The number to print, ``None`` when it is missing.
    digits
        Decimals after the point.
    """
    return MISSING if value is None else f"{value:.{digits}f}"


def mean_std(values: Iterable[float | None], digits: int = 3) -> str:
    """``mean ± std`` (population std, as over seeds) of the values that are not ``None``.

    :data:`MISSING` when every value is missing; when only some are, the count follows, e.g.
    ``0.500 ± 0.100 (1 of 3 n/a)``, so that a mean over fewer runs does not pass for a full one.

    Parameters
    ----------
    values
        One value per run, ``None`` where a run has none.
    digits
        Decimals after the point, for both the mean and the std.
    """
    values = list(values)
    defined = [v for v in values if v is not None]
    if not defined:
        return MISSING
    text = f"{fmt(float(np.mean(defined)), digits)} ± {fmt(float(np.std(defined)), digits)}"
    missing = len(values) - len(defined)
    return text if not missing else f"{text} ({missing} of {len(values)} {MISSING})"


def table_row(cells: Iterable[object]) -> str:
    """One row of a Markdown table, each cell as ``str`` prints it.

    Parameters
    ----------
    cells
        The row's cells, left to right; numbers are best passed through :func:`fmt` first.
    """
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def table_header(columns: Sequence[str]) -> list[str]:
    """A Markdown table's first two lines: the column names and the rule under them.

    Parameters
    ----------
    columns
        The column names, left to right.
    """
    return [table_row(columns), "|---" * len(columns) + "|"]
