"""PBBL's chest X-ray splits (LLYXC/PBBL), as the paper's authors publish them, with the images
they point to (see docs/datasets/pbbl_sbp.md and pbbl_gbp.md).

- ``SbP-bias{90,95,99}/``: ``train_MIMIC.csv``, ``train_NIH.csv``, ``valid.csv``, ``test.csv``
  with columns ``path, pneumonia, MIMIC`` (some with a UTF-8 BOM or a leading unnamed index
  column). The source is the bias and the site: rows of ``MIMIC`` 0 go to site ``NIH``, 1 to
  site ``MIMIC``.
- ``GbP-case{1,2}/``: ``train.csv``, ``valid.csv``, ``test.csv`` with columns
  ``path, pneumothorax, gender``. Gender is the bias, and it varies within each site: the
  patients of each gender are dealt to the sites in the shares ``sites`` gives.

The paths are the authors' own: an NIH image is found by its id under ``nih_root`` (ChestX-ray14
as extracted, ``images_0NN/images/<id>.png``), whatever its extension; a MIMIC image by its
``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`` tail under ``mimic_root``. ``valid.csv`` is
not read: the debiasing task has no validation split.
"""

import csv
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Literal

from PIL import Image
from pydantic import Field, model_validator

from ...config import invalid
from ...errors import ConfigError
from ..manifest import HELD_OUT
from .base import BadCase, DataRoots, PreparedManifest, Recipe, check_site_counts, read_cases, require_columns

COLUMNS = ("path", "label", "bias", "site", "split")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BINARY = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}


class ImageFinder:
    """Resolves the authors' absolute paths under the user's roots (the NIH index is built once)."""

    def __init__(self, nih: Path | None, mimic: Path | None) -> None:
        self.nih, self.mimic = nih, mimic
        self._nih_index: dict[str, Path] | None = None

    def nih_image(self, image_id: str, where: str) -> Path:
        """The ChestX-ray14 image ``image_id`` (the tree indexed by file stem on first use)."""
        if self.nih is None:
            raise ConfigError("nih_root", f"{where} names an NIH image ({image_id}): "
                                          "set nih_root=<ChestX-ray14 folder>")
        if self._nih_index is None:
            self._nih_index = {}
            for folder, _, files in os.walk(self.nih):
                for name in files:
                    stem, suffix = os.path.splitext(name)
                    if suffix.lower() in IMAGE_SUFFIXES:
                        self._nih_index.setdefault(stem, Path(folder) / name)
        if image_id not in self._nih_index:
            raise BadCase(f"{where}: image {image_id} not found under nih_root {self.nih}", key="nih_root")
        return self._nih_index[image_id]

    def mimic_image(self, path: str, where: str) -> Path:
        """The MIMIC-CXR-JPG image whose ``files/...`` tail ``path`` ends with."""
        if self.mimic is None:
            raise ConfigError("mimic_root", f"{where} names a MIMIC-CXR-JPG image: "
                                            "set mimic_root=<folder holding files/>")
        found = self.mimic / path[path.index("files/"):]
        if not found.is_file():
            raise BadCase(f"{where}: image {found} not found under mimic_root", key="mimic_root")
        return found

    def find(self, path: str, where: str) -> Path:
        """The image an authors' path names (MIMIC's by its ``files/...`` tail, NIH's by its id),
        its header read: an unreadable file is a :class:`BadCase`."""
        path = path.strip().replace("\\", "/")
        found = self.mimic_image(path, where) if "files/p" in path else self.nih_image(Path(path).stem, where)
        try:
            Image.open(found).close()  # reads the header only: the pixels are read when a site loads
        except Exception as error:  # PIL raises format-specific types
            raise BadCase(f"{where}: cannot read {found}: {error}") from None
        return found


def read_split_file(path: Path, columns: Sequence[str], read_row: Callable[[dict, str], dict], skip_bad: bool,
                    skipped: list[str]) -> list[dict]:
    """The rows of one split file (BOM and unnamed index column tolerated), each through ``read_row``."""
    if not path.is_file():
        raise ConfigError("data_root", f"{path.parent}: no {path.name}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        require_columns(path, reader.fieldnames, columns)
        rows = list(enumerate(reader, start=2))
    return read_cases(rows, lambda item: read_row(item[1], f"{path}, row {item[0]}"), skip_bad, skipped)


def binary(row: dict, column: str, where: str, values: dict[str, int] = BINARY) -> int:
    """A row's 0/1 value of ``column``; another value is a :class:`BadCase`."""
    value = (row.get(column) or "").strip()
    if value not in values:
        raise BadCase(f"{where}, column {column}: value {value!r} not understood (expected one of {sorted(values)})")
    return values[value]


def aligned_share(rows: list[dict], site: str) -> float:
    """Share of a site's training rows whose bias equals the label: the accuracy of pseudo bias
    labels that copy the label, the baseline a pseudo-labeller must beat."""
    train = [row for row in rows if row["site"] == site and row["split"] == "train"]
    return sum(row["label"] == row["bias"] for row in train) / max(1, len(train))


def label_classes(label: str) -> dict[str, str]:
    """The table's names of a label's values."""
    return {"0": f"no {label}", "1": label}


class SbpRecipe(Recipe):
    """Builds a debiasing manifest (``path, label, bias, site, split``) from an ``SbP-bias*`` folder:
    label ``pneumonia``, bias ``MIMIC``, site the source.

    Parameters
    ----------
    recipe : str
        ``pbbl_sbp``.
    sites : dict
        Site id -> the ``MIMIC`` value of its rows (its source).
    """

    recipe: Literal["pbbl_sbp"]
    sites: dict[str, Literal[0, 1]] = {"NIH": 0, "MIMIC": 1}

    def prepare(self, roots: DataRoots, site_ids: Sequence[str]) -> PreparedManifest:
        finder = ImageFinder(roots.nih, roots.mimic)
        site_of = {source: site for site, source in self.sites.items() if site in site_ids}
        prepared = PreparedManifest(COLUMNS, [], "label", label_classes("pneumonia"))

        def reader(split: str) -> Callable[[dict, str], dict | None]:
            def read(row: dict, where: str) -> dict | None:
                label, bias = binary(row, "pneumonia", where), binary(row, "MIMIC", where)
                if bias not in site_of:
                    return None  # a source the scenario has no site for
                return {"path": str(finder.find(row["path"], where)), "label": label, "bias": bias,
                        "site": site_of[bias], "split": split}
            return read

        for name, split in (("train_NIH.csv", "train"), ("train_MIMIC.csv", "train"), ("test.csv", "test")):
            prepared.rows += read_split_file(roots.data / name, ("path", "pneumonia", "MIMIC"), reader(split),
                                             roots.skip_bad, prepared.skipped)
        return finish(prepared, site_ids, "MIMIC")


def patient_rank(image_id: str) -> str:
    """A patient's place in the dealing order: a hash of the NIH patient id (``00000001`` of
    ``00000001_000``), the same on every machine, so a patient's images stay at one site."""
    return hashlib.sha1(image_id.split("_")[0].encode()).hexdigest()


class GbpRecipe(Recipe):
    """Builds a debiasing manifest from a ``GbP-case*`` folder: label ``pneumothorax``, bias
    ``gender``, each gender's patients dealt to the sites in ``sites``' shares.

    Parameters
    ----------
    recipe : str
        ``pbbl_gbp``.
    genders : dict
        A ``gender`` value -> its bias value (0 or 1).
    sites : dict
        Site id -> ``[share of bias-0 patients, share of bias-1 patients]``; each gender's shares
        sum to 1, so every patient is at one site.
    """

    recipe: Literal["pbbl_gbp"]
    genders: dict[str, Literal[0, 1]] = {"0": 0, "1": 1, "F": 0, "M": 1}
    sites: dict[str, Annotated[list[float], Field(min_length=2, max_length=2)]]

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> "GbpRecipe":
        for bias in (0, 1):
            total = sum(shares[bias] for shares in self.sites.values())
            if abs(total - 1) > 1e-6 or any(shares[bias] < 0 for shares in self.sites.values()):
                raise invalid("sites", f"the shares of bias-{bias} patients must be >= 0 and sum to 1 (got {total:g})")
        return self

    def site_of(self, bias: int, rank: float) -> str:
        """The site whose share of bias-``bias`` patients holds ``rank`` in [0, 1)."""
        edge = 0.0
        for site, shares in self.sites.items():
            edge += shares[bias]
            if rank < edge:
                return site
        return site

    def prepare(self, roots: DataRoots, site_ids: Sequence[str]) -> PreparedManifest:
        unknown = [site for site in self.sites if site not in site_ids]
        if unknown:
            raise ConfigError("dataset.sites", f"site {unknown[0]!r} is not a site of the scenario {list(site_ids)}")
        finder = ImageFinder(roots.nih, roots.mimic)
        prepared = PreparedManifest(COLUMNS, [], "label", label_classes("pneumothorax"))
        files = (("train.csv", "train"), ("test.csv", "test"))
        read = {}
        for name, split in files:
            read[split] = read_split_file(
                roots.data / name, ("path", "pneumothorax", "gender"),
                lambda row, where, split=split: {
                    "path": str(finder.find(row["path"], where)), "label": binary(row, "pneumothorax", where),
                    "bias": binary(row, "gender", where, self.genders), "split": split,
                    "rank": patient_rank(Path(row["path"].strip()).stem)},
                roots.skip_bad, prepared.skipped)
        for bias in (0, 1):
            ranks = sorted({row["rank"] for rows in read.values() for row in rows if row["bias"] == bias})
            place = {rank: i / len(ranks) for i, rank in enumerate(ranks)}
            for rows in read.values():
                for row in rows:
                    if row["bias"] == bias:
                        row["site"] = self.site_of(bias, place[row.pop("rank")])
        prepared.rows = [row for rows in read.values() for row in rows]
        for site in self.sites:  # the task's source_biased arrangement scores every group at every site
            groups = {(row["label"], row["bias"]) for row in read["test"] if row["site"] == site}
            for label, bias in ((0, 0), (0, 1), (1, 0), (1, 1)):
                if (label, bias) not in groups:
                    raise ConfigError("data_root", f"site {site}: no image of pneumothorax {label} and gender bias "
                                                   f"{bias} in {roots.data / 'test.csv'}; every site needs each "
                                                   "(label, bias) group there: deal it a larger share (dataset.sites)")
        return finish(prepared, site_ids, "gender")


def finish(prepared: PreparedManifest, site_ids: Sequence[str], bias: str) -> PreparedManifest:
    """The values as text; every site's counts checked and its copy-the-label baseline noted."""
    prepared.rows = [{key: str(value) for key, value in row.items()} for row in prepared.rows]
    check_site_counts(prepared, site_ids, fewest=1 + len(HELD_OUT))
    prepared.notes.append(f"bias = {bias}; share of each site's training images whose bias equals the label "
                          "(the accuracy of pseudo bias labels that copy the label): "
                          + ", ".join(f"{site} {aligned_share(prepared.rows, site):.3f}" for site in site_ids))
    return prepared
