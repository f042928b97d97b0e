"""BraTS-style multi-modal cases from disk: a CSV manifest and one folder of NIfTI files per case.

Manifest columns: ``case`` (the case folder's name, relative to the manifest's folder),
``grade`` (``LGG`` or ``HGG``, any case), ``site`` (a site id of the scenario); optional
``split`` (``train``, ``validation`` or ``test``; without it, within each grade, a seeded fifth
of the cases, at least one, is the test split and a tenth, at least one, the validation split:
see :mod:`sites.data.splits`). A site needs a case of each grade in each split: at least six
cases. A case folder holds one file per
modality, named like BraTS's own: ``<anything>_t1.nii.gz`` or ``t1.nii`` (and ``t1ce``, ``t2``,
``flair``).

Volumes are read with MONAI's ``LoadImage`` as ``(X, Y, Z)`` with ``Z`` the axial (slice) axis,
reordered to ``(Z, X, Y)``, resized with MONAI's ``Resize`` and z-scored per modality.
"""

import re
from pathlib import Path

import numpy as np
from monai.transforms import LoadImage, NormalizeIntensity, Resize

from .brain import MODALITIES
from .manifest import site_rows
from .splits import assign_splits, check_splits

REQUIRED_COLUMNS = ("case", "grade", "site")
GRADES = {"LGG": 0, "HGG": 1}
SPLITS = ("train", "validation", "test")
HELD_OUT = {"test": 5, "validation": 10}


def _modality_file(case_dir: Path, modality: str, where: str) -> Path:
    pattern = re.compile(rf"(.*_)?{modality}\.nii(\.gz)?")
    found = [path for path in case_dir.iterdir() if pattern.fullmatch(path.name.lower())]
    if len(found) != 1:
        problem = "missing modality" if not found else f"{len(found)} files for modality"
        raise ValueError(f"{where}: {problem} {modality} (expected one *_{modality}.nii[.gz] in {case_dir})")
    return found[0]


def read_site_cases(manifest: Path, site: str) -> list[dict]:
    """The validated rows of one site, with each case's four files; every error names the
    manifest, the row and the case."""
    cases = []
    for line, raw in site_rows(manifest, site, REQUIRED_COLUMNS):
        case = raw["case"].strip()
        where = f"manifest {manifest}, row {line}, case {case}"
        grade = raw["grade"].strip().upper()
        if grade not in GRADES:
            raise ValueError(f"{where}: grade must be one of {list(GRADES)} (got {raw['grade']!r})")
        split = (raw.get("split") or "").strip()
        if split not in ("", *SPLITS):
            raise ValueError(f"{where}: split must be one of {list(SPLITS)} (got {split!r})")
        case_dir = manifest.parent / case
        if not case_dir.is_dir():
            raise ValueError(f"{where}: case folder not found: {case_dir}")
        files = [_modality_file(case_dir, modality, where) for modality in MODALITIES]
        cases.append({"line": line, "where": where, "files": files, "grade": GRADES[grade], "split": split})
    if not cases:
        raise ValueError(f"manifest {manifest} has no cases for site {site!r}")
    check_splits(cases, HELD_OUT, "grade", {value: name for name, value in GRADES.items()},
                 f"manifest {manifest}, site {site!r}")
    return cases


def load_site_cases(manifest: Path, site: str, depth: int, size: int,
                    rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A site's splits: split name -> (volumes ``(N, 4, depth, size, size)`` float32, grades ``(N,)`` int64)."""
    cases = read_site_cases(manifest, site)
    assign_splits(cases, HELD_OUT, "grade", rng)
    load = LoadImage(image_only=True, ensure_channel_first=True)
    resize, normalize = Resize((depth, size, size)), NormalizeIntensity()

    def read(case: dict) -> np.ndarray:
        volumes = []
        for modality, path in zip(MODALITIES, case["files"]):
            try:
                volume = np.asarray(load(str(path)), dtype=np.float32)
            except Exception as error:  # MONAI raises reader-specific types
                raise ValueError(f"{case['where']}: cannot read {path}: {error}") from None
            if volume.ndim != 4 or volume.shape[0] != 1:
                raise ValueError(f"{case['where']}: {path} is not a single-channel 3D volume (shape {volume.shape})")
            if not np.isfinite(volume).all() or volume.std() == 0:
                raise ValueError(f"{case['where']}: {path} is constant or not finite")
            volumes.append(volume)
        shapes = {modality: v.shape[1:] for modality, v in zip(MODALITIES, volumes)}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"{case['where']}: modalities differ in shape {shapes}")
        return np.concatenate([np.asarray(normalize(resize(np.moveaxis(v, 3, 1))), dtype=np.float32)
                               for v in volumes])

    splits = {}
    for name in SPLITS:
        chosen = [case for case in cases if case["split"] == name]
        splits[name] = (np.stack([read(case) for case in chosen]),
                        np.array([case["grade"] for case in chosen], dtype=np.int64))
    return splits
