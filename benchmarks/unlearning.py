"""Site-withdrawal figures (``scenario=site_withdrawal``: A and C train in stage 1, B and D in
stage 2, B withdraws after stage 2, E held out), both reasons, over seeds, for every method:

- the unlearned model's primary metric on the forget, retain and test subsets;
- s_F, s_R, s_T and UES against the oracle retrained in the same run (docs/unlearning.md);
- the cost: the method's wall time over the oracle's retraining time, measured in the same run;
- the loss attack's membership-inference AUC on the forget set before and after.

Each run trains the original timeline, retrains the oracle and applies one method. The ``none``
and ``retrain`` rows need no run of their own: their unlearned model *is* the model before
withdrawal (cost 0) or the oracle (cost 1), both of which every run records; they are read
from the first method's run of each seed (the e2e tests check that a run of either method
gives exactly these models).

    python -m benchmarks.unlearning                      # both reasons, seeds 0 1 2
    python -m benchmarks.unlearning size=smoke --seeds 0
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate
from benchmarks.results import Recorder, variant_of
from server.records import WithdrawalRecord
from server.ues import SCORES, SUBSETS, unlearning_efficiency
from simulations.formatting import fmt, mean_std, table_header, table_row

REASONS = ("privacy", "incorrectness")
METHODS = ("rewind", "ga", "graddiff", "kl", "npo", "federaser")
GOAL_UES, GOAL_COST = 0.8, 0.2


def _derived(record: WithdrawalRecord, method: str) -> WithdrawalRecord:
    """The ``none`` or ``retrain`` record of a run: its model before withdrawal, or its oracle."""
    performance = record.performance
    after = performance["before"] if method == "none" else performance["oracle"]
    mia = record.mia_forget_auc
    scores = None if record.scores is None else unlearning_efficiency(performance["before"], after,
                                                                      performance["oracle"])
    return replace(record, method=method, performance={**performance, "after": after}, scores=scores,
                   seconds=0.0 if method == "none" else record.retrain_seconds,
                   cost_ratio=0.0 if method == "none" else 1.0,
                   mia_forget_auc={**mia, "after": mia["before"] if method == "none" else mia["oracle"]})


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def table(reason: str, records: dict[str, list[WithdrawalRecord]]) -> None:
    print(f"\n### reason={reason}: unlearned model (mean ± std over seeds)\n")
    print(*table_header(["method", *SUBSETS, *SCORES, "cost ratio", "MIA AUC forget: after (before, oracle)"]),
          sep="\n")
    for method, runs in records.items():
        after = [r.performance["after"] for r in runs]
        scores = [r.scores or {} for r in runs]
        mia = [r.mia_forget_auc for r in runs]
        print(table_row([method, *(mean_std([a[s] for a in after]) for s in SUBSETS),
                         *(mean_std([s.get(k) for s in scores]) for k in SCORES),
                         mean_std([r.cost_ratio for r in runs]),
                         f"{mean_std([m['after'] for m in mia])} ({fmt(_mean([m['before'] for m in mia]))}, "
                         f"{fmt(_mean([m['oracle'] for m in mia]))})"]))
    first = next(iter(records.values()))
    before = [r.performance["before"] for r in first]
    oracle = [r.performance["oracle"] for r in first]
    print("\nbefore withdrawal: " + ", ".join(f"{s} {mean_std([b[s] for b in before])}" for s in SUBSETS))
    print("oracle:            " + ", ".join(f"{s} {mean_std([o[s] for o in oracle])}" for s in SUBSETS))
    print(f"oracle retraining: median {median([r.retrain_seconds for r in first]):.1f} s")
    reached = [m for m, runs in records.items() if m != "retrain"
               and (_mean([(r.scores or {}).get("UES") for r in runs]) or 0) >= GOAL_UES
               and _mean([r.cost_ratio for r in runs]) <= GOAL_COST]
    print(f"methods other than retrain with mean UES >= {GOAL_UES} at <= {GOAL_COST:.0%} of retrain's cost: "
          f"{', '.join(reached) or 'none'}")


def record_run(recorder: Recorder, config: dict, run: WithdrawalRecord, seed: int, reason: str,
               extra: list[str]) -> None:
    """One method's run to the results file: the unlearned model on each subset, the scores, the
    cost ratio and the MIA AUC on the forget set (after, before, oracle)."""
    scores = run.scores or {}
    mia = run.mia_forget_auc
    recorder.record(config, {**run.performance["after"], **{k: scores.get(k) for k in SCORES},
                             "cost_ratio": run.cost_ratio, "mia_forget_auc": mia["after"],
                             "mia_forget_auc_before": mia["before"], "mia_forget_auc_oracle": mia["oracle"],
                             "retrain_s": run.retrain_seconds},
                    seed=seed, method=run.method, variant=variant_of([f"scenario.reason={reason}", *extra]))


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--reasons", nargs="+", default=list(REASONS), choices=REASONS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--save", type=Path, help="also write every run's withdrawal record to this JSON file")
    args = parser.parse_args()
    recorder = Recorder.from_args(args, "unlearning", "benchmarks.unlearning")
    saved = {}
    for reason in args.reasons:
        records: dict[str, list[WithdrawalRecord]] = {"none": [], "retrain": [], **{m: [] for m in args.methods}}
        for seed in args.seeds:
            for i, method in enumerate(args.methods):
                overrides = ["scenario=site_withdrawal", f"scenario.reason={reason}", f"unlearning={method}",
                             f"seed={seed}", *args.overrides]
                _, outputs = simulate(overrides, ("withdrawal.json",))
                (record,) = map(WithdrawalRecord.from_dict, outputs["withdrawal.json"])
                records[method].append(record)
                if i == 0:
                    records["none"].append(_derived(record, "none"))
                    records["retrain"].append(_derived(record, "retrain"))
                config = compose_config(overrides)
                for run in [record, *(records[m][-1] for m in ("none", "retrain") if i == 0)]:
                    record_run(recorder, config, run, seed, reason, args.overrides)
                print(f"reason={reason} seed={seed} {method}: UES {fmt((record.scores or {}).get('UES'))}, "
                      f"cost ratio {fmt(record.cost_ratio)}", flush=True)
        table(reason, records)
        saved[reason] = records
    if args.save:
        args.save.write_text(json.dumps({reason: {method: [record.to_dict() for record in runs]
                                                  for method, runs in records.items()}
                                         for reason, records in saved.items()}, indent=1))


if __name__ == "__main__":
    main()
