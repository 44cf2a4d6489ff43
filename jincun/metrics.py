"""Prometheus text for the cloud and the gateway: their named counters and a request-time histogram.

Both services keep their counters in a `snapshot() -> dict[str, int]` object (shown on their health
routes); this module turns a snapshot into Prometheus counters at scrape time, so counting stays as cheap as
it is, and times every HTTP request by its route template (never the raw path, so that ids and codes in a
URL neither reach the metrics nor grow their number).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

CONTENT_TYPE = CONTENT_TYPE_LATEST
# seconds: a code lookup takes milliseconds, an ingest batch tens of them, a page up to a second
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(prefix: str, counter: str) -> str:
    """A counter's Prometheus name: `<prefix>_<name>` with anything outside [a-zA-Z0-9_] as `_`."""
    return f"{prefix}_{_BAD.sub('_', counter)}"


class _Counters:
    """A collector that reads the service's counters at each scrape."""

    def __init__(self, prefix: str, snapshot: Callable[[], dict[str, int]]) -> None:
        self.prefix = prefix
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        for name, value in self.snapshot().items():
            yield CounterMetricFamily(metric_name(self.prefix, name), f"jincun counter {name}", value=value)


class Metrics:
    """One service's registry: its counters and the HTTP request histogram."""

    def __init__(self, prefix: str, snapshot: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Counters(prefix, snapshot))
        self.requests = Histogram(f"{prefix}_http_request_duration_seconds",
                                  "HTTP requests by method, route template and status class",
                                  ["method", "route", "status"], buckets=BUCKETS, registry=self.registry)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything registered."""
        return generate_latest(self.registry)


class TimedRequests:
    """ASGI middleware that times every HTTP request into `Metrics.requests` (pure ASGI: no body buffering)."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.requests = metrics.requests

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # the router writes the matched route into this same scope; its template bounds the label set
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self.requests.labels(scope["method"], template, f"{status // 100}xx").observe(
                time.perf_counter() - started)
