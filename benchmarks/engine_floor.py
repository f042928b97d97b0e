"""The floor of Flower's simulation engine on Ray: what any platform built on it pays beyond the
work, measured with a ServerApp and ClientApp that do no work at all.

Five SuperNodes (as the default scenario), one Ray actor of 2 CPUs (as ``backend.client_cpus``),
a ClientApp that imports what the platform's actors import (torch, MONAI) and answers at once.
The ServerApp waits for the first replies of all five nodes (Ray's start, the actor's start and
imports), then times one-node exchanges; then Flower stops its engine and Ray. Each repeat is a
fresh process. The closing line sets the floor against the default scenario's exchanges and
the bare PyTorch loop's time (``benchmarks/sequential_sites.py``).

    python -m benchmarks.engine_floor                       # 3 repeats
    python -m benchmarks.engine_floor --exchanges 46 --bare-seconds 47.8
"""

import argparse
import json
import logging
import sys
import time
import warnings

from benchmarks.common import median, timed
from benchmarks.results import Recorder, add_arguments
from simulations.formatting import fmt, table_header, table_row

NODES = 5
TIMED_EXCHANGES = 20


def measure_once() -> dict[str, float]:
    """One engine run in this process: seconds of each part."""
    start = time.perf_counter()
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    imported = time.perf_counter()
    client, server, stamps = ClientApp(), ServerApp(), {}

    @client.query()
    def answer(message: Message, context: Context) -> Message:
        import monai  # noqa: F401 - the platform's actor imports torch and MONAI before its first reply
        import torch  # noqa: F401

        return Message(RecordDict({"reply": ConfigRecord({"ok": 1})}), reply_to=message)

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        while len(nodes := list(grid.get_node_ids())) < NODES:
            time.sleep(0.05)
        list(grid.send_and_receive([Message(RecordDict(), dst_node_id=n, message_type="query") for n in nodes]))
        stamps["first replies"] = time.perf_counter()
        for _ in range(TIMED_EXCHANGES):
            list(grid.send_and_receive([Message(RecordDict(), dst_node_id=nodes[0], message_type="query")]))
        stamps["exchanges"] = time.perf_counter()

    logging.getLogger("flwr").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    run_simulation(server_app=server, client_app=client, num_supernodes=NODES,
                   backend_config={"client_resources": {"num_cpus": 2, "num_gpus": 0.0},
                                   "init_args": {"logging_level": logging.ERROR, "log_to_driver": False,
                                                 "num_cpus": 2}})
    stopped = time.perf_counter()
    return {"flower imports": imported - start,
            "start to first replies": stamps["first replies"] - imported,
            "per exchange": (stamps["exchanges"] - stamps["first replies"]) / TIMED_EXCHANGES,
            "shutdown": stopped - stamps["exchanges"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--exchanges", type=int, default=46,
                        help="exchanges of the default scenario with fedavg: discovery, data check, and per "
                             "stage 5 rounds x (train, evaluate) + the evaluation of every site")
    parser.add_argument("--bare-seconds", type=float, default=47.8,
                        help="the bare PyTorch loop's median from benchmarks/sequential_sites.py")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args()
    if args.once:
        print(json.dumps(measure_once()))
        return
    runs = [json.loads(timed([sys.executable, "-m", "benchmarks.engine_floor", "--once"])[1])
            for _ in range(args.repeats)]
    recorder = Recorder.from_args(args, "platform", "benchmarks.engine_floor")
    for repeat, run in enumerate(runs):
        recorder.record(None, run, seed=repeat, method="flower engine, no work", split_or_site=f"{NODES} nodes")
    parts = {key: median([run[key] for run in runs]) for key in runs[0]}
    print(f"Flower's simulation engine with no work, {NODES} nodes, one actor of 2 CPUs; medians of {args.repeats} "
          "fresh processes\n")
    print(*table_header(("part", "seconds")), sep="\n")
    for key, value in parts.items():
        print(table_row((key, fmt(value))))
    floor = parts["start to first replies"] + parts["shutdown"] + args.exchanges * parts["per exchange"]
    print(f"\nfloor for {args.exchanges} exchanges (start, shutdown, exchanges; not counting Flower's imports): "
          f"{floor:.1f} s, i.e. a ratio of at least {(args.bare_seconds + floor) / args.bare_seconds:.2f} over a "
          f"{args.bare_seconds:g} s bare loop (goal <= 1.1 allows {0.1 * args.bare_seconds:.1f} s)")


if __name__ == "__main__":
    main()
