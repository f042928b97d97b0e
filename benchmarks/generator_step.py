"""What one training step of SMD's generator costs on grading volumes, with the volume's
structure kept (the shipped 3D generator) and folded into the channels of a 2D sample.

CPU seconds (``time.process_time``, every thread counted) of one denoising step (forward,
backward, Adam; batch ``replay.generator.batch_size``, widths ``replay.generator.channels``) on
random volumes of grading's shape (4 sequences x ``task.depth`` slices of ``task.image_size``
squared), for three :class:`~sites.networks.site_diffusion.SiteDiffusion`:

- ``folded 2D (before)``: the cheaper replay space the 3D one replaced, sequences x slices as
  the channels of one 2D sample, which mixes the slices as unordered channels;
- ``slice-wise 2D``: the same 2D UNet on each slice alone (4 channels, every slice of the batch
  a sample): the spatial cost that any slice-consistent 2D network (a video-style UNet adding
  1D layers across slices) pays at least;
- ``3D (shipped)``: the whole volume (:func:`sites.diffusion.build_generator`, MONAI's
  ``DiffusionModelUNet``), the same widths, one residual block a level, cross-attention at the
  lowest level.

The variants run interleaved, step by step, so that drift of the machine hits them alike; the
table gives the median step over ``--steps`` after one unmeasured step, its ratio to the
folded one, and what ``replay.generator.steps`` such steps take per site and stage.

    python -m benchmarks.generator_step
    python -m benchmarks.generator_step --steps 3 -- task.depth=8 task.image_size=16
"""

import argparse
import time

import torch

from benchmarks.common import compose_config, median
from benchmarks.results import Recorder, add_arguments, variant_of
from simulations.formatting import table_header, table_row
from sites.diffusion import build_generator, denoising_loss
from sites.networks.site_diffusion import SiteDiffusion
from sites.protocol import GeneratorConfig
from sites.tasks import build_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (task=grading is set)")
    add_arguments(parser)
    args = parser.parse_args()
    config = compose_config(["task=grading", "replay=smd", *args.overrides])
    task, settings = build_task(config["task"]), config["replay"]["generator"]
    torch.set_num_threads(int(config["backend"]["client_cpus"]))
    torch.manual_seed(0)
    wire = GeneratorConfig(settings["channels"], settings["embed_dim"], settings["heads"], settings["steps"],
                           settings["batch_size"], settings["lr"])
    sequences, size = 4, task.image_size
    batch, depth = int(settings["batch_size"]), task.depth
    folded = SiteDiffusion(2, sequences * depth, size, task.replay_classes, wire.embed_dim, wire.channels, wire.heads)
    slice_wise = SiteDiffusion(2, sequences, size, task.replay_classes, wire.embed_dim, wire.channels, wire.heads)
    volumetric = build_generator(task, wire)
    volumes = torch.rand(batch, sequences, depth, size, size) * 2 - 1
    prompts = torch.randn(batch, settings["prompt_tokens"], wire.embed_dim)
    classes = torch.randint(0, task.replay_classes, (batch,))
    variants = {
        "folded 2D (before)": (folded, volumes.flatten(1, 2), prompts, classes),
        "slice-wise 2D": (slice_wise, volumes.transpose(1, 2).flatten(0, 1), prompts.repeat_interleave(depth, 0),
                          classes.repeat_interleave(depth)),
        "3D (shipped)": (volumetric, volumes, prompts, classes),
    }
    optimizers = {name: torch.optim.Adam(network.parameters(), lr=wire.lr)
                  for name, (network, *_) in variants.items()}
    generator = torch.Generator().manual_seed(0)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(1 + args.steps):
        for name, (network, x, step_prompts, step_classes) in variants.items():
            start = time.process_time()
            optimizers[name].zero_grad()
            denoising_loss(network, x, step_prompts, step_classes, generator).backward()
            optimizers[name].step()
            seconds[name].append(time.process_time() - start)
    folded_step = median(seconds["folded 2D (before)"][1:])
    columns = ["generator", "parameters", "step, CPU s (median)", "ratio to folded",
               f"{wire.steps} steps (a site and stage), CPU min"]
    print(*table_header(columns), sep="\n")
    recorder = Recorder.from_args(args, "platform", "benchmarks.generator_step")
    for name, (network, *_) in variants.items():
        step = median(seconds[name][1:])
        parameters = sum(p.numel() for p in network.parameters() if p.requires_grad)
        print(table_row([name, f"{parameters:,}", f"{step:.2f}", f"{step / folded_step:.1f}",
                         f"{step * wire.steps / 60:.1f}"]))
        recorder.record(config, {"parameters": parameters, "cpu_s_per_step_median": step,
                                 "ratio_to_folded": step / folded_step}, seed=0, method=name,
                        variant=variant_of(args.overrides))


if __name__ == "__main__":
    main()
