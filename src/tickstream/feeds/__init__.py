"""Broker feeds: the Feed protocol, the Kite and Angel One clients, auth, instruments, history.

Start with :func:`tickstream.feeds.factory.build_feed` (re-exported here lazily, so importing
this package stays cheap for the wire codecs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tickstream.feeds.factory import build_feed

__all__ = ["build_feed"]


def __getattr__(name: str) -> Any:
    if name == "build_feed":
        from tickstream.feeds.factory import build_feed

        return build_feed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
