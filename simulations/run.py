"""``python -m simulations.run scenario=sequential_sites [task=...] [strategy=...] [size=smoke]``

Validates the whole config before anything starts, refuses to write into a directory that
already holds a run, runs the federation, and writes the report.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from server.scenario import Scenario
from server.server_app import RunPlan, Timeline, build_server_app
from server.unlearning import UnlearningConfig
from sites import seeding
from sites.client_app import build_client_app
from sites.errors import ConfigError, MedsitesError
from sites.privacy import DPConfig
from sites.tasks import Task, build_task
from strategies import build_strategy, check_strategy_fits

from .console import console, print_summary, timeline_progress
from .engine import run_federation
from .report import write_report
from .withdrawal_report import write_sweep_table

# Files whose presence marks a directory as holding a run.
_RUN_FILES = ("config.yaml", "metrics.jsonl", "matrix.json", "summary.json", "report.md")


@dataclass
class Prepared:
    plan: RunPlan
    config: dict[str, Any]


def prepare(cfg: DictConfig, run_dir: Path) -> Prepared:
    """Validate every part of the config; nothing has been written or started yet."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in ("scenario", "task", "strategy", "privacy", "unlearning", "backend"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(key, "missing config group")
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer (got {seed!r})")
    scenario = Scenario.from_config(config["scenario"])
    task = build_task(config["task"])
    strategy = build_strategy(config["strategy"])
    dp = DPConfig.from_config(config["privacy"])
    unlearning = UnlearningConfig.from_config(config["unlearning"])
    if dp is not None and scenario.withdrawals:
        raise ConfigError("privacy", "site withdrawals cannot run with privacy=dp: unlearning and retraining "
                          "would spend privacy budget the accountants do not plan for")
    replayed = [stage for withdrawal in scenario.withdrawals for stage in scenario.replay_stages(withdrawal)]
    check_strategy_fits(strategy, min(len(stage.sites) for stage in [*scenario.stages, *replayed]))
    if scenario.withdrawals:
        check_task_can_unlearn(task, scenario.reason)
    plan = RunPlan(scenario, task, strategy, seed, run_dir, float(config["backend"]["round_timeout"]),
                   dp_delta=None if dp is None else dp.delta, unlearning=unlearning)
    return Prepared(plan, config)


def check_task_can_unlearn(task: Task, reason: str) -> None:
    """A withdrawal needs the task's logits and targets (unlearning objectives, membership
    inference) and, for ``incorrectness``, its label-corruption rule: refuse before training."""
    needed = ["logits", "targets"] + (["corrupt_labels"] if reason == "incorrectness" else [])
    missing = [name for name in needed if getattr(type(task), name) is getattr(Task, name)]
    if missing:
        raise ConfigError("task", f"{type(task).__name__} does not implement {', '.join(missing)}, which a site "
                          f"withdrawal (scenario.reason={reason}) needs")


def claim_run_dir(run_dir: Path) -> None:
    """Refuse a directory that already holds a run: an earlier run is never overwritten."""
    taken = [name for name in _RUN_FILES if (run_dir / name).exists()]
    if taken:
        raise MedsitesError(f"{run_dir} already holds a run ({', '.join(taken)}); "
                            "choose a new hydra.run.dir")
    run_dir.mkdir(parents=True, exist_ok=True)


def execute(cfg: DictConfig) -> Path:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    prepared = prepare(cfg, run_dir)
    claim_run_dir(run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(prepared.config))
    plan, config = prepared.plan, prepared.config
    seeding.seed_everything(plan.seed)
    client_app = build_client_app(config["task"], list(plan.scenario.sites), plan.seed,
                                  num_threads=max(1, int(config["backend"]["client_cpus"])),
                                  privacy=config["privacy"], planned_steps=plan.planned_steps)
    with timeline_progress(plan.scenario, len(plan.task.phases)) as progress:
        timeline = Timeline(plan, on_round=progress.on_round, on_stage=progress.on_stage)
        run_federation(build_server_app(timeline), client_app, len(plan.scenario.sites),
                       config["backend"]["client_cpus"], verbose=bool(config["verbose"]))
    if timeline.result is None:
        raise MedsitesError("the federation stopped before the timeline finished")
    write_report(run_dir, timeline.result)
    if timeline.result.withdrawals and HydraConfig.get().mode == RunMode.MULTIRUN:
        write_sweep_table(run_dir.parent)
    print_summary(timeline.result, str(run_dir))
    return run_dir


@hydra.main(version_base=None, config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        execute(cfg)
    except MedsitesError as error:
        console.print(f"[bold red]error:[/] {error}")
        sys.exit(2)


if __name__ == "__main__":
    main()
