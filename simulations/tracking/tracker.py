"""What every experiment-tracking backend does: log scalars at a step, log an image, close."""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path


class Tracker(ABC):
    """One run's record in an experiment tracker (:mod:`.tensorboard_tracker`, :mod:`.mlflow_tracker`)."""

    @abstractmethod
    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Log each ``tag -> value`` of ``scalars`` at ``step`` (a round, or a stage)."""

    @abstractmethod
    def log_image(self, path: Path) -> None:
        """Log the PNG file at ``path``, named by its file name."""

    @abstractmethod
    def close(self, finished: bool) -> None:
        """Write out everything logged; ``finished`` is ``False`` when the run stopped with an error."""
