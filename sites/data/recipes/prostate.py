"""The six-site prostate MRI release of MS-Net and SAML (Liu et al., 2020), as distributed:
``Processed_data_nii/<site>/CaseNN.nii.gz`` with ``CaseNN_segmentation.nii.gz`` (see
docs/datasets/smg_prostate.md).

A site's folder is its id, or one of the other names the release's copies use for it
(``aliases``: SAML's copy names RUNMC ``ISBI`` and BMC ``ISBI_1.5``). Images and masks are
matched by case name, case-insensitively (some mirrors write ``_Segmentation``); any mask value
above 0 is prostate, so the run's ``task.label_values`` become the positive values found.
"""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from ...errors import ConfigError
from ..segmentation_manifest import HELD_OUT
from .base import BadCase, DataRoots, PreparedManifest, Recipe, check_site_counts, read_cases, volume_shape

#: ``CaseNN.nii[.gz]`` and ``CaseNN_segmentation.nii[.gz]``, any case.
CASE_FILE = re.compile(r"(case\d+)(_segmentation)?\.nii(\.gz)?", re.IGNORECASE)


class ProstateRecipe(Recipe):
    """Builds a segmentation manifest (``image, mask, site``) from the release's site folders.

    Parameters
    ----------
    recipe : str
        ``prostate``.
    aliases : dict
        Folder name -> the site id it holds, for copies that name a site otherwise.
    """

    recipe: Literal["prostate"]
    aliases: dict[str, str] = {"ISBI": "RUNMC", "ISBI_1.5": "BMC"}

    def site_folder(self, root: Path, site: str) -> Path:
        """The folder of ``site`` under ``root``: its id, else an alias; missing is a ``ConfigError``."""
        names = [site, *(alias for alias, target in self.aliases.items() if target == site)]
        for name in names:
            if (root / name).is_dir():
                return root / name
        raise ConfigError("data_root", f"{root}: no site folder {' or '.join(names)}")

    def prepare(self, roots: DataRoots, site_ids: Sequence[str]) -> PreparedManifest:
        prepared = PreparedManifest(columns=("image", "mask", "site"), rows=[])
        labels: set[int] = set()
        for site in site_ids:
            folder = self.site_folder(roots.data, site)
            cases: dict[str, dict[str, Path]] = {}
            for path in sorted(folder.iterdir()):
                match = CASE_FILE.fullmatch(path.name)
                if match:
                    kind = "mask" if match.group(2) else "image"
                    cases.setdefault(match.group(1).lower(), {})[kind] = path

            def read(files: dict[str, Path], site: str = site, folder: Path = folder) -> dict:
                if "image" not in files or "mask" not in files:
                    found = next(iter(files.values()))
                    missing = "image" if "image" not in files else "mask"
                    raise BadCase(f"{folder}: {found.name} has no {missing} ({missing} of the same CaseNN)")
                shapes = {kind: volume_shape(path) for kind, path in files.items()}
                if shapes["image"] != shapes["mask"]:
                    raise BadCase(f"{files['mask']}: shape {shapes['mask']} differs from its image's {shapes['image']}")
                labels.update(mask_labels(files["mask"]))
                return {"image": str(files["image"].resolve()), "mask": str(files["mask"].resolve()), "site": site}

            prepared.rows += read_cases(cases.values(), read, roots.skip_bad, prepared.skipped)
        check_site_counts(prepared, site_ids, fewest=1 + len(HELD_OUT))
        prepared.task["label_values"] = sorted(labels)
        prepared.notes.append(f"mask values read as prostate: {sorted(labels)}")
        return prepared


def mask_labels(path: Path) -> set[int]:
    """The positive values of a mask; a fractional or negative value, or none above 0, is a :class:`BadCase`."""
    values = np.unique(np.asarray(nib.load(path).dataobj))
    odd = values[(values < 0) | (values != np.round(values))]
    if len(odd):
        raise BadCase(f"{path}: label value {odd[0]:g} not understood (a mask holds 0 and positive integers)")
    positive = {int(v) for v in values if v > 0}
    if not positive:
        raise BadCase(f"{path}: no prostate (no value above 0)")
    return positive
