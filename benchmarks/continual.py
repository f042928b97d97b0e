"""Continual-learning figures (DESIGN.md §1.1): each strategy on the default timeline of a task
(A, B, C, D join one per stage, E held out), over seeds:

- memorizability: mean R[T, j] over the trained sites after the last stage;
- generalizability to unseen sites: mean over stages t < T of the mean R[t, j] over the sites
  that have not trained yet (held-out ones included);
- generalizability to the held-out site: R[T, E];
- BWT and forgetting (docs/platform.md);
- wall time of the run, and for SMD runs the generator's training time per site and stage and
  its sampling time per replay batch (one site's ``replay.per_site`` samples).

    python -m benchmarks.continual                                   # segmentation, seeds 0 1 2
    python -m benchmarks.continual task=grading --seeds 0 --methods fedavg ewc pga joint
    python -m benchmarks.continual --smoke-matrix                    # every strategy x task, size=smoke
"""

import json
from pathlib import Path

import numpy as np

from benchmarks.common import median, seed_sweep_parser, simulate
from simulations.formatting import fmt, mean_std, table_header, table_row

METHODS = {
    "fedavg": ["strategy=fedavg"],
    "ewc": ["strategy=ewc"],
    "replay_buffer": ["strategy=replay_buffer"],
    "smd_replay": ["strategy=smd_replay"],
    "pga_no_replay": ["strategy=pga", "replay=none"],
    "pga_smd": ["strategy=pga"],
    "joint": ["strategy=joint"],
    # ablations (not in the default list)
    "pga_orientational": ["strategy=pga", "strategy.arbitrary=false"],
    "pga_arbitrary": ["strategy=pga", "strategy.orientational=false"],
    "pga_real": ["strategy=pga", "replay=real"],
}
DEFAULT_METHODS = ("fedavg", "ewc", "replay_buffer", "smd_replay", "pga_no_replay", "pga_smd", "joint")
NOT_PRIVATE = {"replay_buffer", "pga_real"}
TASKS = ("segmentation", "grading", "debiasing")
SMOKE_STRATEGIES = ("fedavg", "joint", "ewc", "replay_buffer", "smd_replay", "pga")


def figures(matrix: dict, summary: dict) -> dict[str, float | None]:
    """The table's columns from one run's ``matrix.json`` and ``summary.json``."""
    held_out = [matrix["sites"].index(site) for site in matrix["held_out"]]
    unseen = [stage["generalizability"] for stage in summary["per_stage"][:-1]
              if stage["generalizability"] is not None]
    return {
        "memorizability": summary["memorizability"],
        "unseen": float(np.mean(unseen)) if unseen else None,
        "held_out": float(np.mean([matrix["R"][-1][j] for j in held_out])) if held_out else None,
        "bwt": summary["bwt"],
        "forgetting": summary["forgetting"],
    }


def run(method: str, seed: int, extra: list[str]) -> dict:
    """One run: its figures, wall time and (replay runs) the replay source's report."""
    replay = method not in ("fedavg", "ewc", "pga_no_replay", "joint")
    outputs = ("matrix.json", "summary.json") + (("replay.json",) if replay else ())
    seconds, read = simulate([*METHODS[method], f"seed={seed}", *extra], outputs=outputs)
    record = {"method": method, "seed": seed, "seconds": seconds, **figures(read["matrix.json"], read["summary.json"])}
    if replay:
        record["replay"] = read["replay.json"]
    return record


def smd_costs(records: dict[str, list[dict]]) -> None:
    """Generator training per site and stage, sampling per replay batch, fidelity (SMD runs)."""
    for method, runs in records.items():
        smd = [r["replay"] for r in runs if r.get("replay", {}).get("source") == "smd"]
        if not smd:
            continue
        training = [m["seconds"] for replay in smd for site in replay["training"].values() for m in site]
        sampling = [s for replay in smd for s in replay["sampling_seconds"]]
        fidelity = [replay["fidelity"] for replay in smd]
        line = (f"{method}: SMD training per site and stage median {median(training):.1f} s; sampling "
                f"{smd[0]['samples_per_draw']} samples median {median(sampling):.2f} s")
        for key in ("site_accuracy", "class_accuracy"):
            if key in fidelity[0]:
                line += (f"; {key} real {mean_std([f[key]['real'] for f in fidelity])}, replay "
                         f"{mean_std([f[key]['replay'] for f in fidelity])}")
        print(line)


def smoke_matrix() -> None:
    """Every strategy with every task at ``size=smoke``: wall time of each run."""
    print(*table_header(["task", *SMOKE_STRATEGIES]), sep="\n")
    for task in TASKS:
        times = [simulate([f"strategy={strategy}", f"task={task}", "size=smoke"])[0] for strategy in SMOKE_STRATEGIES]
        print(table_row([task, *(f"{t:.0f} s" for t in times)]), flush=True)


def table(records: dict[str, list[dict]]) -> None:
    print(*table_header(("strategy", "memorizability", "generalizability: unseen", "held-out", "BWT", "forgetting",
                         "wall s (median)")), sep="\n")
    for method, runs in records.items():
        label = f"{method} (not private)" if method in NOT_PRIVATE else method
        print(table_row([label, *(mean_std([r[k] for r in runs])
                                  for k in ("memorizability", "unseen", "held_out", "bwt", "forgetting")),
                         fmt(median([r["seconds"] for r in runs]), 0)]))


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS))
    parser.add_argument("--smoke-matrix", action="store_true", help="time every strategy x task at size=smoke")
    parser.add_argument("--out", type=Path, help="also write every run's record here (JSON)")
    args = parser.parse_args()
    if args.smoke_matrix:
        smoke_matrix()
        return
    records: dict[str, list[dict]] = {method: [] for method in args.methods}
    for seed in args.seeds:
        for method in args.methods:
            record = run(method, seed, args.overrides)
            records[method].append(record)
            print(f"seed {seed} {method}: {record['seconds']:.0f} s, memorizability {fmt(record['memorizability'])}, "
                  f"unseen {fmt(record['unseen'])}, held-out {fmt(record['held_out'])}", flush=True)
            if args.out:
                args.out.write_text(json.dumps(records, indent=1))
    print(f"\n### {' '.join(args.overrides) or 'task=segmentation'}: seeds {args.seeds} (mean ± std)\n")
    table(records)
    print()
    smd_costs(records)
    if "fedavg" in records and "pga_smd" in records:
        ratio = median([r["seconds"] for r in records["pga_smd"]]) / median([r["seconds"] for r in records["fedavg"]])
        print(f"wall time pga_smd / fedavg (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
