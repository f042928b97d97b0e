"""Hydra creates the run directory before any of our code runs, and a directory it cannot
create (under a file, or without permission) ends in Hydra's traceback. This callback,
registered under ``hydra.callbacks`` in ``configs/config.yaml``, creates it first and turns
that failure into one line and exit code 2."""

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sites.errors import ConfigError

from .console import exit_with


class CreateOutputDir(Callback):
    """Create ``hydra.run.dir`` (``hydra.sweep.dir`` for a sweep) before Hydra does."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        create_output_dir(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        create_output_dir(config, "hydra.sweep.dir")


def create_output_dir(config: DictConfig, key: str) -> None:
    """Create the directory at ``key`` of ``config``, or exit naming it and why it cannot be."""
    # A value Hydra alone can resolve (``${hydra:...}``) is left to Hydra.
    path = OmegaConf.select(config, key, throw_on_resolution_failure=False)
    if path is None:
        return
    try:
        Path(str(path)).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        exit_with(ConfigError(key, f"cannot create {path}: {error.strerror or error}"))
