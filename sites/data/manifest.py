"""Real images from disk: a CSV manifest of files with labels, read with MONAI's loaders.

Columns: ``path`` (relative to the manifest's folder, or absolute), ``label`` (0 or 1),
``site`` (a site id of the scenario); optional ``bias`` (0, 1, or empty when unknown) and
``split`` (``train`` or ``test``; without it a seeded fifth of each label's rows, at least one,
is the test split: see :mod:`sites.data.splits`). A site needs a row of each label in each
split: at least four rows. Images (PNG, DICOM, NIfTI: whatever MONAI's ``LoadImage`` reads)
are made single channel (:mod:`sites.data.images`), resized and z-scored.
"""

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from monai.transforms import LoadImage, NormalizeIntensity, Resize

from ..errors import ConfigError
from .images import load_channels_first, single_channel
from .splits import assign_splits, check_splits

REQUIRED_COLUMNS = ("path", "label", "site")
HELD_OUT = {"test": 5}
LABEL_NAMES = {0: "label 0", 1: "label 1"}


@dataclass(frozen=True)
class LabelledImages:
    """One split of a site: images ``(N, 1, S, S)`` float32, labels ``(N,)`` and bias ``(N,)``
    int64 (bias -1 where unknown)."""

    images: np.ndarray
    labels: np.ndarray
    bias: np.ndarray


def _binary(value: str, column: str, where: str, allow_blank: bool) -> int:
    value = value.strip()
    if allow_blank and value == "":
        return -1
    if value not in ("0", "1"):
        raise ValueError(f"{where}: {column} must be 0 or 1{' or empty' if allow_blank else ''} (got {value!r})")
    return int(value)


def site_rows(manifest: Path, site: str, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` for every row of ``site`` in a CSV manifest that has the ``required``
    columns (one of them ``site``); a missing manifest or column is an error naming it."""
    if not manifest.is_file():
        raise ValueError(f"manifest not found: {manifest}")
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"manifest {manifest}: missing columns {missing} (has {reader.fieldnames})")
        for line, raw in enumerate(reader, start=2):  # line 1 is the header
            if raw["site"].strip() == site:
                yield line, raw


def listed_path(manifest: Path, value: str) -> Path:
    """A path as a manifest lists it: absolute, or relative to the manifest's folder."""
    path = Path(value.strip())
    return path if path.is_absolute() else manifest.parent / path


def check_manifest(manifest: Path, site_ids: Sequence[str], read_rows: Callable[[Path, str], list]) -> None:
    """Validate every site's rows with ``read_rows`` (which reads no image) before anything
    starts; a problem is a ``ConfigError`` on ``task.manifest`` naming the site."""
    if not manifest.is_file():
        raise ConfigError("task.manifest", f"no such file: {manifest}")
    for site_id in site_ids:
        try:
            read_rows(manifest, site_id)
        except ValueError as error:
            raise ConfigError("task.manifest", f"site {site_id}: {error}") from None


def read_site_rows(manifest: Path, site: str) -> list[dict]:
    """The validated rows of one site; every error names the manifest, the row and the problem."""
    rows = []
    for line, raw in site_rows(manifest, site, REQUIRED_COLUMNS):
        where = f"manifest {manifest}, row {line}"
        path = listed_path(manifest, raw["path"])
        if not path.is_file():
            raise ValueError(f"{where}: image not found: {path}")
        split = (raw.get("split") or "").strip()
        if split not in ("", "train", "test"):
            raise ValueError(f"{where}: split must be 'train' or 'test' (got {split!r})")
        rows.append({"line": line, "path": path, "split": split,
                     "label": _binary(raw["label"], "label", where, allow_blank=False),
                     "bias": _binary(raw.get("bias") or "", "bias", where, allow_blank=True)})
    if not rows:
        raise ValueError(f"manifest {manifest} has no rows for site {site!r}")
    check_splits(rows, HELD_OUT, "label", LABEL_NAMES, f"manifest {manifest}, site {site!r}")
    return rows


def load_site_split(manifest: Path, site: str, image_size: int,
                    rng: np.random.Generator) -> tuple[LabelledImages, LabelledImages]:
    """A site's train and test splits from the manifest."""
    rows = read_site_rows(manifest, site)
    assign_splits(rows, HELD_OUT, "label", rng)
    load, resize, normalize = (LoadImage(image_only=True, ensure_channel_first=True),
                               Resize((image_size, image_size)), NormalizeIntensity())

    def read(row: dict) -> np.ndarray:
        where = f"manifest {manifest}, row {row['line']}"
        image = load_channels_first(row["path"], load, where)
        if image.ndim != 3:
            raise ValueError(f"{where}: expected a 2D image, got shape {tuple(image.shape[1:])}")
        image = single_channel(image, row["path"], where)
        if not np.isfinite(image).all() or image.std() == 0:
            raise ValueError(f"{where}: {row['path']} is constant or not finite")
        return np.asarray(normalize(resize(image)), dtype=np.float32)

    def split(name: str) -> LabelledImages:
        chosen = [row for row in rows if row["split"] == name]
        return LabelledImages(np.stack([read(row) for row in chosen]),
                              np.array([row["label"] for row in chosen], dtype=np.int64),
                              np.array([row["bias"] for row in chosen], dtype=np.int64))

    return split("train"), split("test")
