"""What one training step of SMD's generator costs on grading volumes, as shipped and with the
volume's structure kept (issue 16: "3D, or slice-consistent").

CPU seconds (``time.process_time``, every thread counted) of one denoising step (forward,
backward, Adam; batch ``replay.generator.batch_size``, widths ``replay.generator.channels``) on
random volumes of grading's shape (4 sequences x ``task.depth`` slices of ``task.image_size``
squared), for:

- ``folded (shipped)``: the replay space of today, sequences x slices as the channels of one 2D
  sample (:func:`sites.diffusion.build_generator`);
- ``slice-wise 2D``: the same diffusers UNet on each slice alone (4 channels, every slice of the
  batch a sample): the spatial cost that any slice-consistent 2D network (a video-style UNet
  adding 1D layers across slices) pays at least;
- ``3D``: MONAI's ``DiffusionModelUNet`` with ``spatial_dims=3`` on the whole volume, the same
  widths, one residual block a level, cross-attention at the lowest level (needs ``einops``).

The variants run interleaved, step by step, so that drift of the machine hits them alike; the
table gives the median step over ``--steps`` after one unmeasured step, its ratio to the
shipped one, and what ``replay.generator.steps`` such steps take per site and stage.

    python -m benchmarks.generator_step
    python -m benchmarks.generator_step --steps 3 -- task.depth=8 task.image_size=16
"""

import argparse
import time

import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from benchmarks.common import compose_config, median
from simulations.formatting import table_header, table_row
from sites.diffusion import build_generator, denoising_loss
from sites.networks.site_diffusion import SiteDiffusion
from sites.protocol import GeneratorConfig
from sites.tasks import build_task


class _Volumetric(nn.Module):
    """MONAI's 3D diffusion UNet behind :class:`SiteDiffusion`'s call: the prompts and a
    learned class token through cross-attention at the lowest level."""

    def __init__(self, in_channels: int, num_classes: int, embed_dim: int, channels: list[int], heads: int) -> None:
        super().__init__()
        self.unet = DiffusionModelUNet(
            spatial_dims=3, in_channels=in_channels, out_channels=in_channels, num_res_blocks=1, channels=channels,
            attention_levels=[False] * (len(channels) - 1) + [True], norm_num_groups=min(8, min(channels)),
            num_head_channels=channels[-1] // heads, with_conditioning=True, cross_attention_dim=embed_dim)
        self.class_tokens = nn.Embedding(num_classes, embed_dim)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, prompts: torch.Tensor,
                classes: torch.Tensor) -> torch.Tensor:
        condition = torch.cat([prompts, self.class_tokens(classes)[:, None]], dim=1)
        return self.unet(x, timesteps, context=condition)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (task=grading is set)")
    args = parser.parse_args()
    config = compose_config(["task=grading", "replay=smd", *args.overrides])
    task, settings = build_task(config["task"]), config["replay"]["generator"]
    torch.set_num_threads(int(config["backend"]["client_cpus"]))
    torch.manual_seed(0)
    wire = GeneratorConfig(settings["channels"], settings["embed_dim"], settings["heads"], settings["steps"],
                           settings["batch_size"], settings["lr"])
    sequences, size = 4, task.image_size
    batch, depth = int(settings["batch_size"]), task.depth
    folded = build_generator(task, wire)
    slice_wise = SiteDiffusion(sequences, size, task.replay_classes, wire.embed_dim, wire.channels, wire.heads)
    volumetric = _Volumetric(sequences, task.replay_classes, wire.embed_dim, wire.channels, wire.heads)
    volumes = torch.rand(batch, sequences, depth, size, size) * 2 - 1
    prompts = torch.randn(batch, settings["prompt_tokens"], wire.embed_dim)
    classes = torch.randint(0, task.replay_classes, (batch,))
    variants = {
        "folded (shipped)": (folded, volumes.flatten(1, 2), prompts, classes),
        "slice-wise 2D": (slice_wise, volumes.transpose(1, 2).flatten(0, 1), prompts.repeat_interleave(depth, 0),
                          classes.repeat_interleave(depth)),
        "3D": (volumetric, volumes, prompts, classes),
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
    shipped = median(seconds["folded (shipped)"][1:])
    columns = ["generator", "parameters", "step, CPU s (median)", "ratio to shipped",
               f"{wire.steps} steps (a site and stage), CPU min"]
    print(*table_header(columns), sep="\n")
    for name, (network, *_) in variants.items():
        step = median(seconds[name][1:])
        parameters = sum(p.numel() for p in network.parameters() if p.requires_grad)
        print(table_row([name, f"{parameters:,}", f"{step:.2f}", f"{step / shipped:.1f}",
                         f"{step * wire.steps / 60:.1f}"]))


if __name__ == "__main__":
    main()
