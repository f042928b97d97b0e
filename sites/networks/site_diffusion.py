"""The denoiser of Site-Modulated Diffusion (docs/design.md#smd): diffusers' conditional UNet for
images, MONAI's diffusion UNet for volumes."""

from collections.abc import Sequence

import torch
from diffusers import UNet2DConditionModel
from monai.networks.nets import DiffusionModelUNet
from torch import nn


class SiteDiffusion(nn.Module):
    """A noise-prediction UNet conditioned, through cross-attention, on a site's prompt tokens
    and (for classification tasks) a learned class token.

    The prompts are not part of the module: each site owns and trains its own ``(n_tokens,
    embed_dim)`` tensor and passes it in, so one shared network serves every site.

    Parameters
    ----------
    spatial_dims : int
        2 (images: diffusers' ``UNet2DConditionModel``) or 3 (volumes: MONAI's
        ``DiffusionModelUNet``, whose convolutions keep the order of the slices).
    in_channels : int
        Channels of a sample (e.g. image and mask for segmentation; the four sequences of a
        grading volume).
    sample_size : int or sequence of int
        The spatial size of a sample, one number for every dimension or one each.
    num_classes : int
        Classes of the class token; 0 for tasks whose label is generated as a channel.
    embed_dim : int
        Width of the prompt and class tokens (the UNet's cross-attention dimension).
    channels : sequence of int
        UNet feature channels per level, one residual block each; cross-attention only at the
        lowest resolution, where it costs least.
    heads : int
        Attention heads (diffusers calls this ``attention_head_dim``); they must divide the
        last level's channels.

    Shapes: ``x`` ``(B, in_channels, *spatial)``, ``timesteps`` ``(B,)``, ``prompts`` ``(B, T,
    embed_dim)``, ``classes`` ``(B,)`` int64 or ``None``; output ``(B, in_channels, *spatial)``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, sample_size: int | Sequence[int], num_classes: int = 0,
                 embed_dim: int = 64, channels: Sequence[int] = (16, 32, 64), heads: int = 8) -> None:
        super().__init__()
        spatial = (sample_size,) * spatial_dims if isinstance(sample_size, int) else tuple(sample_size)
        if len(spatial) != spatial_dims or spatial_dims not in (2, 3):
            raise ValueError(f"SiteDiffusion generates images (spatial_dims 2) or volumes (3), got spatial_dims "
                             f"{spatial_dims} with sample_size {sample_size}")
        if channels[-1] % heads:
            raise ValueError(f"heads ({heads}) must divide the last level's channels ({channels[-1]})")
        self.sample_shape = (in_channels, *spatial)
        levels = len(channels)
        if spatial_dims == 2:
            self.unet = UNet2DConditionModel(
                sample_size=spatial[0] if spatial[0] == spatial[1] else spatial,
                in_channels=in_channels,
                out_channels=in_channels,
                block_out_channels=tuple(channels),
                layers_per_block=1,
                down_block_types=("DownBlock2D",) * (levels - 1) + ("CrossAttnDownBlock2D",),
                up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1),
                norm_num_groups=min(8, min(channels)),
                cross_attention_dim=embed_dim,
                attention_head_dim=heads,
                # The mean condition token also joins the timestep embedding, which every
                # residual block receives: a global path for site-wide traits (intensity,
                # contrast) besides the cross-attention.
                class_embed_type="projection",
                projection_class_embeddings_input_dim=embed_dim,
            )
        else:
            halvings = 2 ** (levels - 1)
            if any(size % halvings for size in spatial):
                raise ValueError(f"a 3D SiteDiffusion of {levels} levels halves every spatial size {levels - 1} "
                                 f"times: sample_size {spatial} must be divisible by {halvings}")
            self.unet = DiffusionModelUNet(
                spatial_dims=3, in_channels=in_channels, out_channels=in_channels, num_res_blocks=1,
                channels=tuple(channels), attention_levels=(False,) * (levels - 1) + (True,),
                norm_num_groups=min(8, min(channels)), num_head_channels=channels[-1] // heads,
                with_conditioning=True, cross_attention_dim=embed_dim, num_class_embeds=1)
            # The same global path as in 2D: MONAI adds its class embedding to the timestep
            # embedding, so a projection of the mean condition token takes the lookup table's place.
            self.unet.class_embedding = nn.Linear(embed_dim, 4 * channels[0])
        self.class_tokens = nn.Embedding(num_classes, embed_dim) if num_classes > 0 else None

    def condition(self, prompts: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        """``(B, T [+ 1], embed_dim)``: the prompt tokens, followed by the class token if any."""
        if self.class_tokens is None:
            return prompts
        if classes is None:
            raise ValueError("this SiteDiffusion is class-conditional: pass classes")
        return torch.cat([prompts, self.class_tokens(classes)[:, None]], dim=1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, prompts: torch.Tensor,
                classes: torch.Tensor | None = None) -> torch.Tensor:
        condition = self.condition(prompts, classes)
        if isinstance(self.unet, UNet2DConditionModel):
            return self.unet(x, timesteps, encoder_hidden_states=condition, class_labels=condition.mean(dim=1)).sample
        return self.unet(x, timesteps, context=condition, class_labels=condition.mean(dim=1))
