"""The ``replay`` config group (:class:`ReplayConfig`): where replay of earlier sites comes from
(:mod:`server.replay`) and the settings of the generator (:mod:`server.smd`)."""

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt

from sites.config import ConfigModel

class GeneratorSettings(ConfigModel):
    """``replay.generator``: the replay generator of ``source: smd``.

    Parameters
    ----------
    channels : list of int
        UNet widths per level (at least two); cross-attention at the lowest level.
    embed_dim : int
        Width of the prompt and class tokens.
    heads : int
        Attention heads.
    prompt_tokens : int
        Learnable tokens per site.
    steps : int
        Generator training steps per site and stage.
    batch_size : int
        Generator training batch size.
    lr : float
        Generator learning rate.
    sampling_steps : int
        DDIM steps per sample.
    """

    channels: Annotated[list[PositiveInt], Field(min_length=2)] = [16, 32, 64]
    embed_dim: PositiveInt = 64
    heads: PositiveInt = 8
    prompt_tokens: PositiveInt = 4
    steps: PositiveInt = 200
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 1.0e-3
    sampling_steps: PositiveInt = 25


class ReplayConfig(ConfigModel):
    """The ``replay`` config group.

    Parameters
    ----------
    source : str
        ``none``, ``smd`` or ``real`` (see above).
    per_site : int
        Replay samples of each earlier site sent with every stage.
    generator : GeneratorSettings
        ``smd``: the generator's settings.
    """

    source: Literal["none", "smd", "real"] = "none"
    per_site: PositiveInt = 32
    generator: GeneratorSettings = GeneratorSettings()
