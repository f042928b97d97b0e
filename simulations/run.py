"""``python -m simulations.run scenario=sequential_sites [task=...] [strategy=...] [size=smoke]``

Validates the whole config before anything starts, refuses to write into a directory that
already holds a run, runs the federation, and writes the report.
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hydra
from flwr.clientapp import ClientApp
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from server.capability_checks import check_strategy_objective, check_task_capabilities, check_train_metrics
from server.checkpoint import RunState
from server.results import RunResult
from server.scenario import Scenario
from server.server_app import RunPlan, Timeline, build_server_app
from server.unlearning import build_unlearning
from sites import seeding
from sites.client import build_client_app
from sites.config import parse
from sites.device import resolve_compute
from sites.errors import ConfigError, MedsitesError
from sites.faults import FaultConfig
from sites.tasks import build_task
from strategies import build_strategy, check_strategy_fits, train_mods
from strategies.capabilities import bind_task

from .config import RunConfig
from .console import exit_with, print_dataset, print_summary, timeline_progress
from .dataset import read_dataset, use_manifest
from .engine import run_federation
from .replay_report import write_replay_figures
from .report import write_report
from .tracking import RunTracking, track
from .withdrawal_report import write_sweep_table

# Files whose presence marks a directory as holding a run.
_RUN_FILES = ("config.yaml", "metrics.jsonl", "matrix.json", "summary.json", "report.md")

# hydra.run.dir: a resumed run's own directory, else a fresh one.
OmegaConf.register_new_resolver("resume_or", lambda resume, fresh: resume or fresh, replace=True)


@dataclass
class Prepared:
    """A validated run, before anything is written or started.

    Parameters
    ----------
    plan : RunPlan
        What the server runs.
    config : RunConfig
        The typed config.
    resolved : dict
        The config as Hydra resolved it (written to the run directory as ``config.yaml``).
    """

    plan: RunPlan
    config: RunConfig
    resolved: dict[str, Any]


def prepare(cfg: DictConfig, run_dir: Path) -> Prepared:
    """Validate every part of the config; nothing has been written or started yet."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    config = parse(RunConfig, resolved)
    if config.data_root is not None and config.task.get("manifest") is None:
        raise ConfigError("data_root", "is read where a simulation starts (python -m simulations.run), which hands "
                                       "its sites the manifest it builds; a deployment's sites read their own data "
                                       "(task.manifest)")
    scenario = Scenario.from_config(config.scenario)
    task = build_task(config.task)
    task.compute = resolve_compute(config.device, config.precision)
    strategy = build_strategy(config.strategy)
    dp, replay, faults = config.privacy, config.replay, config.faults
    unlearning = build_unlearning(config.unlearning)
    check_faults(faults, scenario)
    check_strategy_objective(strategy, replay, task, dp is not None, bool(scenario.withdrawals))
    check_train_metrics(strategy, task, dp)
    replayed = [stage for withdrawal in scenario.withdrawals for stage in scenario.replay_stages(withdrawal)]
    check_strategy_fits(strategy, min(len(stage.sites) for stage in [*scenario.stages, *replayed]))
    check_task_capabilities(task, scenario)
    if config.evaluate_split == "validation" and not task.validation_split:
        raise ConfigError("evaluate_split", f"{type(task).__name__} has no validation split; use evaluate_split=test")
    task.check_sites(scenario.sites)
    config.deployment.check_sites(scenario.site_ids)
    bind_task(strategy, task)
    plan = RunPlan(scenario, task, strategy, config.seed, run_dir, config.backend.round_timeout,
                   dp_delta=None if dp is None else dp.delta,
                   dp_train_metrics=None if dp is None else dp.train_metrics, unlearning=unlearning, replay=replay,
                   faults=faults, site_nodes=config.deployment.site_nodes, evaluate_split=config.evaluate_split)
    return Prepared(plan, config, resolved)


def check_faults(faults: FaultConfig, scenario: Scenario) -> None:
    """Refuse simulated failures (crashes, invalid replies) with a withdrawal, whose unlearning
    and retraining rounds need every site's reply, and bad replies of a site the scenario lacks."""
    if faults.failing and scenario.withdrawals:
        raise ConfigError(f"faults.{faults.failing[0]}", "site withdrawals cannot run with simulated failures: "
                          "unlearning and retraining rounds need every site's valid reply")
    unknown = [site for site in faults.bad_reply_sites or [] if site not in scenario.site_ids]
    if unknown:
        raise ConfigError("faults.bad_reply_sites", f"unknown site {unknown[0]!r} (the scenario's sites: "
                          f"{', '.join(scenario.site_ids)})")


def add_replay_fidelity(run_dir: Path, plan: RunPlan, result: RunResult) -> None:
    """Measure the generator's fidelity against the real data (which the simulator can
    regenerate), draw the sample grid, and add both to ``replay.json``."""
    # diffusers takes seconds to import: only runs with a generator pay for it.
    from .replay_fidelity import measure_fidelity

    generator = plan.replay.generator
    checkpoints = run_dir / "checkpoints"
    fidelity = measure_fidelity(checkpoints / "replay.pt", plan.task, plan.scenario, plan.seed, plan.replay.per_site,
                                generator.sampling_steps, generator.guidance, samples=checkpoints / "replay_samples.pt")
    result.replay = replace(result.replay, fidelity=fidelity)
    write_replay_figures(run_dir, plan.task)
    result.write(run_dir)


def claim_run_dir(run_dir: Path) -> None:
    """Refuse a directory that already holds a run: an earlier run is never overwritten."""
    taken = [name for name in _RUN_FILES if (run_dir / name).exists()]
    if taken:
        raise MedsitesError(f"{run_dir} already holds a run ({', '.join(taken)}); "
                            "choose a new hydra.run.dir")
    run_dir.mkdir(parents=True, exist_ok=True)


def open_run(cfg: DictConfig, run_dir: Path) -> Prepared:
    """Validate the config, claim ``run_dir``, write the resolved config there and seed this
    process; an experiment's dataset folder (``data_root``) first becomes the task's manifest,
    cached in ``run_dir`` and shown as a table."""
    dataset = read_dataset(cfg)
    if dataset is not None:
        claim_run_dir(run_dir)
        print_dataset(dataset, str(use_manifest(cfg, dataset, run_dir)))
    prepared = prepare(cfg, run_dir)
    claim_run_dir(run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(prepared.resolved))
    seeding.seed_everything(prepared.plan.seed)
    return prepared


def reopen_run(run_dir: Path) -> tuple[Prepared, RunState]:
    """The killed run in ``run_dir``: its saved config, validated again, and its latest state."""
    extra = [o for o in HydraConfig.get().overrides.task if not o.startswith(("resume=", "hydra."))]
    if extra:
        raise ConfigError("resume", f"a resumed run keeps its saved config; drop {' '.join(extra)}")
    if not (run_dir / "config.yaml").exists():
        raise MedsitesError(f"{run_dir} holds no run to resume (no config.yaml)")
    if (run_dir / "report.md").exists():
        raise MedsitesError(f"{run_dir} holds a finished run (report.md): nothing to resume")
    return prepare(OmegaConf.load(run_dir / "config.yaml"), run_dir), RunState.load(run_dir / "checkpoints")


def site_app(prepared: Prepared) -> ClientApp:
    """The ClientApp every site of the run runs."""
    plan, config = prepared.plan, prepared.config
    return build_client_app(plan.task, list(plan.scenario.sites), plan.seed,
                            num_threads=max(1, int(config.backend.client_cpus)), dp=config.privacy,
                            planned_steps=plan.planned_dp_steps, faults=plan.faults,
                            train_mods=train_mods(plan.strategy))


def close_run(timeline: Timeline, tracking: RunTracking | None = None) -> RunResult:
    """Check that the timeline finished, then measure replay fidelity, write the report and
    hand the summary and figures to ``tracking``."""
    plan, result = timeline.plan, timeline.result
    if result is None:
        raise MedsitesError("the federation stopped before the timeline finished")
    if plan.replay.source == "smd":
        add_replay_fidelity(plan.run_dir, plan, result)
    write_report(plan.run_dir, result)
    if tracking is not None:
        tracking.log_results(result, plan.run_dir)
    return result


def execute(cfg: DictConfig) -> Path:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("resume") is not None:
        run_dir = Path(cfg.resume)
        prepared, resume = reopen_run(run_dir)
    else:
        if OmegaConf.select(cfg, "deployment.site_nodes") is not None:
            raise ConfigError("deployment.site_nodes", "binds sites to the node ids a deployment's SuperLink "
                              "registered (flwr run); the simulation numbers its own nodes: leave it unset here")
        prepared, resume = open_run(cfg, run_dir), None
    plan, config = prepared.plan, prepared.config
    done = 0 if resume is None else resume.log["round"] + resume.position.stage - 1
    with track(config.tracking, run_dir, plan.task.primary_metric) as tracking:
        with timeline_progress(plan.scenario, len(plan.task.phases), done) as progress:
            timeline = Timeline(plan, on_round=progress.on_round, on_stage=progress.on_stage, resume=resume,
                                on_event=None if tracking is None else tracking.on_event)
            run_federation(build_server_app(timeline), site_app(prepared), len(plan.scenario.sites),
                           config.backend.client_cpus, verbose=config.verbose, address=config.backend.address,
                           client_gpus=config.backend.client_gpus, device=plan.task.compute.device)
        result = close_run(timeline, tracking)
    if result.withdrawals and HydraConfig.get().mode == RunMode.MULTIRUN:
        write_sweep_table(run_dir.parent)
    print_summary(result, str(run_dir))
    return run_dir


@hydra.main(version_base=None, config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        execute(cfg)
    except MedsitesError as error:
        exit_with(error)


if __name__ == "__main__":
    main()
