"""Everything the routes share, built once by :func:`tickstream.serve.app.create_app`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tickstream.serve.context import ServeContext
from tickstream.serve.fanout import Hub
from tickstream.serve.metrics import Metrics
from tickstream.serve.resolve import Resolver
from tickstream.serve.security import Authenticator

__all__ = ["ServeState"]


@dataclass
class ServeState:
    ctx: ServeContext
    resolver: Resolver
    auth: Authenticator
    hub: Hub
    metrics: Metrics
    version: str
    started_ns: int = field(default_factory=time.time_ns)
