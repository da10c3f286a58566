"""data/normalize wing of llamafactory_ext."""
