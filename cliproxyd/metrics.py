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

import bisect
import platform
from collections.abc import Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
        self.http_requests = _Tally(
            "cliproxyd_http_requests", "HTTP requests answered, by route name, method and "
            "status code", ("route", "method", "code"), registry=self.registry)
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
        self.requests = _Tally(
            "cliproxyd_requests", "Proxied generation requests, by client format, provider, "
            "model and status code", ("client_format", "provider", "model", "code"),
            registry=reg)
        self.duration = _Spread(
            "cliproxyd_request_duration_seconds", "Proxied generation requests: time from the "
            "request's arrival to its last byte", ("client_format",), _DURATION_BUCKETS,
            registry=reg)
        self.ttfb = _Spread(
            "cliproxyd_upstream_ttfb_seconds", "Time from a proxied request's arrival to the "
            "first byte written to the client, by provider", ("provider",), _TTFB_BUCKETS,
            registry=reg)
        self.tokens = _Tally(
            "cliproxyd_tokens", "Tokens reported by upstreams, by provider, model and kind",
            ("provider", "model", "kind"), registry=reg)
        self.upstream_errors = _Tally(
            "cliproxyd_upstream_errors", "Failed upstream attempts, by provider and reason",
            ("provider", "reason"), registry=reg)
        for fmt in CLIENT_FORMATS:
            self.duration.seed((fmt,))
        for provider in PROVIDERS:
            self.ttfb.seed((provider,))
            for kind in ErrorKind:
                self.upstream_errors.add((provider, kind.value), 0)

    def observe_proxy(self, *, client_format: str, provider: str, model: str, code: int,
                      duration: float, ttfb: float | None, tokens: Mapping[str, int]) -> None:
        """One finished generation request (labels already bounded by the caller)."""
        self.requests.add((client_format, provider, model, str(code)))
        self.duration.observe((client_format,), max(0.0, duration))
        if ttfb is not None and provider != "none":
            self.ttfb.observe((provider,), max(0.0, ttfb))
        for kind in TOKEN_KINDS:
            count = tokens.get(f"{kind}_tokens", 0)
            if count > 0:
                self.tokens.add((provider, model, kind), count)

    def upstream_error(self, provider: str, reason: str) -> None:
        """One failed upstream attempt (``reason``: an `ErrorKind` value)."""
        self.upstream_errors.add((provider, reason))

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
        self.http_requests.add((route, method if method in _METHODS else "OTHER", str(code)))

    def reload_done(self, ok: bool) -> None:
        """Count one reload (SIGHUP or a management edit) by its result."""
        self.config_reloads.labels(result=RELOAD_RESULTS[0] if ok else RELOAD_RESULTS[1]).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _Tally(Collector):
    """A counter family kept as a plain dict of label values → count, written at scrape time.

    prometheus-client's Counter takes a lock, checks the labels and looks up the child on every
    increment; a proxied request makes some eight increments and observations (about 5 us of
    the loop's time a request).  Every caller runs on the IOLoop, as does the scrape, so plain
    arithmetic is safe here."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...], *,
                 registry: CollectorRegistry) -> None:
        self._name, self._doc, self._labels = name, doc, list(labels)
        self._counts: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def add(self, labels: tuple[str, ...], amount: float = 1) -> None:
        counts = self._counts
        counts[labels] = counts.get(labels, 0) + amount

    def describe(self) -> list:
        return [CounterMetricFamily(self._name, self._doc, labels=self._labels)]

    def collect(self):
        family = CounterMetricFamily(self._name, self._doc, labels=self._labels)
        for labels, count in list(self._counts.items()):
            family.add_metric(list(labels), count)
        yield family


class _Spread(Collector):
    """A histogram family kept as plain per-bucket counts (see `_Tally` for why)."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...],
                 bounds: tuple[float, ...], *, registry: CollectorRegistry) -> None:
        self._name, self._doc, self._labels = name, doc, list(labels)
        self._bounds = tuple(sorted(bounds))
        self._le = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        self._series: dict[tuple[str, ...], list] = {}  # labels → [bucket counts, sum]
        registry.register(self)

    def seed(self, labels: tuple[str, ...]) -> list:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [[0] * (len(self._bounds) + 1), 0.0]
        return series

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self.seed(labels)
        # The first bound >= value: Prometheus buckets count observations <= their "le".
        series[0][bisect.bisect_left(self._bounds, value)] += 1
        series[1] += value

    def describe(self) -> list:
        return [HistogramMetricFamily(self._name, self._doc, labels=self._labels)]

    def collect(self):
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labels)
        for labels, (counts, total) in list(self._series.items()):
            running, buckets = 0, []
            for le, count in zip(self._le, counts):
                running += count
                buckets.append((le, running))
            family.add_metric(list(labels), buckets, total)
        yield family


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
