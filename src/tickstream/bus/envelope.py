"""Wire codecs shared by the network buses: plain JSON values and the Kafka event envelope.

Redis pub/sub and streams carry the value itself as JSON (what the seed's consumers read).
Kafka messages carry an envelope ``{"type", "id", "source", "ts", "data"}`` whose ``data`` is
the value's JSON, embedded without re-encoding (``msgspec.Raw``). ``id`` is deterministic for
ticks and candles (:func:`event_id`), so a redelivered event is recognised as the same event.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec

from tickstream.model import Candle, Tick

__all__ = [
    "Envelope",
    "EnvelopeHeader",
    "decode_envelope",
    "decode_value",
    "encode_envelope",
    "encode_value",
    "event_id",
    "event_type",
]

T = TypeVar("T")

_encoder: Final = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


class Envelope(msgspec.Struct, frozen=True):
    """One event on Kafka. ``ts`` is epoch nanoseconds (UTC) when the envelope was made."""

    type: str
    id: str
    source: str
    ts: int
    data: msgspec.Raw


class _EnvelopeOut(msgspec.Struct, frozen=True):
    """Encoding side of :class:`Envelope`: the payload struct is encoded in the same pass."""

    type: str
    id: str
    source: str
    ts: int
    data: Any


class EnvelopeHeader(msgspec.Struct, frozen=True):
    """The envelope without its payload: what a consumer needs to route or deduplicate."""

    type: str
    id: str
    source: str
    ts: int


def encode_value(value: Any) -> bytes:
    """JSON for a struct (or anything msgspec encodes); bytes pass through unchanged."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return _encoder.encode(value)


def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.json.Decoder(type_)
    return dec


def decode_value(data: bytes | memoryview, type_: type[T] | None) -> T | bytes:
    """Decode JSON into ``type_`` (validated); without a type the raw bytes are returned."""
    if type_ is None:
        return bytes(data)
    return _decoder(type_).decode(data)


def event_type(value: Any) -> str:
    """``tick``, ``candle`` or the lower-cased struct name; ``bytes`` for raw payloads."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    return type(value).__name__.lower()


def _tick_id(t: Tick) -> str:
    return f"{t.exchange}:{t.token}:{t.ts_exchange}:{t.seq}:{t.volume}"


def event_id(value: Any) -> str:
    """A deterministic id: the same tick or candle always gets the same id.

    Tick: ``exchange:token:ts_exchange:seq:volume`` (two ticks in one nanosecond differ in seq or
    volume). Candle: ``exchange:token:interval:start:revision``. Other values: a hash of their JSON.
    """
    if isinstance(value, Tick):
        return _tick_id(value)
    if isinstance(value, Candle):
        return (
            f"{value.exchange}:{value.token}:{value.interval.value}:{value.start}:{value.revision}"
        )
    import hashlib

    return hashlib.blake2b(encode_value(value), digest_size=12).hexdigest()


def encode_envelope(value: Any, *, source: str, ts: int, id_: str | None = None) -> bytes:
    """The envelope JSON for ``value``, encoded in one pass (raw bytes are embedded as JSON)."""
    if type(value) is Tick:  # the hot path (every tick on raw_ticks and normalized_ticks)
        tick_id = _tick_id(value) if id_ is None else id_
        return _encoder.encode(_EnvelopeOut("tick", tick_id, source, ts, value))
    data = msgspec.Raw(bytes(value)) if isinstance(value, bytes | bytearray | memoryview) else value
    id_ = id_ if id_ is not None else event_id(value)
    return _encoder.encode(_EnvelopeOut(event_type(value), id_, source, ts, data))


_env_decoder: Final = msgspec.json.Decoder(Envelope)
# One decoder per payload type for an envelope whose ``data`` has that type: the payload is
# decoded in the same pass, not sliced out, copied and decoded again.
_typed_env_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _typed_env_decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    dec = _typed_env_decoders.get(type_)
    if dec is None:
        fields = [("type", str), ("id", str), ("source", str), ("ts", int), ("data", type_)]
        name = f"Envelope_{getattr(type_, '__name__', 'Value')}"
        dec = msgspec.json.Decoder(msgspec.defstruct(name, fields, frozen=True))
        _typed_env_decoders[type_] = dec
    return dec


def decode_envelope(data: bytes, type_: type[T] | None) -> tuple[EnvelopeHeader, T | bytes]:
    """Split an envelope into its header and its payload decoded as ``type_`` (raw JSON bytes
    when ``type_`` is None). ValueError (msgspec's DecodeError) for anything else."""
    if type_ is None:
        raw = _env_decoder.decode(data)
        header = EnvelopeHeader(type=raw.type, id=raw.id, source=raw.source, ts=raw.ts)
        return header, bytes(raw.data)
    env = _typed_env_decoder(type_).decode(data)
    return EnvelopeHeader(env.type, env.id, env.source, env.ts), env.data
