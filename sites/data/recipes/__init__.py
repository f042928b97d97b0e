"""Preparers: a public dataset's folder, exactly as its publisher distributes it, read into the
manifest a task reads (:mod:`sites.data.manifest`, :mod:`sites.data.segmentation_manifest`,
:mod:`sites.data.brats`).

One module per dataset. A recipe is a config node (``dataset`` in an experiment config,
``configs/experiment/``) whose :meth:`~sites.data.recipes.base.Recipe.prepare` reads the
folder, refuses what it cannot use with one line naming the folder, file, row or column, and
returns the rows, which the run writes into its own directory: nothing is written into the
user's folder.
"""

from typing import Any

from ...config import parse
from ...errors import ConfigError
from .base import BadCase, DataRoots, PreparedManifest, Recipe
from .brats import BratsRecipe
from .pbbl import GbpRecipe, SbpRecipe
from .prostate import ProstateRecipe

#: A ``dataset`` node's ``recipe`` -> its preparer.
RECIPES: dict[str, type[Recipe]] = {"prostate": ProstateRecipe, "brats": BratsRecipe, "pbbl_sbp": SbpRecipe,
                                    "pbbl_gbp": GbpRecipe}


def build_recipe(config: dict[str, Any]) -> Recipe:
    """The preparer a run's ``dataset`` node names by its ``recipe``, validated; a problem is a
    ``ConfigError`` naming the key (``dataset.sites``)."""
    recipe = config.get("recipe")
    if recipe not in RECIPES:
        raise ConfigError("dataset.recipe", f"must be one of {list(RECIPES)} (got {recipe!r})")
    return parse(RECIPES[recipe], config, "dataset")


__all__ = ["RECIPES", "BadCase", "BratsRecipe", "DataRoots", "GbpRecipe", "PreparedManifest", "ProstateRecipe",
           "Recipe", "SbpRecipe", "build_recipe"]
