"""Grading figures: every model, centralized and sequential, over seeds; parameters and step cost.

- ``sequential``: the default scenario (``scenario=sequential_sites``: A, B, C, D one per stage,
  E held out), one fresh run per model and seed. Reported after the last stage: the mean over
  the trained sites A-D of AUC, accuracy, sensitivity and specificity, and the held-out site E's
  AUC. ``--sequential-by platform`` runs it with the platform (``python -m simulations.run``);
  ``process`` (default) in this process, as ``centralized`` is run.
- ``centralized``: one site holding all the data (``scenario=centralized``, four sites' worth of
  cases: 2000 training, 200 validation, 400 test) trained for the same number of local steps as
  the whole sequential run (20 rounds), in this process.
- ``steps``: parameters and median CPU seconds of one training step (a batch of
  ``task.batch_size`` cases) of each model, in this process.

"In this process" runs the same code the platform's sites run (``Task.train`` with the same
seeds, the same phases and statistics) stage by stage, one site per stage, where FedAvg's
average is the site's own model; the data is generated once per seed for all models.

For ``cmg`` the primary modality is logged per run and stage with the validation figures it was
chosen on, and its stability is measured, not assumed: in this process, after every warm-up
round, the primary the validation counts would give then (the last round's is the choice).

    python -m benchmarks.grading                               # all parts, all models, seeds 0 1 2
    python -m benchmarks.grading --parts centralized sequential --models cmg-logit cmg-feature --
    python -m benchmarks.grading --parts steps centralized --seeds 0 -- size=smoke
"""

import time
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate
from benchmarks.results import Recorder, variant_of
from server.scenario import Scenario, ScenarioConfig
from server.server_app import initial_arrays
from simulations.formatting import MISSING, fmt, mean_std, table_header, table_row
from sites import seeding
from sites.config import parse
from sites.protocol import StatisticsQuery, TrainConfig
from sites.tasks import SiteData, build_task

MODELS = {
    "single-t1": ["task.model=single", "task.modality=t1"],
    "single-t1ce": ["task.model=single", "task.modality=t1ce"],
    "single-t2": ["task.model=single", "task.modality=t2"],
    "single-flair": ["task.model=single", "task.modality=flair"],
    "early-fusion": ["task.model=early_fusion"],
    "late-fusion": ["task.model=late_fusion"],
    "cmg-logit": ["task.model=cmg", "task.guidance=logit", "task.attention=false"],
    "cmg-logit-attention": ["task.model=cmg", "task.guidance=logit", "task.attention=true"],
    "cmg-feature": ["task.model=cmg", "task.guidance=feature", "task.attention=false"],
    "cmg-feature-attention": ["task.model=cmg", "task.guidance=feature", "task.attention=true"],
}
METRICS = ("auc", "accuracy", "sensitivity", "specificity")
SETTINGS = {
    "centralized": ["scenario=centralized", "scenario.rounds_per_stage=20", "task.n_train=2000",
                    "task.n_validation=200", "task.n_test=400"],
    "sequential": ["scenario=sequential_sites"],
}


@dataclass
class Run:
    """What one run gives the tables.

    Parameters
    ----------
    final : dict
        Site id -> its test metrics after the last stage.
    trained, held_out : list of str
        Ids of the sites that trained and of those held out.
    choices : list of list of str
        ``cmg``: per stage, the primary after each warm-up round (the last is the choice).
    figures : dict
        ``cmg``: the validation figures of the last stage's choice.
    """

    final: dict[str, dict[str, float]]
    trained: list[str]
    held_out: list[str]
    choices: list[list[str]]
    figures: dict[str, float]


def in_process_run(overrides: list[str], data_cache: dict) -> Run:
    """One run of a scenario with one site per stage, in this process.

    Parameters
    ----------
    overrides : list of str
        Hydra overrides of the run (after ``task=grading``).
    data_cache : dict
        Every site's data of the last (seed, scenario) asked for, reused while they repeat.

    Returns
    -------
    Run
        With, per stage, the primary the validation counts give after every warm-up round.
    """
    config = compose_config(["task=grading", *overrides])
    seed, task = config["seed"], build_task(config["task"])
    torch.set_num_threads(int(config["backend"]["client_cpus"]))
    scenario = Scenario.from_config(parse(ScenarioConfig, config["scenario"], "scenario"))
    key = (seed, scenario.name, task.n_train, task.n_validation, task.n_test)
    if key not in data_cache:
        data_cache.clear()
        data_cache[key] = {site.id: task.load_site(site, seed) for site in scenario.sites}
    data: dict[str, SiteData] = data_cache[key]
    sites = {site.id: site for site in scenario.sites}
    model = task.build_model()
    model.load_state_dict(initial_arrays(task, seed).to_torch_state_dict())
    phases, choices, figures = task.phases, [], {}
    for stage in scenario.stages:
        (site,) = (sites[site_id] for site_id in stage.sites)  # one site: FedAvg keeps its model
        site_data, calls, stage_choices = data[site.id], 0, []
        for phase, following in zip(phases, [*phases[1:], None]):
            train_config = TrainConfig(stage.index, phase.name)
            if phase.statistics:
                counts = task.site_statistics(model, site_data, StatisticsQuery(stage.index, phase.name))
                train_config = TrainConfig(stage.index, phase.name, entries=task.phase_config(phase.name, counts))
                figures = task.pool_metrics({}, {phase.name: counts})
            for _ in range(stage.rounds):
                calls += 1
                task.train(model, site_data.train,
                           seeding.stream_seed(seed, site.index, seeding.Stream.LOCAL_TRAINING, calls), train_config)
                if following is not None and following.statistics:  # the choice were it made now
                    counts = task.site_statistics(model, site_data, StatisticsQuery(stage.index, following.name))
                    stage_choices.append(task.phase_config(following.name, counts)["primary-modality"])
        if stage_choices:
            choices.append(stage_choices)
    final = {site_id: task.evaluate(model, data[site_id].test) for site_id in sites}
    trained = [site.id for site in scenario.sites if site.arrival is not None]
    return Run(final, trained, list(scenario.held_out), choices, figures)


def platform_run(overrides: list[str]) -> Run:
    """One run with the platform, with only the choice itself per stage (the platform asks for
    the validation counts once, after the warm-up)."""
    task = build_task(compose_config(["task=grading", *overrides])["task"])
    _, matrix = simulate(["task=grading", *overrides])
    phase = task.phases[-1].name
    choices = [[task.phase_config(phase, stage[phase])["primary-modality"]]
               for stage in matrix["statistics"] if phase in stage]
    trained = [site for site, arrival in zip(matrix["sites"], matrix["arrival"]) if arrival is not None]
    return Run(matrix["site_metrics"][-1], trained, matrix["held_out"], choices, matrix["pooled"][-1])


def describe_choices(choices: list[list[str]], figures: dict[str, float]) -> str:
    """Per stage, the primary after each warm-up round (the last is the choice) and how often it
    changed, and the validation AUC and cross entropy of every branch at the last choice."""
    stages = "; ".join(f"stage {t}: {' '.join(c)} ({sum(a != b for a, b in zip(c, c[1:]))} changes)"
                       for t, c in enumerate(choices, start=1))
    aucs = " ".join(f"{k.removeprefix('validation_auc_')} {v:.3f}" for k, v in figures.items() if "_auc_" in k)
    nlls = " ".join(f"{k.removeprefix('validation_nll_')} {v:.3f}" for k, v in figures.items() if "_nll_" in k)
    return f"primary after each warm-up round, {stages}; at the last choice validation AUC {aucs}, cross entropy {nlls}"


def step_costs(models: dict[str, list[str]], overrides: list[str], recorder: Recorder) -> None:
    print(*table_header(("model", "parameters", "CPU s per training step, median of 20")), sep="\n")
    for name, variant in models.items():
        config = compose_config(["task=grading", *variant, *overrides])
        task = build_task(config["task"])
        torch.set_num_threads(int(config["backend"]["client_cpus"]))
        torch.manual_seed(0)
        model = task.build_model()
        shape = (task.batch_size, 4, task.depth, task.image_size, task.image_size)
        batch = [torch.randn(shape), torch.arange(task.batch_size) % 2]
        optimizer = torch.optim.Adam(model.parameters(), lr=task.lr)
        seconds = []
        for _ in range(23):
            start = time.process_time()
            optimizer.zero_grad()
            task.batch_loss(model, batch, TrainConfig(phase=task.phases[-1].name,
                                                      entries={"primary-modality": "t1ce"})).backward()
            optimizer.step()
            seconds.append(time.process_time() - start)
        parameters = sum(p.numel() for p in model.parameters())
        print(table_row((name, f"{parameters:,}", fmt(median(seconds[3:])))), flush=True)
        recorder.record(config, {"parameters": parameters, "cpu_s_per_step_median": median(seconds[3:])}, seed=0,
                        method=name, variant=variant_of(overrides))


def table(setting: str, rows: dict[str, list[dict]], columns: tuple[str, ...]) -> None:
    print()
    print(f"{setting}: mean ± std over seeds")
    print()
    print(*table_header(["model", *columns, "primary modality chosen (last stage)"]), sep="\n")
    for name, results in rows.items():
        cells = [mean_std([r.get(c) for r in results]) for c in columns]
        chosen = [r["primary"] for r in results if r.get("primary")]
        primary = ", ".join(f"{m} x{chosen.count(m)}" for m in sorted(set(chosen))) or MISSING
        print(table_row([name, *cells, primary]), flush=True)


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--parts", nargs="+", default=["steps", "centralized", "sequential"],
                        choices=["steps", "centralized", "sequential"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sequential-by", default="process", choices=["process", "platform"])
    args = parser.parse_args()
    models = {name: MODELS[name] for name in args.models}
    recorder = Recorder.from_args(args, "grading", "benchmarks.grading")
    print(f"overrides: {' '.join(args.overrides) or '(none)'}; seeds: {args.seeds}; models: {' '.join(models)}; "
          f"sequential by: {args.sequential_by}")
    print()
    if "steps" in args.parts:
        step_costs(models, args.overrides, recorder)

    for setting in ("centralized", "sequential"):
        if setting not in args.parts:
            continue
        rows, cache = {name: [] for name in models}, {}
        for seed in args.seeds:
            for name, variant in models.items():
                overrides = [*SETTINGS[setting], *variant, f"seed={seed}", *args.overrides]
                start = time.perf_counter()
                if setting == "sequential" and args.sequential_by == "platform":
                    run = platform_run(overrides)
                else:
                    run = in_process_run(overrides, cache)
                seconds = time.perf_counter() - start
                row = {c: np.mean([run.final[s][c] for s in run.trained]) for c in METRICS}
                row["held-out auc"] = np.mean([run.final[s]["auc"] for s in run.held_out]) if run.held_out else None
                row["primary"] = run.choices[-1][-1] if run.choices else None
                rows[name].append(row)
                recorder.record(compose_config(["task=grading", *overrides]),
                                {**{c: row[c] for c in METRICS}, "held_out_auc": row["held-out auc"],
                                 "primary": row["primary"], "wall_s": seconds},
                                seed=seed, method=name, variant=variant_of(args.overrides), split_or_site="test")
                print(f"  {setting} seed {seed} {name}: "
                      + ", ".join(f"{c} {fmt(row[c])}" for c in (*METRICS, "held-out auc"))
                      + f"; {seconds:.0f} s"
                      + (f"; {describe_choices(run.choices, run.figures)}" if run.choices else ""),
                      flush=True)
        if setting == "centralized":
            table("centralized (one site, all data, test split of 400 cases)", rows, METRICS)
        else:
            table("sequential (default scenario, after the last stage; metrics: mean over trained sites A-D)",
                  rows, (*METRICS, "held-out auc"))


if __name__ == "__main__":
    main()
