"""Segmentation cases from disk: a CSV manifest of image and mask files, cut into 2D slices.

Columns: ``image`` and ``mask`` (paths relative to the manifest's folder, or absolute),
``site`` (a site id of the scenario); optional ``split`` (``train``, ``validation`` or ``test``;
without it a seeded fifth of each site's cases, at least one, is the test split: see
:mod:`sites.data.splits`). A row is one case, so a case's slices never fall in two splits; a
site needs two cases (one per split). A validation split exists only where the manifest names
its rows (``evaluate_split=validation`` needs it at every site).

A case is either two 3D volumes (NIfTI, or any volume MONAI's ``LoadImage`` reads), as the
public multi-site prostate MRI collections ship one image and one label volume per case, or
two 2D files (PNG, DICOM, ...). Volumes are reoriented to RAS (MONAI's ``Orientation``) and
cut along one axis (2, the default: axial slices); a 2D case is one slice. Images become one
channel (:mod:`sites.data.images`); every slice is resized to the task's size (MONAI's
``Resize``, nearest neighbour for masks) and z-scored on its own, as the synthetic slices are,
or (``Slicing.zscore="volume"``) with its volume's mean and deviation, as the multi-site prostate
papers' code does.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from monai.transforms import LoadImage, NormalizeIntensity, Orientation, Resize, Spacing

from .images import load_channels_first, single_channel
from .manifest import listed_path, site_rows
from .splits import assign_splits, check_splits

REQUIRED_COLUMNS = ("image", "mask", "site")
SPLITS = ("train", "validation", "test")
HELD_OUT = {"test": 5}


@dataclass(frozen=True)
class Slicing:
    """How a site's cases become slices.

    Parameters
    ----------
    image_size : int
        Slices are resized to ``image_size`` x ``image_size``.
    axis : int
        The volumes' axis, after reorienting to RAS, that slices are cut along: 0 sagittal,
        1 coronal, 2 axial.
    empty_share : float
        Share of each case's slices without foreground that are kept (seeded), in [0, 1];
        every slice with foreground is kept.
    label_values : tuple of int or None
        Mask values that are foreground; ``None``: the mask's one non-zero value (a mask with
        several is refused).
    pixel_spacing : tuple of two floats or None
        In-plane spacing (mm, the two axes other than ``axis`` in RAS order) volumes are
        resampled to before the slices are resized, so that sites whose scanners sample
        differently show an organ at the same scale; ``None``: each volume keeps its own.
    zscore : str
        ``slice``: each slice is z-scored on its own; ``volume``: with its whole volume's mean
        and standard deviation, so slices keep their brightness relative to each other.
    """

    image_size: int
    axis: int = 2
    empty_share: float = 0.1
    label_values: tuple[int, ...] | None = None
    pixel_spacing: tuple[float, float] | None = None
    zscore: str = "slice"

    def resample(self, image, mask) -> tuple:
        """A RAS volume and its mask resampled to ``pixel_spacing`` in plane (the slicing axis
        keeps its spacing); unchanged without one."""
        if self.pixel_spacing is None:
            return image, mask
        pixdim = list(self.pixel_spacing)
        pixdim.insert(self.axis, 0.0)  # non-positive: MONAI keeps the volume's own spacing there
        return Spacing(pixdim, mode="bilinear")(image), Spacing(pixdim, mode="nearest")(mask)


def read_site_cases(manifest: Path, site: str) -> list[dict]:
    """The validated rows of one site; every error names the manifest, the row and the file."""
    cases = []
    for line, raw in site_rows(manifest, site, REQUIRED_COLUMNS):
        where = f"manifest {manifest}, row {line}"
        files = {column: listed_path(manifest, raw[column]) for column in ("image", "mask")}
        for column, path in files.items():
            if not path.is_file():
                raise ValueError(f"{where}: {column} not found: {path}")
        split = (raw.get("split") or "").strip()
        if split not in ("", *SPLITS):
            raise ValueError(f"{where}: split must be one of {list(SPLITS)} (got {split!r})")
        cases.append({"line": line, "where": where, **files, "split": split})
    if not cases:
        raise ValueError(f"manifest {manifest} has no rows for site {site!r}")
    check_splits(cases, HELD_OUT, None, {}, f"manifest {manifest}, site {site!r}")
    return cases


def _foreground(mask: np.ndarray, label_values: tuple[int, ...] | None, case: dict) -> np.ndarray:
    if label_values is not None:
        return np.isin(mask, label_values)
    labels = np.unique(mask[mask != 0])
    if len(labels) > 1:
        shown = ", ".join([f"{value:g}" for value in labels[:5]] + (["..."] if len(labels) > 5 else []))
        raise ValueError(f"{case['where']}: {case['mask']} holds {len(labels)} non-zero labels [{shown}]; "
                         "set task.label_values to the foreground ones")
    return mask != 0


def _read_case(case: dict, slicing: Slicing, load: LoadImage) -> tuple[np.ndarray, np.ndarray]:
    """A case's image and foreground as ``(X, Y, Z)`` arrays, Z the slicing axis."""
    image, mask = (load_channels_first(case[column], load, case["where"]) for column in ("image", "mask"))
    for column, read in (("image", image), ("mask", mask)):
        if read.ndim == 4 and read.shape[0] != 1:
            raise ValueError(f"{case['where']}: {case[column]} is a 4D volume ({read.shape[0]} volumes of "
                             f"{tuple(read.shape[1:])}); a case needs one 3D volume")
    if image.shape[1:] != mask.shape[1:]:
        raise ValueError(f"{case['where']}: image {tuple(image.shape[1:])} and mask {tuple(mask.shape[1:])} "
                         "differ in shape")
    if mask.shape[0] != 1:
        raise ValueError(f"{case['where']}: {case['mask']} has {mask.shape[0]} channels; a mask needs one")
    if image.ndim == 4:
        orient = Orientation(axcodes="RAS", labels=None)  # the axes' meaning from the reader's metadata
        image, mask = slicing.resample(orient(image), orient(mask))
        image, mask = (np.moveaxis(np.asarray(v[0]), slicing.axis, -1) for v in (image, mask))
    elif image.ndim == 3:
        image = single_channel(image, case["image"], case["where"])[0, ..., None]
        mask = np.asarray(mask)[0, ..., None]
    else:
        raise ValueError(f"{case['where']}: expected a 2D image or a 3D volume, got shape {tuple(image.shape[1:])}")
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all() or image.std() == 0:
        raise ValueError(f"{case['where']}: {case['image']} is constant or not finite")
    foreground = _foreground(np.asarray(mask), slicing.label_values, case)
    if not foreground.any():
        raise ValueError(f"{case['where']}: {case['mask']} has no foreground"
                         + (f" (no voxel in task.label_values {list(slicing.label_values)})"
                            if slicing.label_values is not None else ""))
    return image, foreground


def load_site_slices(manifest: Path, site: str, slicing: Slicing,
                     rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A site's splits: split name -> (images ``(N, 1, S, S)`` float32, masks ``(N, 1, S, S)`` int64);
    ``validation`` only where rows name it."""
    cases = read_site_cases(manifest, site)
    assign_splits(cases, HELD_OUT, None, rng)
    load = LoadImage(image_only=True, ensure_channel_first=True)
    size = (slicing.image_size, slicing.image_size)
    resize_image, resize_mask = Resize(size), Resize(size, mode="nearest")
    normalize = NormalizeIntensity(channel_wise=True)

    def slices(case: dict) -> tuple[np.ndarray, np.ndarray]:
        image, foreground = _read_case(case, slicing, load)
        filled = foreground.any(axis=(0, 1))
        empty = np.flatnonzero(~filled)
        kept = np.sort(np.concatenate([np.flatnonzero(filled), rng.permutation(empty)[
            : round(slicing.empty_share * len(empty))]]))
        if slicing.zscore == "volume":
            image = (image - image.mean()) / image.std()
        # The kept slices as channels: MONAI resizes and (zscore=slice) z-scores each on its own.
        image = resize_image(np.moveaxis(image[..., kept], -1, 0))
        image = normalize(image) if slicing.zscore == "slice" else image
        mask = resize_mask(np.moveaxis(foreground[..., kept], -1, 0).astype(np.float32))
        return np.asarray(image, dtype=np.float32)[:, None], np.asarray(mask).astype(np.int64)[:, None]

    splits = {}
    for name in SPLITS:
        read = [slices(case) for case in cases if case["split"] == name]
        if read:  # validation only where the manifest names it
            splits[name] = tuple(np.concatenate(parts) for parts in zip(*read))
    return splits
