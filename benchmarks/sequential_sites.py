"""The default scenario end to end: wall time, platform overhead, and R for fedavg and joint.

For each seed and strategy, the platform run (``python -m simulations.run``) and a bare PyTorch
loop doing the same work run as fresh processes, one after the other. The bare loop uses no
Flower and no Ray: the same sites and data, the same initial model, the same local training
(``Task.train`` with the same seeds, so the same batches), FedAvg's weighted average in site
order, the strategy's per-round evaluation of the present sites, and every site's evaluation
after each stage. Its R must equal the platform's; the table shows the largest difference.

    python -m benchmarks.sequential_sites                    # seeds 0 1 2, fedavg and joint
    python -m benchmarks.sequential_sites size=smoke --seeds 0 --strategies fedavg
"""

import json
import sys

import numpy as np
import torch

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate, timed
from benchmarks.results import Recorder, variant_of
from server.continual_metrics import summarize
from server.scenario import Scenario, ScenarioConfig
from server.server_app import initial_arrays
from simulations.formatting import fmt, mean_std, table_header, table_row
from sites import seeding
from sites.config import parse
from sites.device import resolve_compute
from sites.protocol import MetricKey, TrainConfig
from sites.tasks import build_task

SUMMARY_KEYS = ("memorizability", "generalizability", "bwt", "forgetting")


def bare_loop(overrides: list[str]) -> np.ndarray:
    """The run's work as a plain loop; returns R[t, j]."""
    config = compose_config(overrides)
    seed = config["seed"]
    torch.set_num_threads(int(config["backend"]["client_cpus"]))
    scenario = Scenario.from_config(parse(ScenarioConfig, config["scenario"], "scenario"))
    task = build_task(config["task"])
    task.compute = resolve_compute(config["device"], config["precision"])
    data = {site.id: task.load_site(site, seed) for site in scenario.sites}
    index = {site.id: site.index for site in scenario.sites}
    state = initial_arrays(task, seed).to_torch_state_dict()
    calls = dict.fromkeys(index, 0)
    rows = []

    def model_with(weights):
        model = task.build_model()
        model.load_state_dict(weights)
        return model

    for stage in scenario.stages:
        for _ in range(stage.rounds):
            states, weights = [], []
            for site in stage.sites:
                calls[site] += 1
                model = model_with(state)
                metrics = task.train(model, data[site].train,
                                     seed=seeding.stream_seed(seed, index[site], seeding.Stream.LOCAL_TRAINING,
                                                              calls[site]),
                                     config=TrainConfig())
                states.append(model.state_dict())
                weights.append(metrics[MetricKey.NUM_EXAMPLES])
            total = sum(weights)
            state = {key: sum(s[key] * (w / total) for s, w in zip(states, weights)) for key in state}
            for site in stage.sites:
                task.evaluate_on_device(model_with(state), data[site].test)
        model = model_with(state)
        rows.append([task.evaluate_on_device(model, data[s.id].test)[task.primary_metric] for s in scenario.sites])
    return np.array(rows)


def record(recorder: Recorder, config: dict, run: dict, seed: int, strategy: str, extra: list[str]) -> None:
    """One run's figures to the results file: wall times, the R gap, the summary and R itself
    (``split_or_site`` ``stage <t> <site>``)."""
    columns = {"seed": seed, "method": strategy, "variant": variant_of(extra)}
    summary = summarize(np.array(run["matrix"]["R"]), run["matrix"]["arrival"])
    recorder.record(config, {"platform_s": run["platform_s"], "bare_s": run["bare_s"], "r_gap": run["gap"],
                             **{key: summary[key] for key in SUMMARY_KEYS}}, **columns)
    for t, row in enumerate(run["matrix"]["R"], start=1):
        for site, value in zip(run["matrix"]["sites"], row):
            recorder.record(config, {"R": value}, split_or_site=f"stage {t} {site}", **columns)


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--strategies", nargs="+", default=["fedavg", "joint"])
    parser.add_argument("--bare", action="store_true", help="internal: run the bare loop once and print R")
    args = parser.parse_args()
    if args.bare:
        print(json.dumps(bare_loop(args.overrides).tolist()))
        return

    recorder = Recorder.from_args(args, "platform", "benchmarks.sequential_sites")
    runs = {strategy: [] for strategy in args.strategies}
    for seed in args.seeds:
        for strategy in args.strategies:
            overrides = [f"strategy={strategy}", f"seed={seed}", *args.overrides]
            platform_s, matrix = simulate(overrides)
            bare_s, stdout = timed([sys.executable, "-m", "benchmarks.sequential_sites", "--bare", *overrides])
            bare_R = np.array(json.loads(stdout.strip().splitlines()[-1]))
            runs[strategy].append({"platform_s": platform_s, "bare_s": bare_s, "matrix": matrix,
                                   "gap": float(np.abs(np.array(matrix["R"]) - bare_R).max())})
            record(recorder, compose_config(overrides), runs[strategy][-1], seed, strategy, args.overrides)

    print(f"overrides: {' '.join(args.overrides) or '(default scenario)'}; seeds: {args.seeds}; "
          "wall seconds of fresh processes on this machine")
    print()
    print(*table_header(("strategy", "platform, median (s)", "bare PyTorch loop, median (s)",
                         "ratio platform / bare", "max abs R difference")), sep="\n")
    for strategy, results in runs.items():
        platform_s = median([r["platform_s"] for r in results])
        bare_s = median([r["bare_s"] for r in results])
        print(table_row((strategy, fmt(platform_s, 1), fmt(bare_s, 1), fmt(platform_s / bare_s, 2),
                         f"{max(r['gap'] for r in results):.1e}")))

    print()
    print(*table_header(["strategy", *SUMMARY_KEYS]), sep="\n")
    for strategy, results in runs.items():
        summaries = [summarize(np.array(r["matrix"]["R"]), r["matrix"]["arrival"]) for r in results]
        print(table_row([strategy, *(mean_std([s[k] for s in summaries]) for k in SUMMARY_KEYS)]))

    for strategy, results in runs.items():
        sites = results[0]["matrix"]["sites"]
        mean_R = np.mean([r["matrix"]["R"] for r in results], axis=0)
        print()
        print(f"R[t, j] for {strategy}, {results[0]['matrix']['metric']}, mean over seeds {args.seeds}")
        print()
        print(*table_header(["after stage", *sites]), sep="\n")
        for t, row in enumerate(mean_R, start=1):
            print(table_row([t, *(fmt(v) for v in row)]))


if __name__ == "__main__":
    main()
