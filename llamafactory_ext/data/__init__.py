"""data wing of llamafactory_ext."""
