"""Many sites: wall time per round and memory of a whole run with 10, 50 and 100 sites.

A tiny segmentation model (``TINY_TASK``) so that the cost measured is the platform's, in two
layouts per number of sites N:

- ``together``: all N sites in one stage, ``--rounds`` rounds: N sites train in every round;
- ``sequential``: the sites arrive ``--stage-size`` at a time (N / stage size stages of
  ``--rounds`` rounds each): as many sites train per round whatever N, while the federation,
  and the evaluation of every site after each stage (row t of R), grow with N.

Site i has the same scanner signature in every run: drawn, with a fixed seed, uniformly within
each field's range over the five sites of ``configs/scenario/sequential_sites.yaml``.

Each run is a fresh ``python -m simulations.run`` process. While it runs, this process
polls its ``metrics.jsonl`` every ``LOG_POLL_S`` and notes when each exchange's replies (one
batch of events) appear, and a thread sums every ``MEMORY_POLL_S`` the memory of the process tree
(the driver, which runs the ServerApp and Flower's simulation engine, and every descendant:
Ray's GCS, raylet, dashboard, and the actors that play the sites) from ``/proc/<pid>/smaps_rollup``:

- start-up: from the process start to the replies of the data check (imports, Ray, the
  site actors, every site generating its data);
- s per round: each batch is charged with the time since the previous one; a round is its
  training exchange plus its evaluation exchange (FedAvg evaluates the present sites after each
  round) and the checkpoint saved between them; the median over the run's rounds;
- s per all-site evaluation: the same for the evaluation of every site after each stage;
- closing: from the last evaluation to the process's exit (report, plots, Ray's shutdown);
- peak RSS: the largest sum of RSS over the tree (counts shared pages once per process: an
  upper bound); peak PSS: the largest sum of PSS (shared pages split between their processes:
  the tree's real footprint);
- memory per site: (peak PSS at N - peak PSS at the smallest N) / (N - smallest N), per layout.

The goals: 100 sites fit in ``MEMORY_GOAL_GIB``, and time per round grows no worse than
linearly in the sites that train: s per round per training site at the largest N is at most
``LINEAR_TOLERANCE`` times that at the smallest N.

    python -m benchmarks.scale                          # 10, 50 and 100 sites, both layouts
    python -m benchmarks.scale --quick                  # 5 and 10 sites, stages of 5: ~2 minutes
    python -m benchmarks.scale --sites 10 20 backend.client_cpus=1
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from benchmarks.common import ROOT, compose_config, median
from benchmarks.results import Recorder, add_arguments, variant_of
from server.run_log import Event
from simulations.formatting import fmt, table_header, table_row

SIGNATURES = ROOT / "configs" / "scenario" / "sequential_sites.yaml"
TINY_TASK = ("task=segmentation", "task.image_size=16", "task.channels=[4,8,16]", "task.strides=[2,2]",
             "task.n_train=8", "task.n_test=4", "task.batch_size=4", "task.local_steps=2")
LAYOUTS = ("together", "sequential")
LOG_POLL_S = 0.05
MEMORY_POLL_S = 0.5
MEMORY_GOAL_GIB = 24.0
GOAL_SITES = 100
LINEAR_TOLERANCE = 1.2
GIB = 2**30


def scanner_ranges(path: Path = SIGNATURES) -> dict[str, tuple[float, float]]:
    """Each scanner field's (min, max) over the sites of a scenario file."""
    scanners = [site["scanner"] for site in yaml.safe_load(path.read_text())["sites"]]
    return {name: (min(s[name] for s in scanners), max(s[name] for s in scanners)) for name in scanners[0]}


def scenario_config(n_sites: int, layout: str, rounds: int, stage_size: int, seed: int = 0) -> dict:
    """The ``scenario`` config node of N sites in a layout (see the module docstring).

    Parameters
    ----------
    n_sites : int
        Number of sites, all of which train.
    layout : str
        ``together`` (one stage) or ``sequential`` (stages of ``stage_size`` sites, the last
        one shorter when ``stage_size`` does not divide ``n_sites``).
    rounds : int
        Rounds per stage.
    stage_size : int
        Sites per stage of the ``sequential`` layout.
    seed : int
        Seeds the scanner signatures; site i gets the same one for every ``n_sites``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} (got {layout!r})")
    rng = np.random.default_rng(seed)
    ranges = scanner_ranges()
    ids = [f"S{i:03d}" for i in range(1, n_sites + 1)]
    sites = [{"id": site, "name": f"site_{site[1:]}",
              "scanner": {name: round(float(rng.uniform(low, high)), 4) for name, (low, high) in ranges.items()}}
             for site in ids]
    size = n_sites if layout == "together" else stage_size
    return {"name": f"scale_{layout}_{n_sites}", "schedule": "sequential", "rounds_per_stage": rounds,
            "sites": sites, "stages": [ids[i:i + size] for i in range(0, n_sites, size)], "held_out": []}


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_memory(root: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over the process tree of ``root``."""
    totals = {"Rss": 0, "Pss": 0}
    for pid in process_tree(root):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            key, _, value = line.partition(":")
            if key in totals:
                totals[key] += int(value.split()[0]) * 1024
    return totals["Rss"], totals["Pss"]


@dataclass
class Observation:
    """What was seen of one run (``time.perf_counter`` seconds, bytes).

    Parameters
    ----------
    started : float
        When the process was started.
    batches : list of ((event, stage, round), float)
        Each batch of events of ``metrics.jsonl``, in order, and when its last line was read.
    peak_rss, peak_pss : int
        The largest sums of RSS and of PSS over the process tree.
    ended : float
        When the process was seen to have exited.
    """

    started: float
    batches: list[tuple[tuple[str, int, int], float]] = field(default_factory=list)
    peak_rss: int = 0
    peak_pss: int = 0
    ended: float = 0.0


class PeakMemory(threading.Thread):
    """Samples the memory of a process tree every ``MEMORY_POLL_S`` until stopped, keeping the
    peaks (in a thread: a sample can take a fraction of a second, which would delay the event times).

    Parameters
    ----------
    root : int
        Process id of the tree's root.
    """

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak_rss, self.peak_pss = root, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            rss, pss = tree_memory(self.root)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._done.wait(MEMORY_POLL_S)

    def stop(self) -> None:
        self._done.set()
        self.join()


def observe(process: subprocess.Popen, log: Path, observation: Observation) -> None:
    """Poll the run's event log until ``process`` exits. A batch is the run of consecutive
    events with the same (event, stage, round), timed by the poll that read its last line."""
    offset, partial = 0, ""
    while True:
        running = process.poll() is None
        now = time.perf_counter()
        if log.exists():
            with log.open() as file:
                file.seek(offset)
                partial += file.read()
                offset = file.tell()
            *lines, partial = partial.split("\n")
            for line in lines:
                record = json.loads(line)
                key = (record["event"], record["stage"], record["round"])
                if observation.batches and observation.batches[-1][0] == key:
                    observation.batches[-1] = (key, now)
                else:
                    observation.batches.append((key, now))
        if not running:
            observation.ended = now
            return
        time.sleep(LOG_POLL_S)


def run_observed(scenario: dict, overrides: list[str]) -> Observation:
    """Run the platform on ``scenario`` in a fresh process, observing it; it must succeed."""
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp) / "configs"
        (config_dir / "scenario").mkdir(parents=True)
        (config_dir / "scenario" / "scale.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
        run_dir, stderr_path = Path(tmp) / "run", Path(tmp) / "stderr.txt"
        command = [sys.executable, "-m", "simulations.run", "--config-dir", str(config_dir), "scenario=scale",
                   *TINY_TASK, *overrides, f"hydra.run.dir={run_dir}"]
        with stderr_path.open("w") as stderr:
            observation = Observation(time.perf_counter())
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
            memory = PeakMemory(process.pid)
            memory.start()
            observe(process, run_dir / "metrics.jsonl", observation)
            memory.stop()
        observation.peak_rss, observation.peak_pss = memory.peak_rss, memory.peak_pss
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{stderr_path.read_text()[-3000:]}")
        return observation


@dataclass
class Timing:
    """One run's wall time split by what the platform was doing (seconds; see the module docstring).

    Parameters
    ----------
    wall : float
        The whole process.
    startup : float
        Up to the data check's replies.
    rounds : list of float
        Each training round, with its evaluation.
    stage_evaluations : list of float
        Each evaluation of every site after a stage.
    closing : float
        From the last evaluation to the exit.
    """

    wall: float
    startup: float
    rounds: list[float]
    stage_evaluations: list[float]
    closing: float


def split_time(observation: Observation) -> Timing:
    """Charge each batch with the time since the previous one, and sum by what it was."""
    rounds: dict[int, float] = {}
    stage_evaluations, startup, previous = [], 0.0, observation.started
    for (event, _, round_), seen in observation.batches:
        gap, previous = seen - previous, seen
        if event in (Event.SITE, Event.DATA):
            startup += gap
        elif event in (Event.TRAIN, Event.EVALUATE):
            rounds[round_] = rounds.get(round_, 0.0) + gap
        elif event == Event.MATRIX:
            stage_evaluations.append(gap)
        else:
            raise ValueError(f"unexpected event {event!r} in metrics.jsonl: this benchmark runs FedAvg only")
    return Timing(observation.ended - observation.started, startup, list(rounds.values()), stage_evaluations,
                  observation.ended - previous)


def actors(overrides: list[str]) -> str:
    """How many Ray actors play the sites, and why."""
    client_cpus = compose_config([*TINY_TASK, *overrides])["backend"]["client_cpus"]
    cpus = os.cpu_count() or 1
    return f"{int(cpus // client_cpus)} Ray actor(s) ({cpus} CPUs / backend.client_cpus {client_cpus})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, nargs="+", help="numbers of sites (default 10 50 100)")
    parser.add_argument("--rounds", type=int, help="rounds per stage (default 3)")
    parser.add_argument("--stage-size", type=int, help="sites per stage of the sequential layout (default 10)")
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--quick", action="store_true", help="a short check: 5 and 10 sites, stages of 5, 2 rounds")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (e.g. backend.client_cpus=1)")
    add_arguments(parser)
    args = parser.parse_args()
    quick = {"sites": [5, 10], "rounds": 2, "stage_size": 5} if args.quick else {}
    sites = sorted(set(args.sites or quick.get("sites", [10, 50, 100])))
    rounds = args.rounds or quick.get("rounds", 3)
    stage_size = args.stage_size or quick.get("stage_size", 10)

    recorder = Recorder.from_args(args, "platform", "benchmarks.scale")
    rows = []
    for layout in args.layouts:
        for n in sites:
            print(f"{layout}, {n} sites ...", file=sys.stderr, flush=True)
            scenario = scenario_config(n, layout, rounds, stage_size)
            observation = run_observed(scenario, args.overrides)
            timing, training = split_time(observation), len(scenario["stages"][0])
            rows.append({"layout": layout, "sites": n, "stages": len(scenario["stages"]), "training": training,
                         "timing": timing, "per_round": median(timing.rounds),
                         "per_site": median(timing.rounds) / training,
                         "rss": observation.peak_rss / GIB, "pss": observation.peak_pss / GIB})
            config = {**compose_config([*TINY_TASK, *args.overrides]), "scenario": scenario}
            recorder.record(config, {"wall_s": timing.wall, "startup_s": timing.startup,
                                     "round_s": rows[-1]["per_round"],
                                     "round_s_per_training_site": rows[-1]["per_site"],
                                   "all_site_evaluation_s": median(timing.stage_evaluations),
                                   "closing_s": timing.closing, "peak_rss_gib": rows[-1]["rss"],
                                   "peak_pss_gib": rows[-1]["pss"]},
                            seed=config["seed"], method=layout, variant=variant_of([f"sites={n}", *args.overrides]))

    print(f"{TINY_TASK[0]} ({' '.join(TINY_TASK[1:])}), FedAvg, {rounds} rounds per stage, sequential stages "
          f"of {stage_size} sites; {actors(args.overrides)}; overrides: {' '.join(args.overrides) or 'none'}; "
          "wall seconds of fresh processes on this machine")
    print()
    print(*table_header(("layout", "sites", "stages", "sites training per round", "rounds", "wall s", "start-up s",
                         "s per round", "s per round per training site", "s per all-site evaluation", "closing s",
                         "peak RSS GiB", "peak PSS GiB", "memory per site MiB")), sep="\n")
    verdicts = []
    for layout in args.layouts:
        runs = [row for row in rows if row["layout"] == layout]
        base = runs[0]
        for row in runs:
            timing = row["timing"]
            per_site_mib = ((row["pss"] - base["pss"]) * 1024 / (row["sites"] - base["sites"])
                            if row is not base else None)
            print(table_row((layout, row["sites"], row["stages"], row["training"], len(timing.rounds),
                             fmt(timing.wall, 1), fmt(timing.startup, 1), fmt(row["per_round"], 2),
                             fmt(row["per_site"], 3), fmt(median(timing.stage_evaluations), 2),
                             fmt(timing.closing, 1), fmt(row["rss"], 2), fmt(row["pss"], 2), fmt(per_site_mib, 1))))
        verdicts.append(verdict(layout, runs))
    print()
    for line in verdicts:
        print(line)


def verdict(layout: str, runs: list[dict]) -> str:
    """The closing line of one layout (its runs by number of sites): both goals, met or not,
    with the figures they rest on."""
    smallest, largest = runs[0], runs[-1]
    if largest is smallest:
        return f"- {layout}: one number of sites only; the goals compare several."
    ratio = largest["per_site"] / smallest["per_site"]
    linear = "met" if ratio <= LINEAR_TOLERANCE else "NOT met"
    at_goal = [row for row in runs if row["sites"] == GOAL_SITES]
    if at_goal:
        pss, measured = at_goal[0]["pss"], "measured"
    else:  # a quick check: say what the measured growth predicts, and that it is a prediction
        per_site = (largest["pss"] - smallest["pss"]) / (largest["sites"] - smallest["sites"])
        pss, measured = largest["pss"] + per_site * (GOAL_SITES - largest["sites"]), "extrapolated linearly"
    fits = "met" if pss <= MEMORY_GOAL_GIB else "NOT met"
    return (f"- {layout}: s per round per training site {ratio:.2f}x from {smallest['sites']} to "
            f"{largest['sites']} sites (goal <= {LINEAR_TOLERANCE}x): {linear}; peak PSS at {GOAL_SITES} sites "
            f"{pss:.2f} GiB, {measured} (goal <= {MEMORY_GOAL_GIB:g} GiB): {fits}.")


if __name__ == "__main__":
    main()
