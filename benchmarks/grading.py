"""Grading figures: every model, centralized and sequential, over seeds; parameters and step cost.

- ``sequential``: the default scenario (``scenario=sequential_sites``: A, B, C, D one per stage,
  E held out) run by the platform (``python -m simulations.run``), one fresh run per model and
  seed. Reported after the last stage: the mean over the trained sites A-D of AUC, accuracy,
  sensitivity and specificity, and the held-out site E's AUC.
- ``centralized``: one site holding all the data (``scenario=centralized``, four sites' worth of
  cases: 2000 training, 200 validation, 400 test) trained for the same number of local steps as
  the whole sequential run (20 rounds). Run in this process with the same code the platform's
  site runs (``Task.train`` with the same seeds, the same phases and statistics; with one site
  FedAvg's average is the site's own model), so that the data is generated once per seed for all
  models.
- ``steps``: parameters and median CPU seconds of one training step (a batch of
  ``task.batch_size`` cases) of each model, in this process.

    python -m benchmarks.grading                               # all parts, seeds 0 1 2
    python -m benchmarks.grading size=smoke --parts steps centralized --seeds 0
"""

import time

import numpy as np
import torch

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate
from server.scenario import Scenario, ScenarioConfig
from server.server_app import initial_arrays
from simulations.formatting import MISSING, fmt, mean_std, table_header, table_row
from sites import seeding
from sites.config import parse
from sites.data.brain import MODALITIES
from sites.protocol import StatisticsQuery, TrainConfig
from sites.tasks import build_task

MODELS = {
    "single t1": ["task.model=single", "task.modality=t1"],
    "single t1ce": ["task.model=single", "task.modality=t1ce"],
    "single t2": ["task.model=single", "task.modality=t2"],
    "single flair": ["task.model=single", "task.modality=flair"],
    "early fusion": ["task.model=early_fusion"],
    "late fusion": ["task.model=late_fusion"],
    "cmg, no attention": ["task.model=cmg", "task.attention=false"],
    "cmg + dual attention": ["task.model=cmg", "task.attention=true"],
}
METRICS = ("auc", "accuracy", "sensitivity", "specificity")
CENTRALIZED = ["scenario=centralized", "scenario.rounds_per_stage=20", "task.n_train=2000",
               "task.n_validation=200", "task.n_test=400"]


def centralized_run(overrides: list[str], data_cache: dict) -> tuple[dict[str, float], str | None]:
    """One centralized run in this process: the test metrics and (cmg) the last primary modality."""
    config = compose_config(["task=grading", *CENTRALIZED, *overrides])
    seed, task = config["seed"], build_task(config["task"])
    torch.set_num_threads(int(config["backend"]["client_cpus"]))
    site = Scenario.from_config(parse(ScenarioConfig, config["scenario"], "scenario")).sites[0]
    if seed not in data_cache:
        data_cache.clear()
        data_cache[seed] = task.load_site(site, seed)
    data = data_cache[seed]
    model = task.build_model()
    model.load_state_dict(initial_arrays(task, seed).to_torch_state_dict())
    calls, primary = 0, None
    for phase in task.phases:
        train_config = TrainConfig(1, phase.name)
        if phase.statistics:
            counts = task.site_statistics(model, data, StatisticsQuery(1, phase.name))
            train_config = TrainConfig(1, phase.name, entries=task.phase_config(phase.name, counts))
            primary = train_config.entries.get("primary-modality")
        for _ in range(config["scenario"]["rounds_per_stage"]):
            calls += 1
            task.train(model, data.train, seeding.stream_seed(seed, site.index, seeding.Stream.LOCAL_TRAINING, calls),
                       train_config)
    return task.evaluate(model, data.test), primary


def step_costs(overrides: list[str]) -> None:
    print(*table_header(("model", "parameters", "CPU s per training step, median of 20")), sep="\n")
    for name, variant in MODELS.items():
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
            task.batch_loss(model, batch, TrainConfig(phase="guided", entries={"primary-modality": "t1ce"})).backward()
            optimizer.step()
            seconds.append(time.process_time() - start)
        print(table_row((name, f"{sum(p.numel() for p in model.parameters()):,}", fmt(median(seconds[3:])))),
              flush=True)


def table(setting: str, rows: dict[str, list[dict]], columns: tuple[str, ...]) -> None:
    print()
    print(f"{setting}: mean ± std over seeds")
    print()
    print(*table_header(["model", *columns, "primary modality chosen"]), sep="\n")
    for name, results in rows.items():
        cells = [mean_std([r.get(c) for r in results]) for c in columns]
        chosen = [r["primary"] for r in results if r.get("primary")]
        primary = ", ".join(f"{m} x{chosen.count(m)}" for m in sorted(set(chosen))) or MISSING
        print(table_row([name, *cells, primary]), flush=True)


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--parts", nargs="+", default=["steps", "centralized", "sequential"],
                        choices=["steps", "centralized", "sequential"])
    args = parser.parse_args()
    print(f"overrides: {' '.join(args.overrides) or '(none)'}; seeds: {args.seeds}")
    print()
    if "steps" in args.parts:
        step_costs(args.overrides)

    if "centralized" in args.parts:
        rows, cache = {name: [] for name in MODELS}, {}
        for seed in args.seeds:
            for name, variant in MODELS.items():
                metrics, primary = centralized_run([*variant, f"seed={seed}", *args.overrides], cache)
                rows[name].append({**metrics, "primary": primary})
        table("centralized (one site, all data, test split of 400 cases)", rows, METRICS)

    if "sequential" in args.parts:
        rows = {name: [] for name in MODELS}
        for seed in args.seeds:
            for name, variant in MODELS.items():
                seconds, matrix = simulate(["task=grading", *variant, f"seed={seed}", *args.overrides])
                final = matrix["site_metrics"][-1]
                trained = [site for site, arrival in zip(matrix["sites"], matrix["arrival"]) if arrival is not None]
                held_out = matrix["held_out"]
                row = {c: np.mean([final[s][c] for s in trained]) for c in METRICS}
                row["held-out auc"] = np.mean([final[s]["auc"] for s in held_out]) if held_out else None
                row["wall s"] = seconds
                statistics = matrix["statistics"][-1].get("guided")
                if statistics:
                    row["primary"] = min(MODALITIES, key=lambda m: statistics[f"validation-nll-{m}"])
                rows[name].append(row)
                print(f"  seed {seed} {name}: auc {row['auc']:.3f}, {seconds:.0f} s", flush=True)
        table("sequential (default scenario, after the last stage; metrics: mean over trained sites A-D)",
              rows, (*METRICS, "held-out auc", "wall s"))


if __name__ == "__main__":
    main()
