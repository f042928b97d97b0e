"""Preparers: a public dataset's folder, exactly as its publisher distributes it, read into the
manifest a task reads (:mod:`sites.data.manifest`, :mod:`sites.data.segmentation_manifest`,
:mod:`sites.data.brats`).

One module per dataset. A recipe is a config node (``dataset`` in an experiment config,
``configs/experiment/``) whose :meth:`~sites.data.recipes.base.Recipe.prepare` reads the
folder, refuses what it cannot use with one line naming the folder, file, row or column, and
returns the rows, which the run writes into its own directory: nothing is written into the
user's folder.
"""

from typing import Annotated

from pydantic import Field

from .base import BadCase, DataRoots, PreparedManifest, Recipe
from .brats import BratsRecipe
from .pbbl import GbpRecipe, SbpRecipe
from .prostate import ProstateRecipe

#: The ``dataset`` node of a run: the recipe named by its ``recipe`` key.
AnyRecipe = Annotated[ProstateRecipe | BratsRecipe | SbpRecipe | GbpRecipe, Field(discriminator="recipe")]

__all__ = ["AnyRecipe", "BadCase", "BratsRecipe", "DataRoots", "GbpRecipe", "PreparedManifest", "ProstateRecipe",
           "Recipe", "SbpRecipe"]
