"""Map what clients type (tokens, ``EXCHANGE:TOKEN``, symbols) to instruments of the universe."""

from __future__ import annotations

from collections.abc import Iterable

from tickstream.model import Instrument

__all__ = ["Resolver"]


class Resolver:
    """Lookup tables over the subscribed universe; :meth:`add` extends it (POST /subscribe)."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_key: dict[str, Instrument] = {}
        self._by_token: dict[int, list[Instrument]] = {}
        self._by_symbol: dict[str, list[Instrument]] = {}
        self.add(instruments)

    def __len__(self) -> int:
        return len(self._by_key)

    def add(self, instruments: Iterable[Instrument]) -> None:
        for inst in instruments:
            if inst.key in self._by_key:
                continue
            self._by_key[inst.key] = inst
            self._by_token.setdefault(inst.token, []).append(inst)
            self._by_symbol.setdefault(inst.symbol.upper(), []).append(inst)

    def all(self) -> list[Instrument]:
        return list(self._by_key.values())

    def resolve(self, ref: object) -> Instrument | str:
        """The instrument for ``ref``, or the reason it cannot be resolved."""
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            return "expected a token (int), EXCHANGE:TOKEN or a symbol"
        if isinstance(ref, int):
            return _one(self._by_token.get(ref, []), str(ref))
        text = ref.strip()
        if not text or len(text) > 64:
            return "empty or too long"
        if text.isascii() and text.isdigit():
            return _one(self._by_token.get(int(text), []), text)
        exchange, sep, rest = text.partition(":")
        if sep:
            exchange = exchange.upper()
            if rest.isascii() and rest.isdigit():
                found = self._by_key.get(f"{exchange}:{int(rest)}")
                return found if found is not None else f"unknown instrument {text!r}"
            matches = [i for i in self._by_symbol.get(rest.upper(), []) if i.exchange == exchange]
            return _one(matches, text)
        return _one(self._by_symbol.get(text.upper(), []), text)


def _one(matches: list[Instrument], ref: str) -> Instrument | str:
    if not matches:
        return f"unknown instrument {ref!r}"
    if len(matches) > 1:
        keys = ", ".join(sorted(m.key for m in matches))
        return f"ambiguous {ref!r} ({keys}); use EXCHANGE:TOKEN"
    return matches[0]
