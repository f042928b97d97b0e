"""An experiment on a public dataset: its folder (``data_root``) read by the experiment's preparer
(:mod:`sites.data.recipes`) into the task's manifest, cached in the run directory before training."""

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sites.config import parse
from sites.data.recipes import DataRoots, PreparedManifest, build_recipe
from sites.errors import ConfigError

from .config import RunConfig

#: The manifest's name in the run directory, and that of what the table shows (counts, skipped cases, notes).
MANIFEST = "manifest.csv"
DATASET = "dataset.json"
EXPERIMENTS = "smg_prostate, cmg_brats, pbbl_sbp, pbbl_gbp"


def read_dataset(cfg: DictConfig) -> PreparedManifest | None:
    """The manifest the experiment's preparer builds from ``data_root`` (nothing is written);
    ``None`` for a run without ``data_root`` and without a dataset."""
    config = parse(RunConfig, OmegaConf.to_container(cfg, resolve=True))
    if config.dataset is None:
        if config.data_root is not None:
            raise ConfigError("data_root", f"needs an experiment that names the dataset: +experiment=<name> "
                                           f"({EXPERIMENTS})")
        return None
    recipe = build_recipe(config.dataset)
    if config.data_root is None:
        raise ConfigError("data_root", f"the experiment reads the {recipe.recipe} dataset's folder as "
                                       "downloaded: set data_root=<folder>")
    if config.task.get("manifest") is not None:
        raise ConfigError("task.manifest", "the experiment builds it from data_root; leave it unset")
    roots = {"data_root": config.data_root, "nih_root": config.nih_root, "mimic_root": config.mimic_root}
    paths = {key: None if folder is None else Path(folder).expanduser().resolve() for key, folder in roots.items()}
    for key, path in paths.items():
        if path is not None and not path.is_dir():
            raise ConfigError(key, f"no such folder: {roots[key]}")
    return recipe.prepare(DataRoots(paths["data_root"], config.data_skip_bad, paths["nih_root"],
                                     paths["mimic_root"]),
                          [site.id for site in config.scenario.sites])


def use_manifest(cfg: DictConfig, prepared: PreparedManifest, run_dir: Path) -> Path:
    """Write ``prepared`` into ``run_dir`` (the manifest, and what the table shows) and point
    ``cfg``'s task at it, with the task keys the data decides; the manifest's path."""
    path = run_dir / MANIFEST
    prepared.write(path)
    shown = {"cases": {site: dict(counts) for site, counts in prepared.counts().items()},
             "skipped": prepared.skipped, "notes": prepared.notes}
    (run_dir / DATASET).write_text(json.dumps(shown, indent=2) + "\n")
    OmegaConf.update(cfg, "task.manifest", str(path.resolve()), force_add=True)
    for key, value in prepared.task.items():
        OmegaConf.update(cfg, f"task.{key}", value, force_add=True)
    return path
