"""Backoff, error classes and connection slots of the shared reconnect machinery."""

from __future__ import annotations

import asyncio
import random

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Close
from websockets.http11 import Response

from tickstream.feeds.base import AuthError
from tickstream.feeds.supervisor import (
    Backoff,
    ConnectionSlots,
    ErrorClass,
    LivenessTimeout,
    classify,
    describe,
)


def status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", Headers(), b""))


def test_backoff_grows_to_cap_within_jitter_band() -> None:
    backoff = Backoff(0.5, 8.0, factor=2.0, jitter=0.5, rng=random.Random(1))

    delays = [backoff.next_delay() for _ in range(8)]

    bases = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert all(b * 0.5 <= d <= b for d, b in zip(delays, bases, strict=True))
    assert len(set(delays)) == 8  # jittered: no two shards retry in lockstep


def test_backoff_resets_only_after_a_healthy_period() -> None:
    backoff = Backoff(1.0, 30.0, jitter=0.0, healthy_after_s=30.0)
    for _ in range(4):
        backoff.next_delay()

    backoff.connection_ended(healthy_for_s=2.0)  # opened and died: keep backing off
    short_lived = backoff.next_delay()
    backoff.connection_ended(healthy_for_s=31.0)
    after_healthy = backoff.next_delay()

    assert short_lived == 16.0
    assert after_healthy == 1.0


def test_classify_handshake_status_codes() -> None:
    assert classify(status(403)) is ErrorClass.AUTH
    assert classify(status(401)) is ErrorClass.AUTH
    assert classify(status(429)) is ErrorClass.RATE_LIMIT
    assert classify(status(502)) is ErrorClass.TRANSIENT
    assert classify(AuthError("expired")) is ErrorClass.AUTH
    assert classify(ConnectionResetError()) is ErrorClass.TRANSIENT


def test_describe_names_the_cause_without_urls() -> None:
    assert describe(status(429)) == "http_429"
    assert describe(ConnectionClosedError(None, None)) == "closed_no_frame"
    assert describe(ConnectionClosedError(Close(1011, "x"), None)) == "closed_1011"
    assert describe(LivenessTimeout("quiet")) == "heartbeat_timeout"


async def test_slots_never_hand_out_more_than_the_limit() -> None:
    slots = ConnectionSlots(3)
    for _ in range(3):
        await slots.acquire()

    fourth = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    blocked = not fourth.done()
    slots.release()
    await fourth

    assert blocked
    assert slots.in_use == 3 and slots.peak == 3


async def test_slots_cool_down_delays_the_next_socket() -> None:
    slots = ConnectionSlots(2)
    slots.cool_down(0.2)

    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiting = not waiter.done()
    await asyncio.wait_for(waiter, 5)

    assert waiting
    assert slots.in_use == 1
