"""A running replay: merged store pages, paced, with pause/resume/seek/speed and checkpoints.

:meth:`Replay.run` drives the whole thing and hands each batch of replayed ticks to a
``deliver`` coroutine (the pipeline's ``put``, a Kafka producer, a WebSocket). Only after
``deliver`` returns does the batch count as handed downstream: the per-instrument positions
move, and every ``checkpoint_every`` ticks or ``checkpoint_secs`` seconds (and at the end)
``before_checkpoint`` is awaited
(e.g. "the pipeline processed everything queued", "Kafka acknowledged every message") and the
checkpoint file is replaced. A replay killed at any point and started again with the same id
resumes strictly after its checkpoint.

Replayed ticks are the stored ticks with ``source="replay"``; everything else (``ts_exchange``,
``ts_recv``, ``seq``, prices, status) is kept. Keeping ``ts_recv`` makes a replayed tick's store
identity (content digest) the same every time the same day is replayed, so a second replay adds no
rows, while the changed ``source`` keeps it apart from the live row it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from tickstream.model import Instrument, Tick
from tickstream.replay.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, tick_key
from tickstream.replay.merge import PageMerger
from tickstream.replay.pacing import Pacer
from tickstream.replay.source import REPLAY_SOURCE, Prefetch, store_pages
from tickstream.replay.window import window_chunks
from tickstream.storage.base import TickKey, TickStore

__all__ = ["Deliver", "Replay", "ReplaySpec", "ReplaySummary"]

log = logging.getLogger(__name__)
Deliver = Callable[[list[Tick]], Awaitable[None]]
_MAX = 2**63 - 1
_SLEEP_SLICE_S = 0.05  # longest single sleep, so pause/seek/speed act promptly


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """What to replay: instruments (sorted by (exchange, token) for tie-breaks) and a range."""

    instruments: tuple[Instrument, ...]
    start_ns: int
    end_ns: int
    speed: float | None = None  # exchange seconds per second; None = max
    batch_size: int = 1000
    page_size: int = 10_000
    sources: frozenset[str] | None = None  # live sources to replay; None = all but "replay"

    def instrument_keys(self) -> list[str]:
        return [i.key for i in self.instruments]


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    replay_id: str | None
    emitted: int
    first_ts: int | None
    last_ts: int | None
    wall_secs: float
    resumed: bool
    done: bool


class Replay:
    """One replay of stored ticks; see the module docstring."""

    def __init__(
        self,
        store: TickStore,
        spec: ReplaySpec,
        *,
        replay_id: str | None = None,
        checkpoint: Path | None = None,
        checkpoint_every: int = 50_000,
        checkpoint_secs: float = 5.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        read_windows: bool = True,
    ) -> None:
        self.store, self.spec = store, spec
        self.replay_id = replay_id
        self._cp_path = checkpoint
        self._cp_every = checkpoint_every
        self._cp_secs = checkpoint_secs
        self._cp_at = time.monotonic()
        self._clock = clock or time.monotonic
        self._sleep = sleep
        self._read_windows = read_windows  # False: per-instrument pages even where windows work
        self._pacer = Pacer(spec.speed)
        self._running = asyncio.Event()
        self._running.set()
        self._seek_to: int | None = None
        self._positions: dict[str, TickKey] = {}
        self._pending: list[list[Tick]] = []  # delivered since the last checkpoint
        self._pending_n = 0
        self.emitted = 0
        self.first_ts: int | None = None
        self.position_ns: int | None = None  # ts_exchange of the last tick handed downstream
        self._yielded_ts: int | None = None  # ts_exchange of the last tick being handed over
        self.resumed = False
        self.done = False
        self._loaded = False

    # ------------------------------------------------------------------------------ controls
    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def speed(self) -> float | None:
        return self._pacer.speed

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        """Continue from where it paused; the schedule re-anchors there (no catch-up burst)."""
        if not self._running.is_set():
            self._pacer.reset()
            self._running.set()

    def seek(self, ts_ns: int) -> None:
        """Continue with the first tick at or after ``ts_ns`` (forwards or backwards)."""
        self._seek_to = max(self.spec.start_ns, min(ts_ns, self.spec.end_ns))

    def set_speed(self, speed: float | None) -> None:
        self._pacer.set_speed(speed, self._yielded_ts, self._clock())

    # ------------------------------------------------------------------------------ running
    async def run(
        self,
        deliver: Deliver,
        *,
        before_checkpoint: Callable[[], Awaitable[object]] | None = None,
        retag: bool = True,
    ) -> ReplaySummary:
        """Replay to the end (or until cancelled), handing batches to ``deliver``.

        ``retag=False`` hands over the stored ticks as they are (their own ``source``)."""
        t0 = time.monotonic()
        self.load()
        async for part in self._stream():
            if retag:
                await deliver([msgspec.structs.replace(t, source=REPLAY_SOURCE) for t in part])
            else:
                await deliver(part)
            self._mark(part)
            if self._checkpoint_due():
                await self.checkpoint(before_checkpoint)
            if self._pacer.speed is None:
                await asyncio.sleep(0)  # max speed: never sleep, but let the loop run
        self.done = True
        await self.checkpoint(before_checkpoint)
        return self.summary(time.monotonic() - t0)

    def _checkpoint_due(self) -> bool:
        if self._cp_path is None or not self._pending_n:
            return False
        return self._pending_n >= self._cp_every or time.monotonic() - self._cp_at >= self._cp_secs

    def summary(self, wall_secs: float = 0.0) -> ReplaySummary:
        return ReplaySummary(
            self.replay_id, self.emitted, self.first_ts, self.position_ns, wall_secs,
            self.resumed, self.done,
        )  # fmt: skip

    async def checkpoint(self, before: Callable[[], Awaitable[object]] | None = None) -> None:
        """Record the positions of everything delivered so far (after ``before`` completes)."""
        if self._cp_path is None:
            return
        if before is not None:
            await before()
        self._fold_pending()
        self._cp_at = time.monotonic()
        cp = Checkpoint(
            replay_id=self.replay_id or self._cp_path.stem,
            start_ns=self.spec.start_ns,
            end_ns=self.spec.end_ns,
            instruments=self.spec.instrument_keys(),
            positions={k: (v[0], v[1], v[2]) for k, v in self._positions.items()},
            emitted=self.emitted,
            done=self.done,
        )
        await asyncio.to_thread(save_checkpoint, self._cp_path, cp)

    @property
    def positions(self) -> dict[str, TickKey]:
        """Per instrument key, the store key of the last tick delivered (after :meth:`load`,
        what the checkpoint recorded)."""
        self._fold_pending()
        return dict(self._positions)

    def load(self) -> bool:
        """Read the checkpoint (once); True when this replay resumes an earlier one."""
        if not self._loaded:
            self._loaded = True
            self._load_checkpoint()
        return self.resumed

    def _load_checkpoint(self) -> None:
        if self._cp_path is None:
            return
        cp = load_checkpoint(self._cp_path)
        if cp is None:
            return
        if (cp.start_ns, cp.end_ns, cp.instruments) != (
            self.spec.start_ns, self.spec.end_ns, self.spec.instrument_keys()
        ):  # fmt: skip
            raise ValueError(
                f"checkpoint {self._cp_path.name} belongs to a different replay "
                "(instruments or time range differ); use another replay id"
            )
        self._positions = {k: TickKey(*v) for k, v in cp.positions.items()}
        self.emitted = cp.emitted
        self.resumed = True
        log.info("replay %s resumes after %d ticks", cp.replay_id, cp.emitted)

    def _mark(self, part: list[Tick]) -> None:
        if self.first_ts is None:
            self.first_ts = part[0].ts_exchange
        self.position_ns = part[-1].ts_exchange
        self.emitted += len(part)
        self._pending.append(part)
        self._pending_n += len(part)

    def _fold_pending(self) -> None:
        """Move the last delivered tick of each instrument into the positions."""
        seen: set[str] = set()
        for part in reversed(self._pending):
            for t in reversed(part):
                key = t.key
                if key not in seen:
                    seen.add(key)
                    self._positions[key] = tick_key(t)
        self._pending.clear()
        self._pending_n = 0

    # ------------------------------------------------------------------------------ stream
    async def _stream(self) -> AsyncIterator[list[Tick]]:
        """Original (untagged) ticks in global order, paced, obeying the controls."""
        while True:
            async with contextlib.aclosing(self._chunks()) as chunks:
                async for part in self._paced(_whole_batches(chunks, self.spec.batch_size)):
                    yield part
            if self._seek_to is None:
                return
            self._apply_seek()

    def _apply_seek(self) -> None:
        ts, self._seek_to = self._seek_to, None
        assert ts is not None
        self._fold_pending()
        start = TickKey(ts - 1, _MAX, _MAX)  # sorts after every row before ts
        self._positions = {k: start for k in self.spec.instrument_keys()}
        self._pacer.reset()

    def _chunks(self) -> AsyncGenerator[list[Tick], None]:
        """Merged, unpaced ticks from the current positions on: one query per time window for
        all instruments where the store reads windows (DuckDB, see :mod:`.window`), else each
        instrument's keyset pages merged by :class:`PageMerger`. Same ticks, same order."""
        spec = self.spec
        self._fold_pending()
        read = getattr(self.store, "query_tick_window", None) if self._read_windows else None
        if read is not None:
            return window_chunks(
                read, spec.instruments, spec.start_ns, spec.end_ns,
                dict(self._positions), target=spec.page_size, sources=spec.sources,
            )  # fmt: skip
        return self._page_chunks()

    async def _page_chunks(self) -> AsyncGenerator[list[Tick], None]:
        feeds = self._open_feeds()
        merger = PageMerger(len(feeds))
        try:
            while not merger.finished:
                for s in merger.need():
                    merger.feed(s, await feeds[s].next())
                chunk = merger.take()
                if chunk:
                    yield chunk
        finally:
            for f in feeds:
                await f.aclose()

    def _open_feeds(self) -> list[Prefetch]:
        spec = self.spec
        feeds = []
        for inst in spec.instruments:
            pages = store_pages(
                self.store, inst.exchange, inst.token, spec.start_ns, spec.end_ns,
                after=self._positions.get(inst.key), page_size=spec.page_size,
                sources=spec.sources,
            )  # fmt: skip
            feeds.append(Prefetch(pages))
        for f in feeds:
            f.start()
        return feeds

    async def _paced(self, chunks: AsyncIterator[list[Tick]]) -> AsyncIterator[list[Tick]]:
        batch = self.spec.batch_size
        async for chunk in chunks:
            start = 0
            while start < len(chunk):
                if self._seek_to is not None:
                    return
                if not self._running.is_set():
                    await self._running.wait()
                    continue
                end = min(await self._due_end(chunk, start), start + batch)
                if end > start:
                    self._yielded_ts = chunk[end - 1].ts_exchange
                    yield chunk[start:end]
                    start = end

    async def _due_end(self, chunk: list[Tick], start: int) -> int:
        """End of the part of ``chunk[start:]`` that is due now; sleeps (a slice) when none is."""
        pacer, now = self._pacer, self._clock()
        end = pacer.split_due(chunk, start, now)
        if end == start:
            wait = pacer.due(chunk[start].ts_exchange) - now
            await self._sleep(min(max(wait, 0.0), _SLEEP_SLICE_S))
        return end


async def _whole_batches(
    chunks: AsyncIterator[list[Tick]], batch: int
) -> AsyncGenerator[list[Tick], None]:
    """The same ticks re-cut so every chunk but the last holds a multiple of ``batch``: at max
    speed batches are then full however the source cut its reads (pages, windows)."""
    carry: list[Tick] = []
    async for chunk in chunks:
        chunk = carry + chunk if carry else chunk
        cut = len(chunk) - len(chunk) % batch
        carry = chunk[cut:]
        if cut:
            yield chunk[:cut] if carry else chunk
    if carry:
        yield carry
