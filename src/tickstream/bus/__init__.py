"""Message buses behind one protocol; backends register by name in :data:`BACKENDS`."""

from __future__ import annotations

from tickstream.bus.base import Bus, BusClosedError, Message, Overflow, Subscription

__all__ = ["BACKENDS", "Bus", "BusClosedError", "Message", "Overflow", "Subscription"]

# name -> "module:Class"; imported lazily so optional extras stay optional.
BACKENDS: dict[str, str] = {
    "memory": "tickstream.bus.memory:MemoryBus",
    "redis": "tickstream.bus.redis_bus:RedisBus",
    "kafka": "tickstream.bus.kafka_bus:KafkaBus",
}
