"""data/converters wing of llamafactory_ext."""
