"""Bottom layer: registries, options, errors, logging, distribution, image io, checkpoints."""
