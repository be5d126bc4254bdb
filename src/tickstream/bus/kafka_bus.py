"""Kafka bus (confluent-kafka): enveloped JSON events keyed by ``exchange:token``.

Topics ``raw_ticks``, ``normalized_ticks``, ``candles`` (and any Bus topic: ``:`` is not legal in
Kafka names, so ``market:ticks`` travels as ``market.ticks``). Every message is an event envelope
(:mod:`tickstream.bus.envelope`) whose id is deterministic, so redeliveries are recognisable.

Producer: idempotent, ``acks=all`` set explicitly. librdkafka retries transient failures itself
until ``delivery.timeout.ms``; a message that still fails is produced again (``max_attempts``)
and, if it keeps failing, :class:`KafkaDeliveryError` is raised from the next ``publish`` or
``flush`` — a failure is never just logged. ``flush()`` returns only when every message is
acknowledged by the broker: that is what "durable" means for the process workers.

Bus subscriptions: fan-out like pub/sub. Each one is a consumer with its own unique group that is
*assigned* every partition at its high watermark before ``subscribe`` returns, so nothing
published afterwards is missed. Topics the bus creates have ``default_partitions`` (1: one total
order, as the conformance suite expects) unless ``partitions`` names them (the scale-out topics
get 6). The at-least-once group consumer for workers is :mod:`tickstream.bus.kafka_group`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tickstream.bus import base
from tickstream.bus._subscription import BufferedSubscription
from tickstream.bus.base import BusClosedError, Overflow
from tickstream.bus.envelope import decode_envelope, encode_envelope

__all__ = [
    "TOPIC_CANDLES",
    "TOPIC_NORMALIZED_TICKS",
    "TOPIC_RAW_TICKS",
    "KafkaBus",
    "KafkaDeliveryError",
    "KafkaProducer",
    "ensure_topics",
    "kafka_topic",
]

log = logging.getLogger(__name__)

TOPIC_RAW_TICKS: Final = "raw_ticks"
TOPIC_NORMALIZED_TICKS: Final = "normalized_ticks"
TOPIC_CANDLES: Final = "candles"
SCALEOUT_PARTITIONS: Final = 6


class KafkaDeliveryError(RuntimeError):
    """A message could not be delivered after every retry."""


class KafkaTopicNotReadyError(RuntimeError):
    """A topic's partitions did not get leaders in time, so there is nothing to read from."""


def kafka_topic(name: str) -> str:
    """Kafka topic names allow ``[a-zA-Z0-9._-]``: ``market:ticks`` becomes ``market.ticks``."""
    return name.replace(":", ".")


async def ensure_topics(admin: AdminClient, topics: Mapping[str, int]) -> None:
    """Create the missing topics (name -> partitions); an existing topic is left as it is."""
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()],
        operation_timeout=10.0,
    )
    for topic, fut in futures.items():
        try:
            await asyncio.wrap_future(fut)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.debug("topic %s ready", topic)


class KafkaProducer:
    """Async face of an idempotent confluent-kafka producer; failures surface, never vanish."""

    def __init__(
        self,
        bootstrap: str,
        *,
        source: str = "tickstream",
        config: Mapping[str, Any] | None = None,
        max_attempts: int = 3,
    ) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "delivery.timeout.ms": 120_000,
            # Only failures come back as callbacks: success needs no per-message Python call.
            "delivery.report.only.error": True,
        }
        conf.update(config or {})
        self._producer = Producer(conf)
        self.source = source
        self._max_attempts = max_attempts
        self._failed: list[tuple[str, bytes | None, bytes, int, KafkaError]] = []
        self._fatal: KafkaDeliveryError | None = None
        self.produced = 0
        self.failed = 0
        self.retried = 0

    def __len__(self) -> int:
        return len(self._producer)

    @property
    def delivered(self) -> int:
        """Messages acknowledged by the broker (exact once ``flush`` has returned)."""
        return self.produced - len(self._producer) - self.failed

    def _on_delivery(self, attempt: int, err: KafkaError | None, msg: Message) -> None:
        if err is None:  # only with delivery.report.only.error turned off
            return
        self.failed += 1
        value = msg.value() or b""
        self._failed.append((msg.topic() or "", msg.key(), value, attempt, err))

    def _check(self) -> None:
        """Re-produce failed messages, or raise once one has used up its attempts."""
        if self._fatal is not None:
            raise self._fatal
        failed, self._failed = self._failed, []
        for topic, key, value, attempt, err in failed:
            if attempt >= self._max_attempts or err.fatal():
                self._fatal = KafkaDeliveryError(
                    f"delivery to {topic} failed after {attempt} attempts: {err.str()}"
                )
                raise self._fatal
            log.warning("delivery to %s failed (%s); retrying", topic, err.str())
            self.retried += 1
            self.failed -= 1
            self.produced -= 1  # _produce counts it again
            self._produce(topic, value, key, attempt + 1)

    def _produce(self, topic: str, value: bytes, key: bytes | str | None, attempt: int) -> None:
        callback = functools.partial(self._on_delivery, attempt)
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=callback)
                self.produced += 1
                return
            except BufferError:  # local queue full: serve callbacks and try again
                self._producer.poll(0.05)

    def produce(self, topic: str, value: Any, key: str | None = None, *, ts_ns: int = 0) -> None:
        """Queue one enveloped event (non-blocking, except while the local queue is full)."""
        self._check()
        payload = encode_envelope(value, source=self.source, ts=ts_ns or time.time_ns())
        self._produce(topic, payload, key, 1)

    def produce_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None:
        self._check()
        now = time.time_ns()
        produce = self._producer.produce
        callback = functools.partial(self._on_delivery, 1)
        for i, value in enumerate(values):
            payload = encode_envelope(value, source=self.source, ts=now)
            key = keys[i] if keys is not None else getattr(value, "key", None)
            try:
                produce(topic, payload, key, on_delivery=callback)
            except BufferError:
                self._produce(topic, payload, key, 1)
                continue
            self.produced += 1
        self._producer.poll(0)

    def poll(self) -> None:
        self._producer.poll(0)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the broker acknowledged every queued message; raise on failure."""
        async with asyncio.timeout(timeout):
            while True:
                self._producer.poll(0)
                self._check()
                if len(self._producer) == 0 and not self._failed:
                    return
                await asyncio.sleep(0.005)

    def flush_sync(self, timeout: float) -> None:
        """Blocking flush, for rebalance callbacks that cannot await."""
        remaining = self._producer.flush(timeout)
        self._check()
        if remaining:
            raise KafkaDeliveryError(f"{remaining} messages still unacknowledged after flush")


class KafkaSubscription(BufferedSubscription):
    """Fan-out reader: a private consumer assigned every partition from the high watermark."""

    def __init__(
        self, bus: KafkaBus, topic: str, type_: type[Any] | None, maxsize: int, ovf: Overflow
    ) -> None:
        super().__init__(topic, maxsize, ovf, on_close=bus._unsubscribe)
        self._type = type_
        self._consumer = Consumer(
            {
                "bootstrap.servers": bus.bootstrap,
                "group.id": f"tickstream-sub-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        self._task: asyncio.Task[None] | None = None
        self._stop = False
        self.errors = 0

    async def _start(self, ktopic: str) -> None:
        self._consumer.assign(await asyncio.to_thread(self._positions, ktopic))
        self._task = asyncio.create_task(self._run(), name=f"kafka-sub:{ktopic}")

    def _positions(self, ktopic: str) -> list[TopicPartition]:
        parts = self._partitions(ktopic)
        out = []
        for p in parts:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(ktopic, p), timeout=10.0, cached=False
            )
            out.append(TopicPartition(ktopic, p, high))
        return out

    def _partitions(self, ktopic: str, timeout: float = 30.0) -> list[int]:
        """The topic's partitions once every one has a leader.

        Right after CreateTopics (above all on a freshly started broker) the metadata can list the
        topic with no partitions or leaderless ones; assigning that would read nothing, forever.
        """
        end = time.monotonic() + timeout
        while True:
            meta = self._consumer.list_topics(ktopic, timeout=10.0).topics.get(ktopic)
            parts = meta.partitions if meta is not None and meta.error is None else {}
            if parts and all(p.leader >= 0 and p.error is None for p in parts.values()):
                return sorted(parts)
            if time.monotonic() >= end:
                raise KafkaTopicNotReadyError(
                    f"kafka topic {ktopic} has no ready partitions after {timeout:.0f}s"
                )
            time.sleep(0.1)

    async def _run(self) -> None:
        while not self._stop:
            msgs = await asyncio.to_thread(self._consumer.consume, 500, 0.1)
            for m in msgs:
                if m.error() is not None:
                    self.errors += 1
                    log.warning("kafka consume error on %s: %s", self.topic, m.error())
                    continue
                await self._deliver(m)

    async def _deliver(self, m: Message) -> None:
        try:
            _header, value = decode_envelope(m.value() or b"", self._type)
        except ValueError as exc:
            self.errors += 1
            log.warning("undecodable event on %s: %s", self.topic, exc)
            return
        key = m.key()
        await self.put(base.Message(self.topic, value, key.decode() if key else None))

    async def _stop_reader(self) -> None:
        self._stop = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self._consumer.close)


class KafkaBus:
    """Bus over Kafka; see the module docstring for topics, envelope and delivery guarantees."""

    name = "kafka"

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        source: str = "tickstream",
        default_partitions: int = 1,
        partitions: Mapping[str, int] | None = None,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self._default_partitions = default_partitions
        self._partitions = {
            TOPIC_RAW_TICKS: SCALEOUT_PARTITIONS,
            TOPIC_NORMALIZED_TICKS: SCALEOUT_PARTITIONS,
            TOPIC_CANDLES: SCALEOUT_PARTITIONS,
        } | dict(partitions or {})
        self.producer = KafkaProducer(bootstrap, source=source, config=producer_config)
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._ready: set[str] = set()
        self._subs: dict[str, list[KafkaSubscription]] = {}
        self._published: dict[str, int] = {}
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        self._closed = False
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop(), name="kafka-producer-poll")

    async def _poll_loop(self) -> None:
        while True:
            self.producer.poll()
            await asyncio.sleep(0.05)

    async def _topic(self, topic: str) -> str:
        ktopic = kafka_topic(topic)
        if ktopic not in self._ready:
            n = self._partitions.get(topic, self._partitions.get(ktopic, self._default_partitions))
            await ensure_topics(self._admin, {ktopic: n})
            self._ready.add(ktopic)
        return ktopic

    async def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        if self._closed:
            raise BusClosedError("publish on a closed bus")
        self.producer.produce(await self._topic(topic), value, key)
        self._published[topic] = self._published.get(topic, 0) + 1

    async def publish_many(
        self, topic: str, values: Sequence[Any], keys: Sequence[str | None] | None = None
    ) -> None:
        if self._closed:
            raise BusClosedError("publish on a closed bus")
        if keys is not None and len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        self.producer.produce_many(await self._topic(topic), values, keys)
        self._published[topic] = self._published.get(topic, 0) + len(values)

    async def flush(self, timeout: float | None = None) -> None:
        await self.producer.flush(timeout)

    async def subscribe(
        self,
        topic: str,
        *,
        type_: type[Any] | None = None,
        maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> KafkaSubscription:
        if self._closed:
            raise BusClosedError("subscribe on a closed bus")
        sub = KafkaSubscription(self, topic, type_, maxsize, overflow)
        await sub._start(await self._topic(topic))
        self._subs.setdefault(topic, []).append(sub)
        return sub

    async def _unsubscribe(self, sub: BufferedSubscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs and sub in subs:
            subs.remove(sub)
        if isinstance(sub, KafkaSubscription):
            await sub._stop_reader()

    def stats(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "published": dict(self._published),
            "delivered": self.producer.delivered,
            "retried": self.producer.retried,
            "in_flight": len(self.producer),
            "subscriptions": {t: [s.stats() for s in subs] for t, subs in self._subs.items()},
        }

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.close()
        self._subs.clear()
        try:
            await self.producer.flush(timeout=30.0)
        finally:
            if self._poller is not None:
                self._poller.cancel()
                await asyncio.gather(self._poller, return_exceptions=True)
                self._poller = None
