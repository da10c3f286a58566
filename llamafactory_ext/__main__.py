"""``python -m llamafactory_ext`` is the recipe builder (the main job)."""

from .build_recipe import cli

cli()
