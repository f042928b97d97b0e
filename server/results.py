"""What a run leaves behind: the result matrix and its summaries, as JSON."""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .continual_metrics import summarize
from .records import AuditRecord, Failure, ReplayRecord, WithdrawalRecord
from .scenario import Scenario


@dataclass
class RunResult:
    """R[t, j] with everything needed to read it, filled stage by stage.

    Attributes
    ----------
    scenario : Scenario
        The timeline that produced it.
    metric : str
        The primary metric in R.
    split : str
        The sites' split R was measured on (``test``, or ``validation`` when choosing settings).
    site_metrics : list of dict
        Per stage, site id -> every scalar metric the site reported.
    statistics : list of dict
        Per stage, phase -> the site statistics summed before that phase (if it needed any).
    pooled : list of dict
        Per stage, federation-wide metrics the task computed from every site's evaluation.
    phase_configs : list of dict
        Per stage, phase -> the training-config entries the server set from that phase's
        statistics (e.g. grading's primary modality), for phases that needed statistics.
    audit : AuditRecord or None
        The privacy audit (:func:`~server.privacy_audit.audit_result`), if the scenario ran one.
    withdrawals : list of WithdrawalRecord
        One record per site withdrawal (:class:`~server.withdrawal.WithdrawalEvent`).
    replay : ReplayRecord or None
        What the replay source reports (:meth:`~server.replay.ReplaySource.summary`), if the run had one.
    failures : list of Failure
        Every site that went down during training (``faults.crash_prob``) or replied invalidly
        (:mod:`server.reply_check`): stage, round, site, reason.
    """

    scenario: Scenario
    metric: str
    split: str = "test"
    site_metrics: list[dict[str, dict[str, float]]] = field(default_factory=list)
    statistics: list[dict[str, dict[str, float]]] = field(default_factory=list)
    pooled: list[dict[str, float]] = field(default_factory=list)
    phase_configs: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    audit: AuditRecord | None = None
    withdrawals: list[WithdrawalRecord] = field(default_factory=list)
    replay: ReplayRecord | None = None
    failures: list[Failure] = field(default_factory=list)

    def add_stage(self, site_metrics: dict[str, dict[str, Any]], statistics: dict[str, dict[str, float]],
                  pooled: dict[str, float], phase_configs: dict[str, dict[str, Any]] | None = None) -> None:
        scalars = {site: {k: v for k, v in metrics.items() if not isinstance(v, list)}
                   for site, metrics in site_metrics.items()}
        self.site_metrics.append({site: scalars[site] for site in self.scenario.site_ids})
        self.statistics.append(statistics)
        self.pooled.append(pooled)
        self.phase_configs.append(phase_configs or {})

    @property
    def matrix(self) -> np.ndarray:
        """Shape ``(stages, sites)``: R[t, j], row t after stage t + 1, columns in site order."""
        return np.array([[stage[site][self.metric] for site in self.scenario.site_ids]
                         for stage in self.site_metrics])

    @property
    def arrival(self) -> list[int | None]:
        return [site.arrival for site in self.scenario.sites]

    def summary(self) -> dict:
        summary = {"metric": self.metric, "split": self.split, "schedule": self.scenario.schedule,
                   **summarize(self.matrix, self.arrival)}
        if self.pooled and self.pooled[-1]:
            summary["pooled"] = self.pooled[-1]
        if self.failures:
            summary["failures"] = [failure.to_dict() for failure in self.failures]
        spent = [{"site": w.site, "stage": w.stage, "method": w.method,
                  "epsilon": {site: asdict(figures.epsilon) for site, figures in w.privacy.sites.items()}}
                 for w in self.withdrawals if w.privacy is not None]
        if spent:  # with DP: each involved site's epsilon before and after each withdrawal
            summary["withdrawal_epsilon"] = spent
        return summary

    def matrix_json(self) -> dict:
        return {
            "metric": self.metric,
            "split": self.split,
            "sites": self.scenario.site_ids,
            "site_names": [site.name for site in self.scenario.sites],
            "arrival": self.arrival,
            "held_out": list(self.scenario.held_out),
            "stages": [list(stage.sites) for stage in self.scenario.stages],
            "R": self.matrix.tolist(),
            "site_metrics": self.site_metrics,
            "statistics": self.statistics,
            "pooled": self.pooled,
            "phase_configs": self.phase_configs,
        }

    def write(self, run_dir: Path) -> None:
        """Write ``matrix.json``, ``summary.json``, (audited runs) ``privacy_audit.json``, (runs
        with withdrawals) ``withdrawal.json`` and (runs with replay) ``replay.json`` into ``run_dir``."""
        (run_dir / "matrix.json").write_text(json.dumps(self.matrix_json(), indent=2))
        (run_dir / "summary.json").write_text(json.dumps(self.summary(), indent=2))
        if self.audit is not None:
            (run_dir / "privacy_audit.json").write_text(json.dumps(self.audit.to_dict(), indent=2))
        if self.withdrawals:
            (run_dir / "withdrawal.json").write_text(json.dumps([w.to_dict() for w in self.withdrawals], indent=2))
        if self.replay is not None:
            (run_dir / "replay.json").write_text(json.dumps(self.replay.to_dict(), indent=2))
