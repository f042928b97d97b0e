"""Continual-learning figures (docs/design.md#pga): each strategy on the default timeline of a task
(A, B, C, D join one per stage, E held out), over seeds:

- memorizability: mean R[T, j] over the trained sites after the last stage;
- generalizability to unseen sites: mean over stages t < T of the mean R[t, j] over the sites
  that have not trained yet (held-out ones included);
- generalizability to the held-out site: R[T, E];
- BWT and forgetting (docs/platform.md);
- PGA's alignment share (sites' training replies, :mod:`sites.alignment_meter`) and the server
  meta-steps' share (``pga-server-share``): the median over each run's replies of the stages
  with replay;
- wall time of the run, and for SMD runs the generator's training time per site and stage and
  its sampling time per replay batch (one site's ``replay.per_site`` samples).

    python -m benchmarks.continual                                   # segmentation, seeds 0 1 2
    python -m benchmarks.continual task=grading --seeds 0 --methods fedavg ewc pga joint
    python -m benchmarks.continual scenario=multivendor_sites --methods pga_smd pga_no_server
    python -m benchmarks.continual --smoke-matrix                    # every strategy x task, size=smoke
"""

import json
from pathlib import Path

import numpy as np

from benchmarks.common import compose_config, median, seed_sweep_parser, simulate
from benchmarks.results import Recorder, variant_of
from server.records import ReplayRecord
from server.run_log import Event
from simulations.formatting import fmt, mean_std, table_header, table_row
from simulations.replay_fidelity import contrast_ratio
from sites.protocol import MetricKey
from strategies.pga import SERVER_SHARE

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
    "pga_no_server": ["strategy=pga", "strategy.server_steps=0"],
    "pga_no_pseudo": ["strategy=pga", "strategy.pseudo_domains=0"],
}
DEFAULT_METHODS = ("fedavg", "ewc", "replay_buffer", "smd_replay", "pga_no_replay", "pga_smd", "joint")
NOT_PRIVATE = {"replay_buffer", "pga_real"}
TASKS = ("segmentation", "grading", "debiasing")
SMOKE_STRATEGIES = ("fedavg", "joint", "ewc", "replay_buffer", "smd_replay", "pga")
# The figures of a run that go to the results file (with its wall time, ``wall_s``): metric -> record key.
RECORDED = {"memorizability": "memorizability", "unseen": "unseen", "held_out": "held_out", "bwt": "bwt",
            "forgetting": "forgetting", "alignment_share": "share", "server_share": "server_share"}


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


def shares(metrics_jsonl: str) -> dict[str, float | None]:
    """PGA's alignment share over the sites' training replies, and the server's share over the
    rounds, of the stages with replay (stage 2 on): medians; ``None`` where nothing carries one."""
    events = [json.loads(line) for line in metrics_jsonl.splitlines()]
    replayed = [event for event in events if event.get("stage", 0) > 1]

    def median_of(kind: Event, key: str) -> float | None:
        values = [e["metrics"][key] for e in replayed if e["event"] == kind and key in e.get("metrics", {})]
        return median(values) if values else None

    return {"share": median_of(Event.TRAIN, MetricKey.PGA_ALIGNMENT_SHARE),
            "server_share": median_of(Event.AGGREGATE, SERVER_SHARE)}


def run(method: str, seed: int, extra: list[str], recorder: Recorder) -> dict:
    """One run: its figures, wall time and (replay runs) the replay source's report; its figures
    also go to ``recorder``."""
    replay = method not in ("fedavg", "ewc", "pga_no_replay", "joint")
    outputs = ("matrix.json", "summary.json", "metrics.jsonl") + (("replay.json",) if replay else ())
    overrides = [*METHODS[method], f"seed={seed}", *extra]
    seconds, read = simulate(overrides, outputs=outputs)
    record = {"method": method, "seed": seed, "seconds": seconds, **figures(read["matrix.json"], read["summary.json"]),
              **shares(read["metrics.jsonl"])}
    config = compose_config(overrides)
    recorder.record(config, {metric: record[key] for metric, key in RECORDED.items()} | {"wall_s": seconds},
                    seed=seed, method=method, variant=variant_of(extra), split_or_site=config["evaluate_split"])
    if replay:
        record["replay"] = read["replay.json"]
    return record


def smd_costs(records: dict[str, list[dict]]) -> None:
    """Generator training per site and stage, sampling per replay batch, fidelity (SMD runs)."""
    for method, runs in records.items():
        replays = [ReplayRecord.from_dict(r["replay"]) for r in runs if "replay" in r]
        smd = [replay for replay in replays if replay.source == "smd"]
        if not smd:
            continue
        training = [m["seconds"] for replay in smd for site in replay.figures["training"].values() for m in site]
        sampling = [s for replay in smd for s in replay.figures["sampling_seconds"]]
        fidelity = [replay.fidelity for replay in smd]
        line = (f"{method}: SMD training per site and stage median {median(training):.1f} s; sampling "
                f"{smd[0].figures['samples_per_draw']} samples median {median(sampling):.2f} s")
        for key in ("site_accuracy", "class_accuracy"):
            if key in fidelity[0]:
                line += (f"; {key} real test {mean_std([f[key]['real'] for f in fidelity])}, real training "
                         f"{mean_std([f[key].get('real_training') for f in fidelity])}, replay "
                         f"{mean_std([f[key]['replay'] for f in fidelity])}")
        contrasts = {site: [contrast_ratio(f["sites"][site]) for f in fidelity] for site in fidelity[0]["sites"]
                     if fidelity[0]["sites"][site]["real"].get("organ_contrast")}
        if contrasts:
            line += "; organ contrast replay / real " + ", ".join(f"{site} {mean_std(ratios, 2)}"
                                                                  for site, ratios in contrasts.items())
        print(line)


def smoke_matrix(recorder: Recorder) -> None:
    """Every strategy with every task at ``size=smoke``: wall time of each run."""
    print(*table_header(["task", *SMOKE_STRATEGIES]), sep="\n")
    for task in TASKS:
        times = []
        for strategy in SMOKE_STRATEGIES:
            overrides = [f"strategy={strategy}", f"task={task}", "size=smoke"]
            times.append(simulate(overrides)[0])
            config = compose_config(overrides)
            recorder.record(config, {"wall_s": times[-1]}, seed=config["seed"], method=strategy, variant="size=smoke")
        print(table_row([task, *(f"{t:.0f} s" for t in times)]), flush=True)


def table(records: dict[str, list[dict]]) -> None:
    print(*table_header(("strategy", "memorizability", "generalizability: unseen", "held-out", "BWT", "forgetting",
                         "alignment share", "server share", "wall s (median)")), sep="\n")
    for method, runs in records.items():
        label = f"{method} (not private)" if method in NOT_PRIVATE else method
        print(table_row([label, *(mean_std([r[k] for r in runs])
                                  for k in ("memorizability", "unseen", "held_out", "bwt", "forgetting")),
                         *(_median_or_missing([r.get(k) for r in runs]) for k in ("share", "server_share")),
                         fmt(median([r["seconds"] for r in runs]), 0)]))


def _median_or_missing(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return fmt(median(present) if present else None)


def main() -> None:
    parser = seed_sweep_parser(__doc__)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS))
    parser.add_argument("--smoke-matrix", action="store_true", help="time every strategy x task at size=smoke")
    parser.add_argument("--out", type=Path, help="also write every run's record here (JSON)")
    args = parser.parse_args()
    recorder = Recorder.from_args(args, "continual", "benchmarks.continual")
    if args.smoke_matrix:
        smoke_matrix(recorder)
        return
    records: dict[str, list[dict]] = {method: [] for method in args.methods}
    for seed in args.seeds:
        for method in args.methods:
            record = run(method, seed, args.overrides, recorder)
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
