"""Headless Chromium loads the dashboard against a running tickstream and sees candles update.

The server is ``tickstream run`` (simulator -> feeds -> pipeline -> bus -> DuckDB -> this app) on a
free loopback port with a fresh data directory; if that build of ``run`` does not serve HTTP yet,
``tickstream serve --sim`` (the same app fed by the simulated market in-process) stands in. The
browser is Debian's chromium (``scripts/browser.sh`` installs it), driven over the Chrome DevTools
Protocol; the screenshot lands in ``test-output/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tickstream.serve.security import KeyStore, Scope

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
TICKSTREAM = Path(sys.executable).with_name("tickstream")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,950",
    "--remote-debugging-port=0",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "browser.sh")], capture_output=True, text=True, check=False
    )
    found = shutil.which("chromium")
    if done.returncode != 0 or not found:
        pytest.skip(f"chromium unavailable and could not be installed: {done.stderr[-300:]}")
    return found


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1.0).status_code in (200, 503):
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, read key) of a running tickstream with a fresh data directory."""
    key, _ = KeyStore(path=tmp_path / "api_keys.json").create([Scope.READ], name="e2e")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TICKSTREAM_")},
        "TICKSTREAM_PORT": str(port),
        "TICKSTREAM_DATA_DIR": str(tmp_path),
    }
    for k in ("REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP"):
        env.pop(k, None)
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    for args in (["run"], ["serve", "--sim"]):
        proc = subprocess.Popen(
            [str(TICKSTREAM), *args], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
        if _wait_http(f"{base}/health", proc, 40.0 if args == ["run"] else 60.0):
            break
        _stop(proc)
    else:
        pytest.fail(f"no server came up; log: {(tmp_path / 'server.log').read_text()[-2000:]}")
    try:
        yield base, key
    finally:
        _stop(proc)
        log.close()


class Cdp:
    """Just enough of the Chrome DevTools Protocol: send a command, await its result."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    async def js(self, expression: str) -> Any:
        out = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return out["result"].get("value")


async def _page_ws(profile: Path, proc: subprocess.Popen[bytes]) -> str:
    active = profile / "DevToolsActivePort"
    for _ in range(200):
        if active.is_file() and active.read_text().strip():
            break
        if proc.poll() is not None:
            raise RuntimeError("chromium exited early")
        await asyncio.sleep(0.1)
    port = int(active.read_text().split()[0])
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            await asyncio.sleep(0.1)
    raise RuntimeError("no page target")


async def _until(cdp: Cdp, expression: str, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = await cdp.js(expression)
        if value:
            return value
        await asyncio.sleep(0.25)
    return value


@pytest.fixture
def browser(
    server: tuple[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Chromium with a fresh profile, already loading the dashboard (1s candles)."""
    base, key = server
    profile = tmp_path / "chromium-profile"
    url = f"{base}/dashboard/?interval=1s#key={key}"
    proc = subprocess.Popen(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc, profile
    finally:
        proc.terminate()
        proc.wait(10)


async def test_dashboard_renders_live_candles_and_ticks(
    browser: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, profile = browser
    async with connect(await _page_ws(profile, proc), max_size=None) as ws:
        cdp = Cdp(ws)
        await cdp.call("Runtime.enable")
        vendor_ok = await _until(cdp, "typeof window.LightweightCharts === 'object'", 15)
        first = await _until(
            cdp,
            "window.__tickstream && window.__tickstream.ticks > 0 && window.__tickstream",
            30,
        )
        await asyncio.sleep(3.0)
        second = await cdp.js("window.__tickstream")
        # indicator overlays appear once the 1s candles have warmed up EMA/RSI (~15 s)
        overlays = await _until(cdp, "window.__tickstream.indicators", 60)
        canvases = await cdp.js("document.querySelectorAll('#chart canvas').length")
        rows = await cdp.js("document.querySelectorAll('#tickrows tr').length")
        status = await cdp.js("document.querySelector('#tickrows td:last-child').textContent")
        health = await cdp.js("document.getElementById('health').textContent")
        shot = await cdp.call("Page.captureScreenshot", format="png")
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
    assert vendor_ok is True, "lightweight-charts did not load (npm ci --prefix web)"
    assert first, "the page never received ticks"
    assert second["candles"] > first["candles"] > 0
    assert second["ticks"] > first["ticks"]
    assert second["errors"] == []
    assert overlays > 0, "no indicator values reached the EMA/Bollinger/Supertrend/RSI series"
    assert canvases > 0
    assert rows > 0
    assert status in {"LIVE", "STALE"}
    assert health in {"healthy", "health …"} or health.startswith("unhealthy")
