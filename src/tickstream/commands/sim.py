"""``tickstream sim``: run the exchange simulator standalone (Kite and Angel One WebSocket feeds).

Prints where the two servers listen and the simulator's generated credentials. Those are
credentials of this local simulator only (not of any broker account), printed because a client
needs them to connect. Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Final

import typer

if TYPE_CHECKING:
    from tickstream.sim.faults import FaultPlan
    from tickstream.sim.server import SimConfig, SimServer

HELP: Final = (
    "Run the exchange simulator: a Kite ticker WebSocket (KiteTicker protocol) and an Angel One "
    "SmartStream WebSocket on loopback, fed by a seeded market model of NIFTY 50, NIFTY BANK, "
    "~50 NSE equities and a NIFTY option chain, in exchange time inside an NSE session (nights "
    "and weekends replay the latest session from 10:00 IST).\n\n"
    "Point KiteTicker at it with root='ws://HOST:KITE_PORT' and SmartWebSocketV2 with "
    "ROOT_URI='ws://HOST:ANGEL_PORT/smart-stream', using the credentials it prints; the REST "
    "simulators (login, instruments, history) listen on --kite-rest-port / --angel-rest-port.\n\n"
    "Faults: --fault mute|stall|close|duplicate|seq-jump|truncate|unknown|slow|burst, applied to "
    "every connection after --fault-after seconds.\n\n"
    "Example: tickstream sim --seed 7 --price-file NIFTY50_index_per_second_2022-11-21.csv"
)


def _parse_duration(text: str) -> float:
    value = text.strip().lower()
    scale = 60.0 if value.endswith("m") else 1.0
    try:
        return float(value.rstrip("sm")) * scale
    except ValueError:
        raise typer.BadParameter(f"expected seconds like 30 or 30s or 2m, got {text!r}") from None


def sim(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    kite_port: int = typer.Option(8765, help="Kite ticker port (0 = any free port)."),
    angel_port: int = typer.Option(8766, help="Angel SmartStream port (0 = any free port)."),
    seed: int = typer.Option(0, help="Market model seed: same seed, same market."),
    tick_interval_ms: float = typer.Option(50.0, help="Market step interval in milliseconds."),
    universe: Path | None = typer.Option(None, help="Universe JSON (default: the bundled one)."),
    price_file: Path | None = typer.Option(
        None, help="Recorded series 'YYYY-MM-DD HH:MM:SS,price' (IST) that drives --price-key."
    ),
    price_key: str = typer.Option("INDICES:1001", help="Instrument key the --price-file drives."),
    fault: str | None = typer.Option(
        None, help="Inject a fault (see above) into every connection."
    ),
    fault_after: str = typer.Option("0", help="Seconds before --fault starts (30, 30s, 2m)."),
    emission_log: Path | None = typer.Option(None, help="Write every tick sent to this JSONL."),
    rest: bool = typer.Option(True, help="Also serve the Kite and Angel REST simulators."),
    kite_rest_port: int = typer.Option(8767, help="Kite REST port (0 = any free port)."),
    angel_rest_port: int = typer.Option(8768, help="Angel REST port (0 = any free port)."),
    run_seconds: float = typer.Option(0.0, hidden=True, help="Stop after this long (tests)."),
) -> None:
    """Run the simulator until Ctrl-C."""
    from tickstream.sim.faults import parse_fault
    from tickstream.sim.server import SimConfig
    from tickstream.sim.universe import parse_price_series

    try:
        plan = parse_fault(fault) if fault else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from None
    series = None
    if price_file is not None:
        series = {price_key: parse_price_series(price_file.read_text("utf-8"))}
    config = SimConfig(
        host=host, kite_port=kite_port, angel_port=angel_port, seed=seed,
        tick_interval_ms=tick_interval_ms, universe_path=universe, price_source=series,
        emission_log=emission_log, rest=rest, kite_rest_port=kite_rest_port,
        angel_rest_port=angel_rest_port,
    )  # fmt: skip
    delay = _parse_duration(fault_after)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, plan, delay, run_seconds))
    typer.echo("simulator stopped")


async def _serve(
    config: SimConfig, plan: FaultPlan | None, fault_after_s: float, run_seconds: float
) -> None:
    from tickstream.sim.server import SimServer

    async with SimServer(config) as server:
        _announce(server)
        if plan is not None:
            asyncio.get_running_loop().call_later(fault_after_s, server.faults.set, None, plan)
        if run_seconds > 0:
            await asyncio.sleep(run_seconds)
        else:
            await asyncio.Event().wait()


def _announce(server: SimServer) -> None:
    from tickstream.calendar import ist_datetime

    c = server.credentials
    echo = typer.echo
    echo(f"exchange time  {ist_datetime(server.clock.now_ns()).isoformat()}")
    echo(f"kite ticker    {server.kite_ws_url}?api_key={c.kite_api_key}&access_token=...")
    echo(f"angel stream   {server.angel_ws_url}")
    if server.kite_rest_root:
        echo(f"kite REST      {server.kite_rest_root}")
        echo(f"angel REST     {server.angel_rest_root}")
    echo("")
    echo("Simulator credentials (valid for this local simulator only; not a broker account):")
    echo(f"  KITE_API_KEY={c.kite_api_key}")
    echo(f"  KITE_API_SECRET={c.kite_api_secret}")
    echo(f"  KITE_ACCESS_TOKEN={c.kite_access_token}")
    echo(f"  ANGEL_API_KEY={c.angel_api_key}")
    echo(f"  ANGEL_CLIENT_CODE={c.angel_client_code}")
    echo(f"  ANGEL_PIN={c.angel_pin}")
    echo(f"  ANGEL_TOTP_SECRET={c.angel_totp_secret}")
    echo(f"  ANGEL_JWT={c.angel_jwt}")
    echo(f"  ANGEL_FEED_TOKEN={c.angel_feed_token}")
    echo("Ctrl-C to stop.")


def register(app: typer.Typer) -> None:
    app.command(name="sim", help=HELP)(sim)
