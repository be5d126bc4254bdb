"""tickstream: market data for Indian markets, from broker wire to candles, bus, storage and API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tickstream")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
