"""One poisoned site: FedAvg against Flower's robust strategies.

On ``scenario=sites_in_threes`` (A, B, C train in stage 1, D, E, F in stage 2, G held out),
site B sends every update it makes times ``faults.bad_reply_scale`` (``faults.bad_reply=scale``:
a valid reply, which the server's check lets through) under FedAvg, FedMedian, FedTrimmedAvg
(``beta=0.4``: one reply cut at each end of three) and Krum, and each strategy runs without
poisoning too. FedAvg also runs with B's replies NaN (``faults.bad_reply=nan``), which the check
leaves out. Columns, mean ± std over seeds: memorizability after stage 1 (mean R over A, B, C,
the poisoned stage), after stage 2 (over A to F), the held-out site G after stage 2, and the
median wall time of a run.

    python -m benchmarks.poisoned_site                                   # seeds 0 1 2
    python -m benchmarks.poisoned_site size=smoke --seeds 0
"""

from collections.abc import Iterator

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate
from benchmarks.results import Recorder, variant_of
from simulations.formatting import fmt, mean_std, table_header, table_row

#: Strategy -> the overrides that choose it (docs/strategies.md).
STRATEGIES = {
    "FedAvg": [],
    "FedMedian": [],
    "FedTrimmedAvg": ["+strategy.beta=0.4"],
    "Krum": [],
}
#: Condition -> its fault overrides; the strategies that run it (``None``: all).
CONDITIONS = {
    "none": ([], None),
    "B scaled": (["faults.bad_reply=scale", "faults.bad_reply_prob=1", "faults.bad_reply_sites=[B]"], None),
    "B NaN (left out)": (["faults.bad_reply=nan", "faults.bad_reply_prob=1", "faults.bad_reply_sites=[B]"], ["FedAvg"]),
}


#: The table's columns of R.
COLUMNS = ("memorizability after stage 1 (A-C)", "memorizability after stage 2 (A-F)", "held-out G after stage 2")


def figures(summary: dict) -> dict[str, float]:
    """The :data:`COLUMNS` of one run's ``summary.json``."""
    return dict(zip(COLUMNS, (summary["per_stage"][0]["memorizability"], summary["memorizability"],
                              summary["generalizability"])))


def cases(seed: int, extra: list[str]) -> Iterator[tuple[str, str, list[str]]]:
    """``(strategy, condition, overrides)`` of every run of one seed, with the ``extra`` overrides."""
    for condition, (faults, only) in CONDITIONS.items():
        for strategy, options in STRATEGIES.items():
            if only is None or strategy in only:
                yield strategy, condition, ["scenario=sites_in_threes",
                                            f"strategy._target_=flwr.serverapp.strategy.{strategy}",
                                            *options, *faults, f"seed={seed}", *extra]


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    args = parser.parse_args()
    recorder = Recorder.from_args(args, "robustness", "benchmarks.poisoned_site")
    runs: dict[tuple[str, str], list[dict]] = {}
    for seed in args.seeds:
        for strategy, condition, overrides in cases(seed, args.overrides):
            seconds, read = simulate(overrides, outputs=("summary.json",))
            runs.setdefault((strategy, condition), []).append({"seconds": seconds, **figures(read["summary.json"])})
            recorder.record(compose_config(overrides), {**figures(read["summary.json"]), "wall_s": seconds}, seed=seed,
                            method=strategy, variant=variant_of([*CONDITIONS[condition][0], *args.overrides]))

    print(f"overrides: {' '.join(args.overrides) or '(none)'}; seeds: {args.seeds}; metric: mean R of the sites "
          "named, mean ± std over seeds; wall seconds of fresh processes on this machine")
    print()
    print(*table_header(["strategy", "poisoning", *COLUMNS, "wall, median (s)"]), sep="\n")
    for (strategy, condition), results in sorted(runs.items(), key=lambda item: list(STRATEGIES).index(item[0][0])):
        print(table_row([strategy, condition, *(mean_std([r[c] for r in results]) for c in COLUMNS),
                         fmt(median([r["seconds"] for r in results]), 1)]))


if __name__ == "__main__":
    main()
