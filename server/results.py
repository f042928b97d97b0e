"""What a run leaves behind: the result matrix and its summaries, as JSON."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .continual_metrics import summarize
from .scenario import Scenario


@dataclass
class RunResult:
    """R[t, j] with everything needed to read it.

    Attributes
    ----------
    scenario : Scenario
        The timeline that produced it.
    metric : str
        The primary metric in R.
    matrix : np.ndarray
        Shape ``(stages, sites)``: R[t, j], row t after stage t + 1, columns in site order.
    site_metrics : list of dict
        Per stage, site id -> every metric the site reported.
    """

    scenario: Scenario
    metric: str
    matrix: np.ndarray
    site_metrics: list[dict[str, dict[str, float]]]

    @property
    def arrival(self) -> list[int | None]:
        return [site.arrival for site in self.scenario.sites]

    def summary(self) -> dict:
        return {"metric": self.metric, "schedule": self.scenario.schedule, **summarize(self.matrix, self.arrival)}

    def matrix_json(self) -> dict:
        return {
            "metric": self.metric,
            "sites": self.scenario.site_ids,
            "site_names": [site.name for site in self.scenario.sites],
            "arrival": self.arrival,
            "held_out": list(self.scenario.held_out),
            "stages": [list(stage.sites) for stage in self.scenario.stages],
            "R": self.matrix.tolist(),
            "site_metrics": self.site_metrics,
        }

    def write(self, run_dir: Path) -> None:
        """Write ``matrix.json`` and ``summary.json`` into ``run_dir``."""
        (run_dir / "matrix.json").write_text(json.dumps(self.matrix_json(), indent=2))
        (run_dir / "summary.json").write_text(json.dumps(self.summary(), indent=2))

    @classmethod
    def read_matrix(cls, run_dir: Path) -> dict:
        return json.loads((run_dir / "matrix.json").read_text())
