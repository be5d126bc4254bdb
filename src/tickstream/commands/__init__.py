"""One module per CLI command; each defines ``register(app)``. Discovered by :mod:`tickstream.cli`."""
