"""Prometheus exposition: a custom collector that reads the live counters at scrape time.

Nothing in the hot path touches a metric object: ``collect`` walks ``ctx.stats()`` (nested dicts of
numbers become ``tickstream_runtime_<path>``; a dict of numbers one level down, e.g. rejects by
reason, becomes one family with a ``key`` label; epoch timestamps ``*_ns`` are left out), the
per-feed health snapshots (``tickstream_feed_*`` labelled by ``feed``) and the WebSocket hub's
counters (``tickstream_ws_*``). Family names never repeat (tested).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.registry import Collector

from tickstream.serve.health import feed_connected

__all__ = ["Metrics", "StatsCollector", "flatten"]

_BAD = re.compile(r"[^a-zA-Z0-9_]")
_FEED_FIELDS = ("reconnects", "server_errors", "gaps", "dropped_batches")


def _name(*parts: str) -> str:
    return _BAD.sub("_", "_".join(p for p in parts if p)).strip("_").lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str | None, float]]:
    """(metric name, label value or None, number) for every numeric leaf of nested dicts."""
    for key, value in data.items():
        path = _name(prefix, str(key))
        if path.endswith("_ns"):  # an epoch timestamp: useless as a float sample
            continue
        num = _number(value)
        if num is not None:
            yield path, None, num
        elif isinstance(value, dict) and value:
            if all(_number(v) is not None for v in value.values()):
                for k, v in value.items():
                    yield path, str(k), float(_number(v) or 0.0)
            else:
                yield from flatten(value, path)


class StatsCollector(Collector):
    """Reads the runtime's counters, feed health and hub stats on every scrape."""

    def __init__(
        self,
        stats: Callable[[], dict[str, Any]],
        feeds: Callable[[], list[dict[str, Any]]],
        ws: Callable[[], dict[str, Any]],
        lag_ns: Callable[[], int | None],
    ) -> None:
        self._stats, self._feeds, self._ws, self._lag = stats, feeds, ws, lag_ns

    def collect(self) -> Iterator[Metric]:
        yield from self._runtime()
        yield from self._feed_metrics()
        ws = self._ws()
        gauges = {"clients", "subscriptions", "queued"}
        for key, value in sorted(ws.items()):
            name = f"tickstream_ws_{_name(key)}"
            if key in gauges:
                yield GaugeMetricFamily(name, f"WebSocket {key}", value=float(value))
            else:
                yield CounterMetricFamily(name, f"WebSocket {key}", value=float(value))
        lag = self._lag()
        if lag is not None:
            yield GaugeMetricFamily(
                "tickstream_stream_lag_seconds",
                "Receive time to WebSocket fan-out of the latest tick",
                value=max(0.0, lag / 1e9),
            )

    def _runtime(self) -> Iterator[Metric]:
        families: dict[str, tuple[UnknownMetricFamily, bool]] = {}
        for name, label, value in flatten(self._stats()):
            full = f"tickstream_runtime_{name}"
            entry = families.get(full)
            if entry is None:
                labels = ["key"] if label is not None else []
                fam = UnknownMetricFamily(full, f"runtime {name}", labels=labels)
                entry = families[full] = (fam, label is not None)
            fam, labelled = entry
            if labelled == (label is not None):  # a clash of shapes keeps the first one
                fam.add_metric([label] if label is not None else [], value)
        yield from (fam for fam, _ in families.values())

    def _feed_metrics(self) -> Iterator[Metric]:
        feeds = self._feeds()
        up = GaugeMetricFamily(
            "tickstream_feed_connected", "1 when the feed is connected", labels=["feed"]
        )
        age = GaugeMetricFamily(
            "tickstream_feed_data_age_seconds",
            "Seconds since the feed's last data",
            labels=["feed"],
        )
        fields = {
            f: CounterMetricFamily(f"tickstream_feed_{f}", f"feed {f}", labels=["feed"])
            for f in _FEED_FIELDS
        }
        rejected = CounterMetricFamily(
            "tickstream_feed_rejected", "Packets rejected by reason", labels=["feed", "reason"]
        )
        subscribed = GaugeMetricFamily(
            "tickstream_feed_subscribed", "Instruments subscribed", labels=["feed"]
        )
        now = time.time_ns()

        for i, feed in enumerate(feeds):
            name = str(feed.get("source") or feed.get("name") or i)
            up.add_metric([name], 1.0 if feed_connected(feed) else 0.0)
            count = _number(feed.get("subscribed"))
            if count is not None:
                subscribed.add_metric([name], count)
            last = feed.get("last_data_ns")
            if isinstance(last, int):
                age.add_metric([name], max(0.0, (now - last) / 1e9))
            for f, fam in fields.items():
                num = _number(feed.get(f))
                if num is not None:
                    fam.add_metric([name], num)
            for reason, count in (feed.get("rejected") or {}).items():
                rejected.add_metric([name, str(reason)], float(count))
        yield from (up, age, subscribed, *fields.values(), rejected)


class Metrics:
    """A private registry (so several apps in one process never collide) and its rendering."""

    def __init__(self, collector: StatsCollector) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
