"""data/sources wing of llamafactory_ext."""
