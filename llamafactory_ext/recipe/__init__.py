"""recipe wing of llamafactory_ext."""
