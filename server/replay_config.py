"""The ``replay`` config group (:class:`ReplayConfig`): where replay of earlier sites comes from
(:mod:`server.replay`) and the settings of the generator (:mod:`server.smd`)."""

from typing import Annotated

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from sites.config import ConfigModel, invalid


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
    prompt_dropout : float
        Share of training samples whose prompt is replaced by the null prompt, so that the
        generator also learns the site-free model classifier-free guidance needs.
    guidance : float
        Classifier-free guidance scale at sampling: 1 samples each site's model as it is;
        above 1 strengthens what sets the site apart (needs ``prompt_dropout`` > 0).
    """

    channels: Annotated[list[PositiveInt], Field(min_length=2)] = [16, 32, 64]
    embed_dim: PositiveInt = 64
    heads: PositiveInt = 8
    prompt_tokens: PositiveInt = 4
    steps: PositiveInt = 200
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 1.0e-3
    sampling_steps: PositiveInt = 25
    prompt_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    guidance: Annotated[float, Field(ge=0.0)] = 1.0

    @model_validator(mode="after")
    def _guidance_needs_a_site_free_model(self) -> "GeneratorSettings":
        if self.guidance != 1.0 and self.prompt_dropout == 0.0:
            raise invalid("guidance", f"guidance {self.guidance} samples a site-free model that is never trained "
                                      "with prompt_dropout 0: set prompt_dropout > 0 or guidance 1")
        return self


class ReplayConfig(ConfigModel):
    """The ``replay`` config group.

    Parameters
    ----------
    source : str
        A replay source's name in :data:`~server.replay.REPLAY_SOURCES` (``none``, ``smd``,
        ``real``, or a user's) or the import path of its class.
    per_site : int
        Replay samples of each earlier site sent with every stage.
    generator : GeneratorSettings
        ``smd``: the generator's settings.
    """

    source: str = "none"
    per_site: PositiveInt = 32
    generator: GeneratorSettings = GeneratorSettings()

    @field_validator("source")
    @classmethod
    def _a_replay_source(cls, source: str) -> str:
        from .replay import REPLAY_SOURCES  # which imports this module

        return REPLAY_SOURCES.validated(source)
