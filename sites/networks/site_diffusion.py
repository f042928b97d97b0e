"""The denoiser of Site-Modulated Diffusion (DESIGN.md §1.1): diffusers' conditional UNet."""

from collections.abc import Sequence

import torch
from diffusers import UNet2DConditionModel
from torch import nn


class SiteDiffusion(nn.Module):
    """A noise-prediction UNet conditioned, through cross-attention, on a site's prompt tokens
    and (for classification tasks) a learned class token.

    The prompts are not part of the module: each site owns and trains its own ``(n_tokens,
    embed_dim)`` tensor and passes it in, so one shared network serves every site.

    Parameters
    ----------
    in_channels : int
        Channels of a sample (e.g. image and mask for segmentation; modalities x slices for
        grading volumes folded into channels).
    sample_size : int
        Height and width of a sample (square).
    num_classes : int
        Classes of the class token; 0 for tasks whose label is generated as a channel.
    embed_dim : int
        Width of the prompt and class tokens (the UNet's cross-attention dimension).
    channels : sequence of int
        UNet feature channels per level; cross-attention only at the lowest resolution, where
        it costs least.
    heads : int
        Attention heads (diffusers calls this ``attention_head_dim``).

    Shapes: ``x`` ``(B, in_channels, S, S)``, ``timesteps`` ``(B,)``, ``prompts`` ``(B, T,
    embed_dim)``, ``classes`` ``(B,)`` int64 or ``None``; output ``(B, in_channels, S, S)``.
    """

    def __init__(self, in_channels: int, sample_size: int, num_classes: int = 0, embed_dim: int = 64,
                 channels: Sequence[int] = (16, 32, 64), heads: int = 8) -> None:
        super().__init__()
        levels = len(channels)
        self.unet = UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=in_channels,
            block_out_channels=tuple(channels),
            layers_per_block=1,
            down_block_types=("DownBlock2D",) * (levels - 1) + ("CrossAttnDownBlock2D",),
            up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1),
            norm_num_groups=min(8, min(channels)),
            cross_attention_dim=embed_dim,
            attention_head_dim=heads,
            # The mean condition token also joins the timestep embedding, which every residual
            # block receives: a global path for site-wide traits (intensity, contrast) besides
            # the cross-attention.
            class_embed_type="projection",
            projection_class_embeddings_input_dim=embed_dim,
        )
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
        return self.unet(x, timesteps, encoder_hidden_states=condition, class_labels=condition.mean(dim=1)).sample
