"""The one thing pyproject.toml cannot declare without an experimental table: the C extension.

``tickstream.feeds._fastwire`` is the wire decoders' fast path (src/tickstream/feeds/_fastwire*.c).
It is optional: without a C compiler the install still succeeds and the pure-Python decoders run
(``tests/unit/test_fastwire.py`` then fails, saying so; ``/stats`` reports ``decoders.native``).
"""

from setuptools import Extension, setup

FEEDS = "src/tickstream/feeds"

setup(
    ext_modules=[
        Extension(
            "tickstream.feeds._fastwire",
            sources=[
                f"{FEEDS}/_fastwire.c",
                f"{FEEDS}/_fastwire_kite.c",
                f"{FEEDS}/_fastwire_angel.c",
            ],
            depends=[f"{FEEDS}/_fastwire.h"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
