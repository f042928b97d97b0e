"""What one local training step of PGA costs, and what measuring its alignment adds.

CPU seconds (``time.process_time``, every thread counted) of one step of the task's own loop
(forward, backward, Adam), on random inputs of the task's shapes with two replayed sites, for:

- ``plain``: the task's loss alone (what fedavg's sites run);
- ``pga``: PGA's full objective (orientational and arbitrary), no measurement;
- ``pga, meter every 10``: the step cost averaged over ten steps of which one is measured
  (:mod:`sites.alignment_meter`);
- ``pga, every step measured``;
- ``pga, 2 pseudo-domains, meter every 10``: the default (``strategy.pseudo_domains=2``), the
  site's own split (64 random images) seen through two scanner signatures
  (:mod:`sites.pseudo_domains`) joining the generalizability objective.

The variants run interleaved, step by step, so that drift of the machine hits them alike; the
table gives, over ``--steps`` rounds after three unmeasured ones, the median step, the mean
step over whole ten-step cycles (where the meter's cost comes once per cycle), and the ratio
of that mean to ``pga``'s.

    python -m benchmarks.pga_step                      # task=segmentation, the default size
    python -m benchmarks.pga_step --steps 10 -- task=segmentation size=smoke
"""

import argparse
import time

import torch
from torch.utils.data import TensorDataset

from benchmarks.common import compose_config, median
from benchmarks.results import Recorder, add_arguments, variant_of
from simulations.formatting import table_header, table_row
from sites.alignment_meter import AlignmentMeter
from sites.protocol import TrainConfig
from sites.pseudo_domains import pseudo_domains
from sites.replay_objectives import replay_objective
from sites.tasks import build_task
from strategies import build_strategy

REPLAYED = 64  # samples per replayed site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (default task=segmentation)")
    add_arguments(parser)
    args = parser.parse_args()
    if args.steps < 10:
        parser.error(f"--steps must cover at least one ten-step cycle of the meter (got {args.steps})")
    config = compose_config(["task=segmentation", *args.overrides])
    task = build_task(config["task"])
    torch.set_num_threads(int(config["backend"]["client_cpus"]))
    torch.manual_seed(0)

    def sample(n: int) -> list[torch.Tensor]:
        size = task.image_size
        return [torch.randn(n, 1, size, size), torch.randint(0, 2, (n, 1, size, size))]

    replay = {name: TensorDataset(*sample(REPLAYED)) for name in ("A", "B")}
    train_config = TrainConfig(phase=task.phases[-1].name)
    options = build_strategy({"_target_": "strategies.pga.PGA"}).options  # PGA's defaults

    def loss(model: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return task.batch_loss(model, batch, train_config)

    def objective(meter: AlignmentMeter | None, pseudo: dict | None = None):
        return replay_objective(loss, replay, options, seed=0, meter=meter, pseudo=pseudo)

    variants = {"plain": loss, "pga": objective(None), "pga, meter every 10": objective(AlignmentMeter(10)),
                "pga, every step measured": objective(AlignmentMeter(1)),
                "pga, 2 pseudo-domains, meter every 10": objective(
                    AlignmentMeter(10), pseudo_domains(TensorDataset(*sample(REPLAYED)), count=2, seed=0))}
    models = {name: task.build_model() for name in variants}
    optimizers = {name: torch.optim.Adam(models[name].parameters(), lr=task.lr) for name in variants}
    batch = sample(task.batch_size)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3 + args.steps):
        for name, step_objective in variants.items():
            start = time.process_time()
            optimizers[name].zero_grad()
            step_objective(models[name], batch).backward()
            optimizers[name].step()
            seconds[name].append(time.process_time() - start)

    cycles = args.steps // 10 * 10
    print(f"overrides: {' '.join(args.overrides) or '(none)'}; {args.steps} steps per variant, "
          f"batch {task.batch_size}, two replayed sites\n")
    print(*table_header(("variant", "CPU s per step, median", "CPU s per step, mean over ten-step cycles",
                         "ratio to pga (mean)")), sep="\n")
    base = sum(seconds["pga"][3:3 + cycles]) / cycles
    recorder = Recorder.from_args(args, "platform", "benchmarks.pga_step")
    for name, values in seconds.items():
        mean = sum(values[3:3 + cycles]) / cycles
        print(table_row((name, f"{median(values[3:]):.3f}", f"{mean:.3f}", f"{mean / base:.2f}")), flush=True)
        recorder.record(config, {"cpu_s_per_step_median": median(values[3:]), "cpu_s_per_step_mean": mean,
                                 "ratio_to_pga": mean / base}, seed=0, method=name, variant=variant_of(args.overrides))


if __name__ == "__main__":
    main()
