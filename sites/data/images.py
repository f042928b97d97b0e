"""One image file read with MONAI's ``LoadImage``, its colour channels first whatever the format.

Grey, grey + alpha, RGB and RGBA images become one channel: the luminance
``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, as PIL's ``L`` mode), the alpha channel dropped.
"""

from pathlib import Path

import numpy as np
from monai.data import MetaTensor
from monai.transforms import LoadImage
from pydicom import dcmread
from pydicom.misc import is_dicom

#: Weights of R, G and B in the luminance.
LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _samples_per_pixel(path: Path) -> int:
    """A DICOM file's colour samples, which MONAI's reader leaves as a trailing spatial axis."""
    if not is_dicom(path):
        return 1
    return int(dcmread(path, stop_before_pixels=True).get("SamplesPerPixel", 1))


def load_channels_first(path: Path, load: LoadImage, where: str) -> MetaTensor:
    """``(C, *spatial)``: the file's channels (colour samples, or a 4D volume's fourth axis)
    first, with MONAI's metadata; ``ValueError('cannot read ...')`` when no reader can read it.

    Parameters
    ----------
    path : Path
        An image file (PNG, DICOM, NIfTI: whatever ``load`` reads).
    load : LoadImage
        Built with ``image_only=True, ensure_channel_first=True``.
    where : str
        Begins the message (the manifest and row).
    """
    try:
        image = load(str(path))
        samples = _samples_per_pixel(path)
    except Exception as error:  # MONAI and pydicom raise reader-specific types
        raise ValueError(f"{where}: cannot read {path}: {error}") from None
    if samples > 1 and image.shape[0] == 1 and image.shape[-1] == samples:
        image = image[0].movedim(-1, 0)
    return image


def single_channel(image: np.ndarray, path: Path, where: str) -> np.ndarray:
    """``(1, H, W)`` float32 from the ``(C, H, W)`` of the 2D image at ``path``: grey as it is,
    grey + alpha without the alpha, RGB and RGBA as their luminance; other channel counts
    are a ``ValueError`` beginning with ``where``."""
    image = np.asarray(image, dtype=np.float32)
    channels = image.shape[0]
    if channels in (1, 2):
        return image[:1]
    if channels in (3, 4):
        return np.tensordot(LUMINANCE, image[:3], axes=1)[None]
    raise ValueError(f"{where}: {path} has {channels} channels; expected 1 (grey), 2 (grey + alpha), 3 (RGB) "
                     "or 4 (RGBA)")
