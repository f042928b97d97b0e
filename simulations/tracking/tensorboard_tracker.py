"""TensorBoard event files, written with ``torch.utils.tensorboard``."""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from .tracker import Tracker


class TensorBoardTracker(Tracker):
    """Scalars and images as TensorBoard events (``tensorboard --logdir <run dir>/tensorboard``).

    Parameters
    ----------
    log_dir : Path
        The folder of the event files.
    """

    def __init__(self, log_dir: Path) -> None:
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, step)

    def log_image(self, path: Path) -> None:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self._writer.add_image(path.stem, pixels, 0, dataformats="HWC")

    def close(self, finished: bool) -> None:
        self._writer.close()
