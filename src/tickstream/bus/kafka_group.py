"""At-least-once Kafka group consumer for the process workers.

Offsets are never committed automatically: the worker commits a partition's next offset only
after the outputs of everything before it are durable (:meth:`KafkaGroupConsumer.commit`). Each
commit may carry per-partition metadata (the worker stores where its state must be rebuilt from).

Rebalances run inside ``poll`` on the event-loop thread (``consume`` with a zero timeout, never
blocking the loop), so the callbacks see a consistent worker: ``on_revoke`` lets the worker flush
and commit before partitions move, ``on_assign`` reports each partition's committed offset and
metadata and may choose the offset to start reading from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from tickstream.bus.envelope import EnvelopeHeader, decode_envelope
from tickstream.model import Tick

__all__ = ["Assignment", "KafkaGroupConsumer", "Record"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    header: EnvelopeHeader
    value: Any


@dataclass(slots=True)
class Assignment:
    """A newly assigned partition: ``committed`` is -1 when the group has no offset for it.

    ``start`` is where reading begins; an ``on_assign`` callback may move it (to rebuild state
    from before the committed offset, say).
    """

    topic: str
    partition: int
    committed: int
    metadata: str
    start: int


_REBALANCE_CODES = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._NO_OFFSET,
        KafkaError._STATE,
    }
)

AssignCallback = Callable[[list[Assignment]], None]
# (partitions, lost): lost partitions may already belong to another member; do not commit them.
RevokeCallback = Callable[[list[tuple[str, int]], bool], None]


class KafkaGroupConsumer:
    """Group member that hands out decoded records and commits only when told to."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        group_id: str,
        *,
        type_: type[Any] | None = Tick,
        on_assign: AssignCallback | None = None,
        on_revoke: RevokeCallback | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 3_000,
        }
        conf.update(config or {})
        self._consumer = Consumer(conf)
        self.topics = list(topics)
        self._type = type_
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self.assigned: set[tuple[str, int]] = set()
        self.errors = 0
        self.failed_commits = 0

    def start(self) -> None:
        self._consumer.subscribe(
            self.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=10.0)
        plan = []
        for tp in committed:
            off = tp.offset if tp.offset >= 0 else -1
            plan.append(Assignment(tp.topic, tp.partition, off, tp.metadata or "", off))
        if self._on_assign is not None:
            self._on_assign(plan)
        tps = [
            TopicPartition(a.topic, a.partition, a.start if a.start >= 0 else OFFSET_INVALID)
            for a in plan
        ]
        consumer.assign(tps)
        self.assigned.update((a.topic, a.partition) for a in plan)
        log.info("assigned %s", sorted((a.topic, a.partition, a.start) for a in plan))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, lost=False)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (session expired): another member may own them already; committing is futile.
        self._release(consumer, partitions, lost=True)

    def _release(self, consumer: Consumer, partitions: list[TopicPartition], *, lost: bool) -> None:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        log.info("%s %s", "lost" if lost else "revoking", gone)
        if self._on_revoke is not None:
            self._on_revoke(gone, lost)
        self.assigned.difference_update(gone)
        consumer.unassign()

    async def poll(self, max_items: int = 1000, timeout: float = 0.5) -> list[Record]:
        """Up to ``max_items`` records; waits up to ``timeout`` for the first ones."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            msgs = self._consumer.consume(max_items, 0)
            if msgs or loop.time() >= end:
                return self._decode(msgs)
            await asyncio.sleep(0.01)

    def _decode(self, msgs: list[Message]) -> list[Record]:
        out = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.errors += 1
                    log.warning("consume error: %s", err)
                continue
            try:
                header, value = decode_envelope(m.value() or b"", self._type)
            except ValueError as exc:
                self.errors += 1
                log.warning(
                    "undecodable record %s[%s]@%s: %s", m.topic(), m.partition(), m.offset(), exc
                )
                continue
            key = m.key()
            out.append(
                Record(
                    m.topic() or "",
                    m.partition() or 0,
                    m.offset() or 0,
                    key.decode() if key else None,
                    header,
                    value,
                )
            )
        return out

    def commit(self, offsets: Mapping[tuple[str, int], tuple[int, str]]) -> bool:
        """Synchronously commit ``(topic, partition) -> (next offset, metadata)``.

        False when the group refused the commit because it is rebalancing or this member lost
        its partitions: the outputs are durable anyway, and the next owner starts from the
        previous commit (at-least-once: it repeats those events, with the same ids).
        """
        if not offsets:
            return True
        tps = [TopicPartition(t, p, off, metadata=meta) for (t, p), (off, meta) in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() not in _REBALANCE_CODES:
                raise
            self.failed_commits += 1
            log.warning("commit refused during a rebalance (%s); next owner redelivers", exc)
            return False
        return True

    def close(self) -> None:
        """Leave the group (revoking, which lets the worker commit) and close."""
        self._consumer.close()
