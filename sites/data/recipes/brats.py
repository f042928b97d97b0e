"""The BraTS training sets as distributed (see docs/datasets/cmg_brats.md):

- 2018 and 2019: ``MICCAI_BraTS_<year>_Data_Training/{HGG,LGG}/<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``,
  the grade from the parent folder;
- 2020: ``MICCAI_BraTS2020_TrainingData/BraTS20_Training_NNN/<case>_{t1,t1ce,t2,flair}.nii[.gz]``,
  the grade from the ``Grade`` column of ``name_mapping.csv``.

A case's institution is the code its id carries (``Brats18_TCIA01_390_1``: ``TCIA01``;
``BraTS19_CBICA_AAB_1``: ``CBICA``; ``Brats18_2013_2_1``: ``2013``); 2020's ids carry none, so
its ``name_mapping.csv`` lends the case's 2019, 2018 or 2017 id, and a case new in 2020 is
``unknown``. That an institution is the code is our inference. ``sites`` merges institutions
into the scenario's sites: each code joins the first site with a matching pattern.
"""

import csv
import fnmatch
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from ...errors import ConfigError
from ..brain import MODALITIES
from ..brats import GRADES, HELD_OUT
from .base import (
    BadCase,
    DataRoots,
    PreparedManifest,
    Recipe,
    check_site_counts,
    read_cases,
    require_columns,
    volume_shape,
)

NAME_MAPPING = "name_mapping.csv"
#: name_mapping.csv's columns that may hold a case's id from a year whose ids name the institution.
EARLIER_IDS = ("BraTS_2019_subject_ID", "BraTS_2018_subject_ID", "BraTS_2017_subject_ID")
ID_COLUMN = "BraTS_2020_subject_ID"


def institution(case_id: str) -> str | None:
    """The institution code of a 2017-2019 case id (its second ``_`` part), ``None`` for another id."""
    parts = case_id.strip().split("_")
    return parts[1] if len(parts) >= 3 and re.fullmatch(r"brats1[789]", parts[0], re.IGNORECASE) else None


def modality_files(case_dir: Path) -> list[Path]:
    """The case's four sequences (``*_t1.nii[.gz]`` ...); a missing one is a :class:`BadCase`."""
    files = []
    for modality in MODALITIES:
        pattern = re.compile(rf"(.*_)?{modality}\.nii(\.gz)?")
        found = [path for path in case_dir.iterdir() if pattern.fullmatch(path.name.lower())]
        if len(found) != 1:
            problem = "no" if not found else f"{len(found)} files for"
            raise BadCase(f"{case_dir}: {problem} sequence {modality} (expected one <case>_{modality}.nii[.gz])")
        files.append(found[0])
    shapes = {path.name: volume_shape(path) for path in files}
    if len(set(shapes.values())) > 1:
        raise BadCase(f"{case_dir}: the sequences differ in shape {shapes}")
    return files


class BratsRecipe(Recipe):
    """Builds a grading manifest (``case, grade, site, institution``) from a BraTS training set.

    Parameters
    ----------
    recipe : str
        ``brats``.
    year : int or str
        ``auto`` (from the layout: grade folders for 2018/2019, ``name_mapping.csv`` for 2020;
        2018 and 2019 told apart by the case ids), or 2018, 2019, 2020 (checked against the layout).
    sites : dict
        Site id -> institution code patterns (``fnmatch``, e.g. ``TCIA*``); an institution joins
        the first site that matches it, one that none matches is refused.
    """

    recipe: Literal["brats"]
    year: Literal["auto", 2018, 2019, 2020] = "auto"
    sites: dict[str, list[str]]

    def site_of(self, code: str, where: str) -> str:
        """The site institution ``code`` joins; none is a :class:`BadCase` at ``where``."""
        for site, patterns in self.sites.items():
            if any(fnmatch.fnmatchcase(code, pattern) for pattern in patterns):
                return site
        raise BadCase(f"{where}: institution {code!r} matches no site of dataset.sites")

    def detect_year(self, root: Path) -> int:
        """The layout's year; a folder of neither layout, or not the year asked for, is a ``ConfigError``."""
        if not root.is_dir():
            raise ConfigError("data_root", f"no such folder: {root}")
        if (root / "HGG").is_dir() and (root / "LGG").is_dir():  # 2019 ships a name_mapping.csv too
            ids = [path.name for path in (root / "HGG").iterdir() if path.is_dir()]
            found = 2019 if any(name.lower().startswith("brats19") for name in ids) else 2018
        elif (root / NAME_MAPPING).is_file():
            found = 2020
        else:
            missing = "LGG" if (root / "HGG").is_dir() else "HGG"
            raise ConfigError("data_root", f"{root}: not a BraTS training folder (no {missing}/ folder of 2018/2019, "
                                           f"no {NAME_MAPPING} of 2020)")
        if self.year != "auto" and self.year != found:
            raise ConfigError("dataset.year", f"{self.year}, but {root} is laid out as BraTS {found}")
        return found

    def prepare(self, roots: DataRoots, site_ids: Sequence[str]) -> PreparedManifest:
        unknown = [site for site in self.sites if site not in site_ids]
        if unknown:
            raise ConfigError("dataset.sites", f"site {unknown[0]!r} is not a site of the scenario {list(site_ids)}")
        year = self.detect_year(roots.data)
        cases = self._graded_cases(roots.data) if year == 2020 else [
            (case_dir, grade, institution(case_dir.name), f"{roots.data / grade}") for grade in GRADES
            for case_dir in sorted((roots.data / grade).iterdir()) if case_dir.is_dir()]

        def read(item: tuple[Path, str, str | None, str]) -> dict:
            case_dir, grade, code, graded_at = item
            if grade not in GRADES:
                raise BadCase(f"{graded_at}: grade {grade!r} of {case_dir.name} not understood (LGG or HGG)")
            if code is None and year != 2020:
                raise BadCase(f"{case_dir}: case id {case_dir.name!r} names no institution (BratsNN_<institution>_...)")
            code = code or "unknown"
            modality_files(case_dir)
            return {"case": str(case_dir.resolve()), "grade": grade, "site": self.site_of(code, str(case_dir)),
                    "institution": code}

        prepared = PreparedManifest(columns=("case", "grade", "site", "institution"), rows=[], class_column="grade",
                                    class_names={grade: grade for grade in GRADES})
        prepared.rows = read_cases(cases, read, roots.skip_bad, prepared.skipped)
        check_site_counts(prepared, site_ids, fewest=1 + len(HELD_OUT))
        institutions = {}
        for row in prepared.rows:
            institutions.setdefault(row["site"], set()).add(row["institution"])
        found = "; ".join(f"{site}: {', '.join(sorted(codes))}" for site, codes in institutions.items())
        prepared.notes.append(f"BraTS {year}; institutions per site (our inference from the case ids): {found}")
        return prepared

    def _graded_cases(self, root: Path) -> list[tuple[Path, str, str | None, str]]:
        """2020: every case folder with its grade, its institution from ``name_mapping.csv`` and
        where the grade was read."""
        mapping = root / NAME_MAPPING
        with mapping.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            require_columns(mapping, reader.fieldnames, ("Grade", ID_COLUMN))
            rows = {row[ID_COLUMN].strip(): (line, row) for line, row in enumerate(reader, start=2)}
        cases = []
        for case_dir in sorted(path for path in root.iterdir() if path.is_dir()):
            line, row = rows.get(case_dir.name, (None, None))
            if row is None:
                cases.append((case_dir, "", None, f"{mapping} (no row for the case)"))
                continue
            earlier = [institution(row.get(column) or "") for column in EARLIER_IDS]
            cases.append((case_dir, row["Grade"].strip().upper(), next((code for code in earlier if code), None),
                          f"{mapping}, row {line}, column Grade"))
        return cases
