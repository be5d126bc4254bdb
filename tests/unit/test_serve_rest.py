"""REST contract tests against the real app (httpx over ASGI) and real components."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_support import START_NS, make_context, make_keys

from tickstream.feeds import fastpath
from tickstream.model import NS_PER_SEC, Interval
from tickstream.serve.app import create_app
from tickstream.serve.context import ServeContext
from tickstream.serve.simfeed import SimFeeder
from tickstream.serve.wire import ist_iso

END_NS = START_NS + 3600 * NS_PER_SEC


class Env:
    def __init__(self, client: httpx.AsyncClient, ctx: ServeContext, feeder: SimFeeder):
        self.client, self.ctx, self.feeder = client, ctx, feeder
        self.read = ""
        self.admin = ""

    def h(self, key: str | None = None) -> dict[str, str]:
        return {"X-API-Key": key or self.read}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    ctx, feeder, _ = await make_context(tmp_path, steps=8, cors_origins=("http://ui.example",))
    keys, read, admin = make_keys()
    app = create_app(ctx, keys=keys)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        e = Env(client, ctx, feeder)
        e.read, e.admin = read, admin
        yield e
    assert ctx.store is not None
    await ctx.store.close()


async def test_root_json_client_gets_service_info(env: Env) -> None:
    r = await env.client.get("/")
    assert r.status_code == 200
    body = r.json()
    assert body["service"] == "tickstream"
    assert body["feed"] == "sim"
    assert body["instruments"] == 6
    assert body["links"]["docs"] == "/docs"


async def test_root_browser_redirected_to_dashboard(env: Env) -> None:
    r = await env.client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 307
    assert r.headers["location"] == "/dashboard/"
    page = await env.client.get("/dashboard/")
    assert page.status_code == 200
    assert "/static/vendor/lightweight-charts.js" in page.text


async def test_health_feed_connected_and_fresh_data_is_ok(env: Env) -> None:
    env.feeder.start()
    try:
        r = await env.client.get("/health")
    finally:
        await env.feeder.stop()
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["feeds"] == {"total": 1, "connected": 1}


async def test_health_no_feed_connected_is_503_with_reason(env: Env) -> None:
    r = await env.client.get("/health")  # the feeder task is not running: state "stopped"
    assert r.status_code == 503
    assert "no feed connected" in r.json()["reasons"]


async def test_health_store_closed_is_503_with_reason(env: Env) -> None:
    assert env.ctx.store is not None
    await env.ctx.store.close()
    r = await env.client.get("/health")
    assert r.status_code == 503
    assert any(reason.startswith("store unreachable") for reason in r.json()["reasons"])


async def test_stats_without_key_is_401(env: Env) -> None:
    r = await env.client.get("/stats")
    assert r.status_code == 401
    assert "API key" in r.json()["detail"]


async def test_stats_with_key_reports_pipeline_counters(env: Env) -> None:
    r = await env.client.get("/stats", headers=env.h())
    assert r.status_code == 200
    body = r.json()
    counters = env.feeder.engine.counters
    assert body["runtime"]["pipeline"]["ticks_in"] == counters.ticks_in
    assert body["runtime"]["pipeline"]["accepted"] == counters.accepted
    assert body["bus"]["published"]["market:ticks"] == counters.accepted
    assert body["feeds"][0]["source"] == "sim"
    assert body["ws"]["clients"] == 0
    assert body["decoders"] == {"native": fastpath.NATIVE}


async def test_stats_bearer_token_is_accepted(env: Env) -> None:
    r = await env.client.get("/stats", headers={"Authorization": f"Bearer {env.read}"})
    assert r.status_code == 200


async def test_symbols_lists_universe_with_latest_ltp(env: Env) -> None:
    r = await env.client.get("/symbols", headers=env.h())
    assert r.status_code == 200
    rows = {s["symbol"]: s for s in r.json()["symbols"]}
    assert set(rows) == {"NIFTY 50", "NIFTY BANK", "RELIANCE", "INFY", "TCS", "HDFCBANK"}
    assert env.ctx.state is not None
    latest = env.ctx.state.get_tick("NSE", 2885)
    assert latest is not None
    assert rows["RELIANCE"]["ltp"] == latest.ltp
    assert rows["RELIANCE"]["key"] == "NSE:2885"


async def test_subscribe_read_key_is_403(env: Env) -> None:
    r = await env.client.post("/subscribe", json={"instruments": ["INFY"]}, headers=env.h())
    assert r.status_code == 403
    assert "admin" in r.json()["detail"]


async def test_subscribe_admin_adds_known_and_refuses_unknown(env: Env) -> None:
    r = await env.client.post(
        "/subscribe",
        json={"instruments": ["INFY", "NOPE"], "mode": "full"},
        headers=env.h(env.admin),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == ["NSE:1594"]
    assert body["refused"][0]["ref"] == "NOPE"
    assert body["result"] == {"mode": "full", "added": ["NSE:1594"], "not_simulated": 0}


async def test_search_finds_symbol_prefix_first(env: Env) -> None:
    r = await env.client.get(
        "/api/v1/instruments/search", params={"query": "nifty", "limit": 5}, headers=env.h()
    )
    assert r.status_code == 200
    assert [i["symbol"] for i in r.json()["results"]] == ["NIFTY 50", "NIFTY BANK"]


async def test_search_unknown_exchange_is_422(env: Env) -> None:
    r = await env.client.get(
        "/api/v1/instruments/search", params={"query": "x", "exchange": "LSE"}, headers=env.h()
    )
    assert r.status_code == 422


async def test_ticks_pages_with_cursor_equal_store_order(env: Env) -> None:
    params: dict[str, Any] = {
        "instrument": "RELIANCE",
        "start": str(START_NS),
        "end": str(END_NS),
        "limit": 3,
    }
    first = (
        await env.client.get("/api/v1/historical/ticks", params=params, headers=env.h())
    ).json()
    assert first["count"] == 3
    cursor = first["next_cursor"]
    assert cursor is not None
    second = (
        await env.client.get(
            "/api/v1/historical/ticks", params={**params, "cursor": cursor}, headers=env.h()
        )
    ).json()
    assert env.ctx.store is not None
    page = await env.ctx.store.query_ticks("NSE", 2885, START_NS, END_NS, limit=6)
    got = [t["ts_exchange"] for t in first["ticks"] + second["ticks"]]
    assert got == [t.ts_exchange for t in page.ticks][: len(got)]
    tick = first["ticks"][0]
    assert tick["ts_exchange_ist"] == ist_iso(tick["ts_exchange"])
    assert tick["status"] == "LIVE"


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"instrument": "RELIANCE", "start": "yesterday"}, 400, "invalid time"),
        ({"instrument": "RELIANCE", "start": str(END_NS), "end": str(START_NS)}, 400, "before"),
        (
            {
                "instrument": "RELIANCE",
                "start": str(START_NS),
                "end": str(START_NS + 8 * 86400 * NS_PER_SEC),
            },
            400,
            "range too long",
        ),
        ({"instrument": "NOPE"}, 404, "unknown instrument"),
        ({"instrument": "RELIANCE", "cursor": "%%%"}, 400, "cursor"),
        ({"instrument": "RELIANCE", "limit": "0"}, 422, ""),
        ({"instrument": "RELIANCE", "limit": "100000"}, 422, ""),
    ],
)
async def test_ticks_invalid_input_is_4xx_with_message(
    env: Env, params: dict[str, Any], status: int, fragment: str
) -> None:
    r = await env.client.get("/api/v1/historical/ticks", params=params, headers=env.h())
    assert r.status_code == status
    assert fragment in str(r.json()["detail"])


async def test_candles_with_indicators_equal_store(env: Env) -> None:
    params = {
        "instrument": "NSE:2885",
        "interval": "1s",
        "start": str(START_NS),
        "end": str(END_NS),
    }
    r = await env.client.get("/api/v1/historical/candles", params=params, headers=env.h())
    assert r.status_code == 200
    body = r.json()
    assert env.ctx.store is not None
    stored = await env.ctx.store.query_candles("NSE", 2885, Interval.S1, START_NS, END_NS)
    assert body["count"] == len(stored) > 0
    assert [c["close"] for c in body["candles"]] == [c.close for c in stored]
    assert body["candles"][0]["start_ist"] == ist_iso(stored[0].start)
    assert "indicators" in body["candles"][-1]


async def test_candles_indicators_false_omits_them(env: Env) -> None:
    params = {
        "instrument": "RELIANCE",
        "interval": "1s",
        "start": str(START_NS),
        "end": str(END_NS),
        "indicators": "false",
    }
    r = await env.client.get("/api/v1/historical/candles", params=params, headers=env.h())
    assert r.status_code == 200
    assert all("indicators" not in c for c in r.json()["candles"])


async def test_candles_bad_interval_is_400_naming_choices(env: Env) -> None:
    params = {"instrument": "RELIANCE", "interval": "7m"}
    r = await env.client.get("/api/v1/historical/candles", params=params, headers=env.h())
    assert r.status_code == 400
    assert "1s, 1m, 5m" in r.json()["detail"]


async def test_candles_range_over_cap_is_400(env: Env) -> None:
    params = {
        "instrument": "RELIANCE",
        "interval": "1s",
        "start": "2024-12-01T09:15:00",
        "end": "2024-12-03T09:15:00",
    }
    r = await env.client.get("/api/v1/historical/candles", params=params, headers=env.h())
    assert r.status_code == 400
    assert "range too long" in r.json()["detail"]


async def test_rate_limit_exhausted_is_429_with_retry_after(tmp_path: Path) -> None:
    ctx, _, _ = await make_context(tmp_path)
    keys, _, _ = make_keys()
    key, _ = keys.create(["read"], rate_per_sec=0.5, burst=2, save=False)
    app = create_app(ctx, keys=keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        codes = [
            (await c.get("/symbols", headers={"X-API-Key": key})).status_code for _ in range(3)
        ]
        last = await c.get("/symbols", headers={"X-API-Key": key})
    assert codes == [200, 200, 429]
    assert last.status_code == 429
    assert int(last.headers["Retry-After"]) >= 1
    assert ctx.store is not None
    await ctx.store.close()


async def test_metrics_expose_pipeline_and_feed_counters(env: Env) -> None:
    r = await env.client.get("/metrics")
    assert r.status_code == 200
    lines = dict(
        line.rsplit(" ", 1) for line in r.text.splitlines() if line and not line.startswith("#")
    )
    ticks_in = env.feeder.engine.counters.ticks_in
    assert float(lines["tickstream_runtime_pipeline_ticks_in"]) == ticks_in
    assert float(lines['tickstream_feed_subscribed{feed="sim"}']) == 6
    assert float(lines["tickstream_ws_clients"]) == 0


async def test_metrics_family_names_unique_with_colliding_runtime_stats(tmp_path: Path) -> None:
    ctx, _, _ = await make_context(tmp_path, steps=1)
    feed = {"source": "sim", "state": "connected", "subscribed": 3, "reconnects": 1, "gaps": 0}
    ctx.stats = lambda: {"feed": feed, "pipeline": {"last_tick_ns": 5, "ticks_in": 2}}
    ctx.feed_health = lambda: [feed]
    keys, _, _ = make_keys()
    app = create_app(ctx, keys=keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        text = (await c.get("/metrics")).text
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names))
    assert "tickstream_runtime_feed_reconnects" in names
    assert "tickstream_feed_reconnects" in names
    assert not any(n.endswith("_ns") for n in names)
    assert ctx.store is not None
    await ctx.store.close()


async def test_cors_allowed_origin_gets_explicit_header_without_credentials(env: Env) -> None:
    headers = {"Origin": "http://ui.example", "Access-Control-Request-Method": "GET"}
    r = await env.client.options("/symbols", headers=headers)
    assert r.headers["access-control-allow-origin"] == "http://ui.example"
    assert "access-control-allow-credentials" not in r.headers


async def test_cors_other_origin_gets_no_allow_header(env: Env) -> None:
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    r = await env.client.options("/symbols", headers=headers)
    assert "access-control-allow-origin" not in r.headers


async def test_openapi_lists_the_api(env: Env) -> None:
    r = await env.client.get("/openapi.json")
    paths = r.json()["paths"]
    assert {"/health", "/stats", "/symbols", "/subscribe", "/metrics"} <= set(paths)
    assert "/api/v1/historical/candles" in paths


async def test_vendor_script_missing_serves_install_hint(tmp_path: Path) -> None:
    ctx, _, _ = await make_context(tmp_path)
    keys, _, _ = make_keys()
    app = create_app(ctx, keys=keys, web_dir=tmp_path / "no-web")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/static/vendor/lightweight-charts.js")
    assert r.status_code == 200
    assert "npm ci --prefix web" in r.text
    assert r.text.startswith("window.__tickstreamVendorMissing")
    assert ctx.store is not None
    await ctx.store.close()


async def test_vendor_script_present_is_served_from_web_dir(tmp_path: Path) -> None:
    ctx, _, _ = await make_context(tmp_path)
    dist = tmp_path / "web" / "node_modules" / "lightweight-charts" / "dist"
    dist.mkdir(parents=True)
    (dist / "lightweight-charts.standalone.production.js").write_text("window.LightweightCharts={}")
    keys, _, _ = make_keys()
    app = create_app(ctx, keys=keys, web_dir=tmp_path / "web")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/static/vendor/lightweight-charts.js")
    assert r.text == "window.LightweightCharts={}"
    assert r.headers["content-type"].startswith("text/javascript")
    assert ctx.store is not None
    await ctx.store.close()
