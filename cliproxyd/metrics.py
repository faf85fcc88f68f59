"""Prometheus metrics of one application: one `CollectorRegistry` per app, never the global one.

`Metrics` owns the registry, the process/platform collectors, ``cliproxyd_build_info``,
``cliproxyd_http_requests_total{route,method,code}`` (recorded from the Application's
``log_function``), ``cliproxyd_http_requests_in_flight`` and ``cliproxyd_config_reloads_total{result}``.  Label values are bounded:
routes come from the route table's names and methods from a fixed set, never from raw client input.
"""

from __future__ import annotations

import platform
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from cliproxyd import __version__

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RELOAD_RESULTS = ("success", "failure")


class Metrics:
    """The registry and the metrics this issue defines; later issues add theirs to `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        build = Gauge(
            "cliproxyd_build_info",
            "cliproxyd version and Python version (always 1)",
            ["version", "python"],
            registry=self.registry,
        )
        build.labels(version=__version__, python=platform.python_version()).set(1)
        self.http_requests = Counter(
            "cliproxyd_http_requests_total",
            "HTTP requests answered, by route name, method and status code",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.config_reloads = Counter(
            "cliproxyd_config_reloads_total",
            "Configuration reloads (SIGHUP), by result",
            ["result"],
            registry=self.registry,
        )
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result=result)

    def track_in_flight(self, count: Callable[[], int]) -> None:
        """Expose ``cliproxyd_http_requests_in_flight``, read from ``count`` at scrape time."""
        gauge = Gauge(
            "cliproxyd_http_requests_in_flight",
            "HTTP requests being received or answered (streams included)",
            registry=self.registry,
        )
        gauge.set_function(lambda: float(count()))

    def observe_request(self, route: str, method: str, code: int) -> None:
        """Count one answered request (``route`` must be a route-table name)."""
        method = method if method in _METHODS else "OTHER"
        self.http_requests.labels(route=route, method=method, code=str(code)).inc()

    def reload_done(self, ok: bool) -> None:
        self.config_reloads.labels(result=RELOAD_RESULTS[0] if ok else RELOAD_RESULTS[1]).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
