from collections.abc import Callable

from tickstream.model import Tick

def setup(
    tick: type,
    depth: type,
    level: type,
    mode_full: object,
    mode_quote: object,
    kite_segments: tuple[str | None, ...],
    kite_full_names: tuple[str, ...],
    kite_quote_names: tuple[str, ...],
    angel_exchange_types: tuple[str | None, ...],
    indices: str,
    angel_snap_names: tuple[str, ...],
    /,
) -> None: ...
def kite_frame(
    frame: bytes,
    ts_recv: int,
    resolve: Callable[[str, int], str | None] | None,
    source: str,
    /,
) -> list[Tick] | None: ...
def angel_snap_quote(
    packet: bytes,
    ts_recv: int,
    resolve: Callable[[str, int], str | None] | None,
    source: str,
    /,
) -> Tick | None: ...
