"""data/parse wing of llamafactory_ext."""
