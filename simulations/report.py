"""``report.md`` and ``report.html``: the result matrix as a heatmap, per-site curves over
stages, the summary, (audited runs) the privacy audit, (runs with withdrawals) the withdrawal
section and (runs with replay) the replay section."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written headless
import markdown  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from server.records import Failure  # noqa: E402
from server.results import RunResult  # noqa: E402

from .formatting import fmt, table_header, table_row  # noqa: E402
from .privacy_report import write_privacy_audit  # noqa: E402
from .replay_report import replay_section  # noqa: E402
from .withdrawal_report import withdrawal_section  # noqa: E402


def _site_labels(result: RunResult) -> list[str]:
    return [f"{s.id}" + (" (held out)" if s.arrival is None else f" (stage {s.arrival})")
            for s in result.scenario.sites]


def plot_heatmap(result: RunResult, path: Path) -> None:
    """R[t, j] with values written in the cells."""
    matrix = result.matrix
    fig, ax = plt.subplots(figsize=(1.3 * matrix.shape[1] + 2, 0.7 * matrix.shape[0] + 1.8))
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=max(1.0, float(np.nanmax(matrix))))
    ax.set_xticks(range(matrix.shape[1]), _site_labels(result), rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), [f"after stage {t}" for t in range(1, matrix.shape[0] + 1)])
    for (t, j), value in np.ndenumerate(matrix):
        ax.text(j, t, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
    ax.set_title(f"R[t, j]: {result.metric} on each site's {result.split} split")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_site_curves(result: RunResult, path: Path) -> None:
    """One line per site: its metric after each stage, with its arrival marked."""
    stages = np.arange(1, result.matrix.shape[0] + 1)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for j, (site, label) in enumerate(zip(result.scenario.sites, _site_labels(result))):
        style = "--" if site.arrival is None else "-"
        (line,) = ax.plot(stages, result.matrix[:, j], style, marker="o", label=label)
        if site.arrival is not None:
            ax.axvline(site.arrival, color=line.get_color(), alpha=0.15, linewidth=6)
    ax.set_xticks(stages)
    ax.set_xlabel("stage")
    ax.set_ylabel(result.metric)
    ax.set_title("per-site performance over the timeline (band: site's own stage)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _entry(value: object) -> str:
    """A phase-config entry as the report shows it: numbers rounded, lists in brackets."""
    if isinstance(value, list):
        return "[" + ", ".join(_entry(v) for v in value) + "]"
    return fmt(value) if isinstance(value, float) else str(value)


def failures_section(failures: list[Failure]) -> list[str]:
    """The sites that went down during training (``faults.crash_prob``) or replied invalidly
    (``faults.bad_reply``, :mod:`server.reply_check`), one row each."""
    lines = ["", "## Site failures", "",
             f"{len(failures)} training call(s) failed (the site went down, or its reply was invalid and left out); "
             "each round went on with the valid replies.", "",
             *table_header(("stage", "round", "site", "reason"))]
    return lines + [table_row((f.stage, f.round, f.site, f.reason)) for f in failures]


def write_report(run_dir: Path, result: RunResult) -> None:
    """Write ``report.md`` with ``heatmap.png`` and ``site_curves.png`` beside it."""
    plot_heatmap(result, run_dir / "heatmap.png")
    plot_site_curves(result, run_dir / "site_curves.png")
    summary = result.summary()
    scenario = result.scenario
    sites = result.scenario.sites
    lines = [
        f"# Run report: {scenario.name} ({scenario.schedule})",
        "",
        f"Primary metric: **{result.metric}** on each site's {result.split} split. "
        f"Stages: {' → '.join('+'.join(stage.sites) for stage in scenario.stages)}; "
        f"held out: {', '.join(scenario.held_out) or 'none'}.",
        "",
        *table_header(("final stage", "value")),
        table_row(("memorizability (mean over trained sites)", fmt(summary["memorizability"]))),
        table_row(("generalizability (mean over unseen / held-out sites)", fmt(summary["generalizability"]))),
        table_row(("backward transfer (BWT)", fmt(summary["bwt"]))),
        table_row(("forgetting", fmt(summary["forgetting"]))),
        "",
        "## R[t, j]",
        "",
        *table_header(["after stage", *(site.id for site in sites), "memorizability", "generalizability"]),
    ]
    for row, stage in zip(result.matrix, summary["per_stage"]):
        lines.append(table_row([stage["stage"], *(fmt(v) for v in row), fmt(stage["memorizability"]),
                                fmt(stage["generalizability"])]))
    if any(result.pooled):
        keys = sorted({key for stage in result.pooled for key in stage})
        lines += ["", "## Federation-wide metrics", "",
                  "Computed by the task from every site's evaluation (counts only, e.g. summed score "
                  "histograms) and the counts the sites reported before each phase.", "",
                  *table_header(["after stage", *keys])]
        for t, pooled in enumerate(result.pooled, start=1):
            lines.append(table_row([t, *(fmt(pooled.get(key)) for key in keys)]))
    if any(result.phase_configs):
        lines += ["", "## Phase configs", "",
                  "What the server set for each phase from the sites' summed statistics "
                  "(e.g. grading's primary modality; the figures it rests on are above).", "",
                  *table_header(["after stage", "phase", "config"])]
        for t, configs in enumerate(result.phase_configs, start=1):
            lines += [table_row([t, phase, ", ".join(f"{key}: {_entry(value)}" for key, value in entries.items())])
                      for phase, entries in configs.items()]
    if result.audit is not None:
        write_privacy_audit(run_dir, result.audit)
        levels = ", ".join(f"{site}: {audited.verdict.level}" for site, audited in result.audit.sites.items())
        lines += ["", "## Privacy audit", "",
                  f"Membership-inference exposure per site ({levels}); figures, ROC and verdicts in "
                  "[privacy_audit.html](privacy_audit.html) ([markdown](privacy_audit.md))."]
    if result.withdrawals:
        lines += withdrawal_section(result.withdrawals)
    if result.replay is not None:
        lines += replay_section(result.replay)
    if result.failures:
        lines += failures_section(result.failures)
    lines += ["", "![R heatmap](heatmap.png)", "", "![per-site curves](site_curves.png)", "",
              "Files: `config.yaml` (resolved config; rerun it with "
              "`python -m simulations.run --config-path <this dir> --config-name config hydra.run.dir=<new dir>`), "
              "`metrics.jsonl` (every site reply), `matrix.json`, `summary.json`, `checkpoints/`.", ""]
    text = "\n".join(lines)
    (run_dir / "report.md").write_text(text)
    (run_dir / "report.html").write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Run report</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em}</style></head><body>\n"
        + markdown.markdown(text, extensions=["tables"]) + "\n</body></html>\n")
