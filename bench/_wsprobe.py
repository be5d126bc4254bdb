"""A measuring WebSocket client for bench/serve.py: many connections, one process, two clocks.

Each connection is a plain socket driven by websockets' sans-I/O ``ClientProtocol`` (the same
library the server and the asyncio client use) from one ``epoll`` loop, with ``SO_TIMESTAMPNS``
set, so every read carries the kernel's receive time of its data. Per tick it records

* ``socket``: kernel receive time (the last segment of that read) - ``ts_recv``: when the tick
  reached the client's socket, which is the server's tick-to-client latency;
* ``parsed``: wall time after this process decoded the message - ``ts_recv``: the same plus the
  time this one process spends on the other connections' messages first (with 100 clients in one
  interpreter that queueing is the harness's, not the server's; real clients are processes each).

Both stamps are CLOCK_REALTIME on the one host, like the server's ``ts_recv`` (``time.time_ns``).

    python bench/_wsprobe.py PORT KEY CLIENTS PER WARM_S SECS
    -> {"socket": [...], "parsed": [...]}
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time
from typing import Any

import msgspec
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

N_INSTRUMENTS = 500
FIRST_TOKEN = 10_000
# Linux: SO_TIMESTAMPNS (SO_TIMESTAMPNS_OLD, a struct timespec of two longs); Python has no name.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_ANC = socket.CMSG_SPACE(_TIMESPEC.size)


class _T(msgspec.Struct):
    ts_recv: int


class _Msg(msgspec.Struct):
    type: str
    data: list[_T] = []


_decode = msgspec.json.Decoder(_Msg).decode


class Conn:
    """One WebSocket connection: handshake done blocking, then non-blocking reads."""

    def __init__(self, port: int, key: str, tokens: list[int]) -> None:
        self.proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/ws"), max_size=None)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        request = self.proto.connect()
        request.headers["X-API-Key"] = key
        self.proto.send_request(request)
        self.flush()
        while self.proto.handshake_exc is None and not self.proto.events_received():
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed during the handshake")
            self.proto.receive_data(data)
        if self.proto.handshake_exc is not None:
            raise self.proto.handshake_exc
        sub = {"action": "subscribe", "tokens": tokens, "backfill": 0}
        self.proto.send_text(json.dumps(sub).encode())
        self.flush()
        self.sock.setblocking(False)

    def flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def read(self) -> tuple[int, list[bytes]]:
        """(kernel receive time in ns, complete text messages) for what is readable now."""
        data, anc, _, _ = self.sock.recvmsg(1 << 20, _ANC)
        if not data:
            raise ConnectionError("server closed the connection")
        kernel_ns = 0
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                kernel_ns = sec * 1_000_000_000 + nsec
        if not kernel_ns:
            raise RuntimeError("no SO_TIMESTAMPNS receive time on the read (not Linux?)")
        self.proto.receive_data(data)
        texts = [
            bytes(f.data)
            for f in self.proto.events_received()
            if isinstance(f, Frame) and f.opcode == Opcode.TEXT
        ]
        self.flush()  # pongs to the server's pings
        return kernel_ns, texts


def probe(port: int, key: str, clients: int, per: int, warm_s: float, secs: float) -> Any:
    conns = [
        Conn(port, key, [FIRST_TOKEN + (c * per + k) % N_INSTRUMENTS for k in range(per)])
        for c in range(clients)  # together the clients cover all 500 instruments
    ]
    by_fd = {c.sock.fileno(): c for c in conns}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    on_socket: list[float] = []
    parsed: list[float] = []
    start = time.monotonic() + warm_s
    end = start + secs
    while (now := time.monotonic()) < end:
        recording = now >= start
        for fd, _ in poller.poll(0.05):
            kernel_ns, texts = by_fd[fd].read()
            for text in texts:
                msg = _decode(text)
                done_ns = time.time_ns()
                if recording and msg.type == "ticks":
                    on_socket.extend((kernel_ns - t.ts_recv) / 1e6 for t in msg.data)
                    parsed.extend((done_ns - t.ts_recv) / 1e6 for t in msg.data)
    for c in conns:
        c.sock.close()
    return {"socket": on_socket, "parsed": parsed}


def main() -> None:
    port, key, clients, per, warm_s, secs = sys.argv[1:7]
    out = probe(int(port), key, int(clients), int(per), float(warm_s), float(secs))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
