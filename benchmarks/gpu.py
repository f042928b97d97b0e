"""The default scenario and ``size=paper`` on a GPU: seconds per round, peak GPU memory, platform /
bare-loop ratio, and how many sites fit on one GPU.

For each size (default, ``paper``) with ``device=cuda``: the platform run (``python -m
simulations.run``, every site actor given ``--client-gpus`` of the GPU) as a fresh process, then
the bare PyTorch loop of ``benchmarks/sequential_sites.py`` (same sites, data, seeds and work, no
Flower, no Ray) in this process, where ``torch.cuda.max_memory_allocated`` sees it: one site
trains at a time, so its peak is a site's peak. Sites per GPU is the GPU's memory over that peak.
``--rounds`` caps the rounds per stage (paper-sized stages take long); seconds per round are
wall seconds over every round of the run, start-up included.

    python -m benchmarks.gpu                                # default and size=paper, 2 rounds per stage
    python -m benchmarks.gpu --sizes paper --rounds 5 precision=bf16
    python -m benchmarks.gpu --device cpu --sizes smoke     # checks the script on a machine without a GPU

Without a CUDA GPU it stops at once (``--device cpu`` measures the CPU, without GPU memory).
"""

import argparse
import sys
import time

import torch

from benchmarks.common import compose_config, median, simulate
from benchmarks.results import Recorder, add_arguments, variant_of
from benchmarks.sequential_sites import bare_loop
from simulations.formatting import fmt, table_header, table_row


def measure(size: str, device: str, rounds: int, client_gpus: float, repeats: int, overrides: list[str]) -> dict:
    """Platform and bare-loop medians of one size preset."""
    shared = [*([] if size == "default" else [f"size={size}"]), f"device={device}",
              f"scenario.rounds_per_stage={rounds}", *overrides]
    config = compose_config(shared)
    total_rounds = rounds * len(config["scenario"]["stages"])
    platform = [simulate([*shared, f"backend.client_gpus={client_gpus}"])[0] for _ in range(repeats)]
    bare, peaks = [], []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        bare_loop(shared)
        bare.append(time.perf_counter() - start)
        peaks.append(torch.cuda.max_memory_allocated() if device == "cuda" else None)
    return {"rounds": total_rounds, "platform_s": median(platform), "bare_s": median(bare),
            "peak_bytes": None if device != "cuda" else max(peaks), "config": config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"], help="default | paper | smoke")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per stage")
    parser.add_argument("--client-gpus", type=float, default=0.2, help="backend.client_gpus of the platform runs")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides shared by every run (e.g. precision=bf16)")
    add_arguments(parser)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks.gpu: torch sees no CUDA GPU on this machine; run it on one "
                 "(or pass --device cpu to check the script)")
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    memory = torch.cuda.get_device_properties(0).total_memory if args.device == "cuda" else None
    share = args.client_gpus if args.device == "cuda" else 0.0
    results = {size: measure(size, args.device, args.rounds, share, args.repeats, args.overrides)
               for size in args.sizes}
    print(f"{where}; {args.rounds} rounds per stage; platform sites at backend.client_gpus={share}; "
          f"medians of {args.repeats}; overrides: {' '.join(args.overrides) or 'none'}\n")
    print(*table_header(("size", "rounds", "platform s / round", "bare loop s / round", "ratio platform / bare",
                         "peak GPU memory (GiB)", "sites per GPU (memory)")), sep="\n")
    recorder = Recorder.from_args(args, "platform", "benchmarks.gpu")
    for size, r in results.items():
        peak = r["peak_bytes"]
        recorder.record(r["config"], {"rounds": r["rounds"], "platform_s": r["platform_s"], "bare_s": r["bare_s"],
                                      "peak_gpu_bytes": peak}, seed=r["config"]["seed"], method=f"size={size}",
                        variant=variant_of(args.overrides), split_or_site=where)
        print(table_row((size, r["rounds"], fmt(r["platform_s"] / r["rounds"], 2), fmt(r["bare_s"] / r["rounds"], 2),
                         fmt(r["platform_s"] / r["bare_s"], 2), fmt(None if peak is None else peak / 2**30, 2),
                         "n/a" if peak is None else int(memory // peak))))


if __name__ == "__main__":
    main()
