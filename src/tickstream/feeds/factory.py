"""``build_feed``: the Feed that Settings ask for (simulator or a real broker), built from Settings.

``feed = "auto"`` resolves to a broker whose credentials are configured, else the simulator
(:meth:`~tickstream.config.Settings.resolved_feed`). With the simulator the *real* Kite client
connects to the simulator's Kite server on loopback (``sim_broker="angelone"`` picks the Angel
client and server instead), so the default run exercises the production code path.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tickstream.feeds.adapter import FeedConfig
from tickstream.feeds.base import Feed

if TYPE_CHECKING:
    from tickstream.config import Settings
    from tickstream.feeds.angelone.auth import AngelAuth, AngelSession
    from tickstream.sim.server import SimServer

__all__ = ["build_feed", "feed_config"]


def feed_config(settings: Settings) -> FeedConfig:
    """The shared client's knobs from Settings."""
    return FeedConfig(
        heartbeat_timeout_factor=settings.heartbeat_timeout_factor,
        reconnect_delay_initial_secs=settings.reconnect_delay_initial_secs,
        reconnect_delay_max_secs=settings.reconnect_delay_max_secs,
        stale_after_secs=settings.stale_after_secs,
        queue_max_batches=settings.feed_queue_max_batches,
    )


def build_feed(
    settings: Settings, sim: SimServer | None = None, *, sim_broker: str = "kite"
) -> Feed:
    """The configured feed (not started). ``sim`` is the running simulator when the feed is sim."""
    kind = settings.resolved_feed()
    config = feed_config(settings)
    if kind == "kite":
        from tickstream.feeds.kite.auth import KiteAuth
        from tickstream.feeds.kite.ticker import KiteTicker

        return KiteTicker(KiteAuth.from_settings(settings), config)
    if kind == "angelone":
        from tickstream.feeds.angelone.auth import AngelAuth
        from tickstream.feeds.angelone.websocket import AngelOneFeed

        return AngelOneFeed(AngelAuth.from_settings(settings), config)
    if sim is None:
        raise ValueError(
            "the simulator feed needs the running SimServer (build_feed(settings, sim))"
        )
    return _sim_feed(sim, config, sim_broker)


def _sim_feed(sim: SimServer, config: FeedConfig, broker: str) -> Feed:
    # The simulator's exchange clock replays a session off-hours: gap events are stamped on it so
    # that they compare with the ticks' ts_exchange (packets keep their receive-time default).
    config = dataclasses.replace(config, exchange_clock_ns=sim.clock.now_ns)
    creds = sim.credentials
    heartbeat = sim.config.heartbeat_s
    if broker == "kite":
        from tickstream.feeds.kite.auth import KiteAuth
        from tickstream.feeds.kite.ticker import KiteTicker

        auth = KiteAuth(creds.kite_api_key, access_token=creds.kite_access_token)
        return KiteTicker(
            auth, config, url=sim.kite_ws_url, heartbeat_secs=heartbeat,
            max_instruments=sim.config.kite_max_instruments,
            max_connections=sim.config.kite_max_connections,
        )  # fmt: skip
    if broker == "angelone":
        from tickstream.feeds.angelone.websocket import AngelOneFeed

        return AngelOneFeed(
            _sim_angel_auth(sim), config, url=sim.angel_ws_url, heartbeat_secs=max(heartbeat, 1.0),
            max_tokens=sim.config.angel_max_tokens,
            max_depth_tokens=sim.config.angel_max_depth_tokens,
            max_connections=sim.config.angel_max_connections,
        )  # fmt: skip
    raise ValueError(f"unknown simulator broker {broker!r}; expected kite or angelone")


def _sim_angel_auth(sim: SimServer) -> AngelAuth:
    """An AngelAuth whose logins are issued by the simulator itself (no REST server needed)."""
    from tickstream.feeds.angelone.auth import AngelAuth

    class SimAngelAuth(AngelAuth):
        async def login(self) -> AngelSession:
            jwt, refresh, feed = sim.issue_angel_tokens()
            self.logins += 1
            return self._use({"jwtToken": jwt, "refreshToken": refresh, "feedToken": feed})

        async def renew(self) -> AngelSession:
            return await self.login()

    c = sim.credentials
    return SimAngelAuth(c.angel_api_key, c.angel_client_code, c.angel_pin, c.angel_totp_secret)
