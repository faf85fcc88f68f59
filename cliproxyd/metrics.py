"""Prometheus metrics of one application: one `CollectorRegistry` per app, never the global one.

`Metrics` owns the registry, the process/platform collectors and:

* ``cliproxyd_build_info``; ``cliproxyd_config_reloads_total{result}`` (SIGHUP and management
  config changes alike);
* ``cliproxyd_http_requests_total{route,method,code}`` (every answer, from the Application's
  ``log_function``), ``cliproxyd_http_requests_in_flight`` and ``cliproxyd_inflight_requests``
  (requests being received or answered, streams included);
* per proxied generation request (`observe_proxy`, fed by `cliproxyd.recording`):
  ``cliproxyd_requests_total{client_format,provider,model,code}``,
  ``cliproxyd_request_duration_seconds{client_format}``,
  ``cliproxyd_upstream_ttfb_seconds{provider}`` (request start to the first byte written to the
  client, for requests that reached an upstream), ``cliproxyd_tokens_total{provider,model,kind}``
  and ``cliproxyd_upstream_errors_total{provider,reason}`` (each failed upstream attempt);
* ``cliproxyd_credentials{provider,state}``, read from the live pool at scrape time.

Label values are bounded: routes come from the route table's names, methods from a fixed set,
models from the model catalogue (anything else is ``"other"``), providers from credential kinds,
reasons from `ErrorKind`; never raw client input.  Label sets known in advance are seeded so
they read 0 before the first event.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cliproxyd import __version__
from cliproxyd.errors import ErrorKind

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RELOAD_RESULTS = ("success", "failure")
CLIENT_FORMATS = ("openai_chat", "openai_responses", "claude", "gemini")
PROVIDERS = ("gemini", "claude", "codex", "openai_compat")
TOKEN_KINDS = ("input", "output", "cached", "reasoning")
# "unavailable": an OAuth account whose token expired and could not be refreshed (issue 7).
CREDENTIAL_STATES = ("available", "cooling_down", "unavailable")
# LLM answers take from a fraction of a second to many minutes.
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_TTFB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """The registry and the metrics this issue defines; later issues add theirs to `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple, Any] = {}
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        # python_gc_*: objects the cyclic collector found.  A request should leave none; a
        # rising count under steady load means a reference cycle crept into the hot path.
        GCCollector(registry=self.registry)
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
        self._proxy_metrics()

    def _proxy_metrics(self) -> None:
        reg = self.registry
        self.requests = Counter(
            "cliproxyd_requests_total", "Proxied generation requests, by client format, "
            "provider, model and status code", ["client_format", "provider", "model", "code"],
            registry=reg)
        self.duration = Histogram(
            "cliproxyd_request_duration_seconds", "Proxied generation requests: time from the "
            "request's arrival to its last byte", ["client_format"], buckets=_DURATION_BUCKETS,
            registry=reg)
        self.ttfb = Histogram(
            "cliproxyd_upstream_ttfb_seconds", "Time from a proxied request's arrival to the "
            "first byte written to the client, by provider", ["provider"], buckets=_TTFB_BUCKETS,
            registry=reg)
        self.tokens = Counter(
            "cliproxyd_tokens_total", "Tokens reported by upstreams, by provider, model and kind",
            ["provider", "model", "kind"], registry=reg)
        self.upstream_errors = Counter(
            "cliproxyd_upstream_errors_total", "Failed upstream attempts, by provider and reason",
            ["provider", "reason"], registry=reg)
        for fmt in CLIENT_FORMATS:
            self.duration.labels(client_format=fmt)
        for provider in PROVIDERS:
            self.ttfb.labels(provider=provider)
            for kind in ErrorKind:
                self.upstream_errors.labels(provider=provider, reason=kind.value)

    def observe_proxy(self, *, client_format: str, provider: str, model: str, code: int,
                      duration: float, ttfb: float | None, tokens: Mapping[str, int]) -> None:
        """One finished generation request (labels already bounded by the caller)."""
        child = self._child
        child(self.requests, client_format, provider, model, code).inc()
        child(self.duration, client_format).observe(max(0.0, duration))
        if ttfb is not None and provider != "none":
            child(self.ttfb, provider).observe(max(0.0, ttfb))
        for kind in TOKEN_KINDS:
            count = tokens.get(f"{kind}_tokens", 0)
            if count > 0:
                child(self.tokens, provider, model, kind).inc(count)

    def _child(self, metric: Any, *values: Any) -> Any:
        """``metric.labels(*values)``, remembered: prometheus-client validates and converts
        the labels on every call, several times per request.  (The label sets are bounded by the
        callers, and no child is ever removed.)"""
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*(str(v) for v in values))
        return found

    def upstream_error(self, provider: str, reason: str) -> None:
        """One failed upstream attempt (``reason``: an `ErrorKind` value)."""
        self._child(self.upstream_errors, provider, reason).inc()

    def track_credentials(self, describe: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        """Expose ``cliproxyd_credentials{provider,state}`` from ``describe()`` at scrape time
        (the live pool's `Pool.describe`)."""
        self.registry.register(_CredentialsCollector(describe))

    def track_in_flight(self, count: Callable[[], int]) -> None:
        """Expose ``cliproxyd_http_requests_in_flight`` and ``cliproxyd_inflight_requests``
        (the issue's name for it), read from ``count`` at scrape time."""
        for name in ("cliproxyd_http_requests_in_flight", "cliproxyd_inflight_requests"):
            gauge = Gauge(name, "HTTP requests being received or answered (streams included)",
                          registry=self.registry)
            gauge.set_function(lambda: float(count()))

    def observe_request(self, route: str, method: str, code: int) -> None:
        """Count one answered request (``route`` must be a route-table name)."""
        method = method if method in _METHODS else "OTHER"
        self._child(self.http_requests, route, method, code).inc()

    def reload_done(self, ok: bool) -> None:
        """Count one reload (SIGHUP or a management edit) by its result."""
        self.config_reloads.labels(result=RELOAD_RESULTS[0] if ok else RELOAD_RESULTS[1]).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _CredentialsCollector(Collector):
    """``cliproxyd_credentials{provider,state}`` read from the live pool at each scrape."""

    def __init__(self, describe: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self._describe = describe

    def describe(self) -> list:
        return []  # unknown until scraped: keeps registration free of side effects

    def collect(self):
        family = GaugeMetricFamily("cliproxyd_credentials",
                                   "Configured upstream credentials, by provider and state",
                                   labels=["provider", "state"])
        counts = self._describe()
        for provider in sorted(set(PROVIDERS) | set(counts)):
            row = counts.get(provider, {})
            for state in CREDENTIAL_STATES:
                family.add_metric([provider, state], float(row.get(state, 0)))
        yield family
