"""Bottom layer: registries, errors, logging, distribution, image io, checkpoints, command lines."""
