"""``tickstream decode``: decode captured broker binary frames (hex, one per line) to JSON ticks."""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import typer

HELP = "\n\n".join(
    [
        "Decode broker binary frames to canonical ticks, one JSON line per tick on stdout.",
        "Input (FILE, or - for stdin): one frame per line as hex; blank lines and lines starting"
        " with # are skipped. A Kite line is a whole frame (packet count + length-prefixed"
        ' packets; "00" is a heartbeat); an Angel One line is one binary message.',
        'Rejected packets and non-hex lines go to stderr as "line N: reason: detail". Exit'
        " status 0 when every line decoded, 1 if any was rejected.",
        "Example:\n\n"
        "  $ echo 0001000800063a01000266b5 | tickstream decode --broker kite --ts-recv 0 -\n"
        '  {"exchange":"NSE","token":1594,"symbol":"1594","source":"kite","ts_exchange":0,'
        '"ts_recv":0,"ltp":1573.65}',
    ]
)


class Broker(enum.StrEnum):
    KITE = "kite"
    ANGELONE = "angelone"


def decode_lines(
    lines: Iterable[str], broker: Broker, ts_recv: int | None, out: TextIO, err: TextIO
) -> bool:
    """Decode every frame line; write ticks to ``out`` and problems to ``err``. True if clean."""
    from tickstream.feeds.angelone.wire import decode_packet
    from tickstream.feeds.kite.wire import decode_frame
    from tickstream.model import encode_json

    decode = decode_frame if broker is Broker.KITE else decode_packet
    clean = True
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            frame = bytes.fromhex(line)
        except ValueError:
            err.write(f"line {number}: not_hex: {line[:40]!r}\n")
            clean = False
            continue
        result = decode(frame, ts_recv=time.time_ns() if ts_recv is None else ts_recv)
        for tick in result.ticks:
            out.write(encode_json(tick).decode() + "\n")
        for reject in result.rejects:
            err.write(f"line {number}: {reject.reason}: {reject.detail}\n")
            clean = False
    return clean


def decode(
    source: str = typer.Argument(
        "-", metavar="FILE|-", help="Hex frames, one per line; - is stdin."
    ),
    broker: Broker = typer.Option(..., "--broker", help="Wire protocol: kite or angelone."),
    ts_recv: int | None = typer.Option(
        None, "--ts-recv", help="Receive time to stamp (epoch ns); default: now, per line."
    ),
) -> None:
    if source == "-":
        ok = decode_lines(sys.stdin, broker, ts_recv, sys.stdout, sys.stderr)
    else:
        try:
            with Path(source).open(encoding="utf-8") as fh:
                ok = decode_lines(fh, broker, ts_recv, sys.stdout, sys.stderr)
        except OSError as exc:
            typer.echo(f"error: cannot read {source}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    app.command(name="decode", help=HELP)(decode)
