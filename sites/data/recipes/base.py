"""What every preparer shares: the roots it reads, the manifest it returns, and how a bad case
is refused or, with ``data_skip_bad``, skipped."""

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nibabel as nib

from ...config import ConfigModel
from ...errors import ConfigError

Item = TypeVar("Item")


class BadCase(ValueError):
    """One case (a volume, a case folder, a CSV row) that cannot be used; ``data_skip_bad=true``
    skips it where the rest of the dataset is sound.

    Parameters
    ----------
    problem : str
        One line naming the folder, file or row and what is wrong.
    key : str
        The config key whose folder holds the case (``data_root``, ``nih_root``, ``mimic_root``).
    """

    def __init__(self, problem: str, key: str = "data_root") -> None:
        self.key = key
        super().__init__(problem)


@dataclass(frozen=True)
class DataRoots:
    """The folders a run reads, as the user downloaded them.

    Parameters
    ----------
    data : Path
        ``data_root``: the dataset's folder (a split folder for PBBL's chest X-rays).
    skip_bad : bool
        ``data_skip_bad``: skip bad cases (listed in the table) instead of stopping.
    nih : Path or None
        ``nih_root``: ChestX-ray14 as extracted (PBBL's splits).
    mimic : Path or None
        ``mimic_root``: MIMIC-CXR-JPG, the folder that holds ``files/`` (PBBL's SbP splits).
    """

    data: Path
    skip_bad: bool = False
    nih: Path | None = None
    mimic: Path | None = None


@dataclass
class PreparedManifest:
    """A manifest built from a dataset's folder, before it is written.

    Parameters
    ----------
    columns : tuple of str
        The manifest's columns, in order.
    rows : list of dict
        One per case: column -> value.
    class_column : str or None
        The column the table counts cases by (``grade``, ``label``); ``None``: cases only.
    class_names : mapping
        A value of ``class_column`` -> its name in the table.
    skipped : list of str
        One line per case left out (``data_skip_bad=true``).
    task : dict
        Task keys the data decides (e.g. ``label_values``), set on the run's ``task`` node.
    notes : list of str
        Lines printed under the table (what was detected, baselines the data gives).
    """

    columns: tuple[str, ...]
    rows: list[dict[str, str]]
    class_column: str | None = None
    class_names: Mapping[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    task: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Counter]:
        """Site -> class name -> cases (the class ``cases`` without a class column)."""
        table: dict[str, Counter] = {}
        for row in self.rows:
            name = "cases" if self.class_column is None else self.class_names.get(row[self.class_column],
                                                                                  row[self.class_column])
            table.setdefault(row["site"], Counter())[name] += 1
        return table

    def write(self, path: Path) -> None:
        """The manifest as a CSV file at ``path``."""
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)


class Recipe(ConfigModel):
    """A dataset's preparer, chosen by its ``recipe`` key (the ``dataset`` node of an experiment)."""

    recipe: str

    def prepare(self, roots: DataRoots, site_ids: Sequence[str]) -> PreparedManifest:
        """The manifest of the scenario's sites ``site_ids`` from ``roots``; a problem is a
        :class:`~sites.errors.ConfigError` naming the root's key and the folder, file or row."""
        raise NotImplementedError


def read_cases(items: Iterable[Item], read: Callable[[Item], dict | None], skip_bad: bool,
               skipped: list[str]) -> list[dict]:
    """``read`` of every item (``None``: not a case, left out silently); a :class:`BadCase` stops
    the preparation, or with ``skip_bad`` is added to ``skipped``."""
    rows = []
    for item in items:
        try:
            row = read(item)
        except BadCase as error:
            if not skip_bad:
                raise ConfigError(error.key, f"{error} (data_skip_bad=true skips such cases)") from None
            skipped.append(str(error))
            continue
        if row is not None:
            rows.append(row)
    return rows


def check_site_counts(prepared: PreparedManifest, site_ids: Sequence[str], fewest: int) -> None:
    """Refuse a site of ``site_ids`` left with fewer than ``fewest`` cases of a class (of the
    class names :attr:`PreparedManifest.class_names`, or cases without classes)."""
    counts = prepared.counts()
    classes = list(prepared.class_names.values()) or ["cases"]
    for site in site_ids:
        for name in classes:
            found = counts.get(site, Counter())[name]
            if found < fewest:
                what = "case(s)" if name == "cases" else f"case(s) of {name}"
                after = f" after skipping {len(prepared.skipped)} bad case(s)" if prepared.skipped else ""
                raise ConfigError("data_root", f"site {site}: {found} {what}{after}, fewer than the {fewest} "
                                               "a site needs (one for each split)")


def volume_shape(path: Path) -> tuple[int, ...]:
    """The 3D shape of a NIfTI file from its header; an unreadable or 4D file is a :class:`BadCase`."""
    try:
        shape = tuple(int(n) for n in nib.load(path).shape)
    except Exception as error:  # nibabel raises format-specific types
        raise BadCase(f"{path}: cannot read: {error}") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise BadCase(f"{path}: a {len(shape)}D volume {shape}; a case needs one 3D volume")
    return shape


def require_columns(path: Path, fieldnames: Sequence[str] | None, expected: Sequence[str],
                    key: str = "data_root") -> None:
    """Refuse a CSV file without one of the ``expected`` columns, naming the file and the column."""
    missing = [column for column in expected if column not in (fieldnames or [])]
    if missing:
        raise ConfigError(key, f"{path}: no column {missing[0]!r} (expected {list(expected)}, "
                               f"has {list(fieldnames or [])})")
