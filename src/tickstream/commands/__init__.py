"""One module per CLI command, each with ``register(app)``; found by :mod:`tickstream.cli`."""
