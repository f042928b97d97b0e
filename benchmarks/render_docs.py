"""Regenerate the docs' benchmark tables from the results files.

A generated table sits between two markers in a Markdown file under ``docs/``::

    <!-- table: continual/default-methods -->
    | strategy | memorizability | ...
    <!-- /table -->

and is rewritten from ``results/<area>.csv`` as :data:`benchmarks.doc_tables.TABLES` lays it
out. ``--check`` writes nothing and fails if any table differs from what would be written.

    python -m benchmarks.render_docs            # rewrite every generated table
    python -m benchmarks.render_docs --check    # exit 1 if a table is out of date
"""

import argparse
import re
import statistics
import sys
from pathlib import Path

import numpy as np

from benchmarks.doc_tables import TABLES, Column, Table
from benchmarks.results import RESULTS_DIR, read
from simulations.formatting import table_header, table_row

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
MARKED = re.compile(r"(<!-- table: (?P<name>[\w/-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
TRANSCRIBED = "transcribed from the measurement record of "
MISSING = "—"
# Aggregates that the single-run figures of a study do not give; shown only where recorded.
RECORDED_ONLY = ("pooled", "ratio of medians")
MODALITIES = {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}


def _number(value: str, spec: str) -> str:
    """A stored figure as the table prints it: ``spec`` is a format spec, ``","`` an integer with
    thousands separators, ``"modality"`` a sequence's name, ``""`` the text as stored."""
    if spec == "modality":
        return MODALITIES.get(value, value)
    if spec == "":
        return value
    number = float(value)
    if number == float("inf"):
        return "∞"
    return f"{int(number):,}" if spec == "," else format(number, spec)


def _per_seed(rows: list[dict[str, str]]) -> dict[str, str]:
    """Seed -> its figure among single-run rows; a later row of a seed replaces an earlier one."""
    return {row["seed"]: row["value"] for row in rows if row["statistic"] == "value"}


def figure(rows: list[dict[str, str]], how: str, spec: str) -> str:
    """One metric's cell from its rows (one study, method, variant, scenario, metric).

    Parameters
    ----------
    rows
        The matching rows of the results file.
    how
        ``mean_std``, ``mean``, ``median``, ``max``: the aggregate recorded for these runs, else
        computed from their single-run figures (population std, as over seeds); ``pooled``,
        ``ratio of medians``: the figure recorded as such; ``seed:<n>``: seed n's figure; ``per_seed``: every seed's,
        comma-separated; ``measured``: when, as the rows record it.
    spec
        How a number prints (:func:`_number`).
    """
    recorded = {row["statistic"]: row["value"] for row in rows if row["statistic"] != "value"}
    per_seed = _per_seed(rows)
    if how == "measured":
        sources = {row["source"].removeprefix(TRANSCRIBED) if row["source"].startswith(TRANSCRIBED) else row["date"]
                   for row in rows}
        return "; ".join(sorted(sources)) or MISSING
    if how.startswith("seed:"):
        value = per_seed.get(how.removeprefix("seed:"))
        return MISSING if value is None else _number(value, spec)
    if how == "per_seed":
        return ", ".join(_number(per_seed[seed], spec) for seed in sorted(per_seed, key=int)) or MISSING
    if how in ("mean_std", "mean"):
        if "mean" in recorded:
            text = _number(recorded["mean"], spec)
            return f"{text} ± {_number(recorded['std'], spec)}" if how == "mean_std" and "std" in recorded else text
        values = [float(v) for v in per_seed.values()]
        if not values:
            return MISSING
        text = _number(str(np.mean(values)), spec)
        return f"{text} ± {_number(str(np.std(values)), spec)}" if how == "mean_std" else text
    if how in ("median", "max", *RECORDED_ONLY):
        if how in recorded:
            return _number(recorded[how], spec)
        values = [float(v) for v in per_seed.values()]
        if how in RECORDED_ONLY or not values:
            return MISSING
        return _number(str(statistics.median(values) if how == "median" else max(values)), spec)
    raise ValueError(f"unknown aggregate {how!r} in benchmarks/doc_tables.py")


def cell(rows: list[dict[str, str]], where: dict[str, str], column: Column, prefix: str = "") -> str:
    """The cell of a row (``where``: its filters; ``prefix``: before each metric's name) in ``column``."""
    match = {**where, **column.where}
    selected = [row for row in rows if all(row[key] == value for key, value in match.items())]
    parts = [figure([row for row in selected if row["metric"] == prefix + metric], column.how, column.spec)
             for metric in column.metrics]
    if all(part == MISSING for part in parts):
        return MISSING
    return column.template.format(*parts) if column.template else " / ".join(parts)


def render(table: Table, directory: Path = RESULTS_DIR) -> str:
    """``table`` as Markdown, from ``<directory>/<its area>.csv``."""
    rows = read(table.area, directory)
    lines = table_header([*table.first, *(column.header for column in table.columns)])
    for row in table.rows:
        where = {**table.where, **row.where}
        lines.append(table_row([*row.cells,
                                *(cell(rows, where, column, row.metric_prefix) for column in table.columns)]))
    return "\n".join(lines) + "\n"


def update(text: str, rendered: dict[str, str], path: Path) -> str:
    """``text`` with every marked table replaced by its rendering."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in rendered:
            raise ValueError(f"{path}: no table {name!r} in benchmarks/doc_tables.py")
        return match.group(1) + rendered[name] + match.group(4)

    return MARKED.sub(replace, text)


def render_docs(docs: Path = DOCS_DIR, results: Path = RESULTS_DIR, check: bool = False) -> list[Path]:
    """Rewrite (or, with ``check``, compare) every generated table of the Markdown files under
    ``docs``; returns the files whose tables differ from the results."""
    rendered = {table.name: render(table, results) for table in TABLES}
    stale = []
    for path in sorted(docs.rglob("*.md")):
        text = path.read_text()
        new = update(text, rendered, path)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table is out of date")
    args = parser.parse_args()
    stale = render_docs(check=args.check)
    for path in stale:
        print(f"{path}: {'out of date' if args.check else 'rewritten'}")
    if args.check and stale:
        sys.exit("generated tables differ from results/: run python -m benchmarks.render_docs")


if __name__ == "__main__":
    main()
