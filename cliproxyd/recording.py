"""What happens when a proxied request finishes: one usage record and its metric samples.

`RequestDone` is the handler's account of one generation request (what the client asked, what
the pipeline's `Outcome` says, the status written, timings); `record` turns it into a
`usage.UsageRecord` (unless ``usage-statistics-enabled`` is off) and into the issue's metrics.
Label values stay bounded: the model label is a catalogue name (``registry.find``) or
``"other"``, the provider a credential kind or ``"none"``, the error reason an `ErrorKind`.

Usage fields follow the reference (§6): ``api`` is the client key that authenticated, or
``"METHOD /route pattern"`` in open mode; ``model`` the model the client asked for; ``source``
the credential's log-safe label (never a key); ``auth_index`` the credential id's hash part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cliproxyd.errors import ProxyError
from cliproxyd.usage import LocalBuckets, UsageRecord, local_offset

__all__ = ["RequestDone", "api_key_for", "record"]

log = logging.getLogger(__name__)

# The server's local offset and day/hour buckets for usage records (the process's time zone).
_local_buckets = LocalBuckets(local_offset)

# Routes whose path carries client input: usage groups them under a fixed pattern.
_ROUTE_PATTERNS = {"gemini_action": "/v1beta/models/*action"}


@dataclass(frozen=True)
class RequestDone:
    """One finished generation request, as the handler saw it."""

    client_format: str
    api: str
    status: int
    started: float  # wall-clock seconds since the epoch
    duration: float  # seconds
    first_byte: float  # seconds from start to the first byte written to the client
    outcome: Any = None  # pipeline.Outcome, also on failure when the pipeline got that far
    requested_model: str = ""


def api_key_for(principal: str, method: str, route_name: str, path: str) -> str:
    """The usage grouping key: the client key, or ``"METHOD /pattern"`` in open mode."""
    return principal or f"{method} {_ROUTE_PATTERNS.get(route_name, path)}"


def record(state: Any, runtime: Any, done: RequestDone) -> None:
    """Record ``done`` in usage statistics and metrics; never raises (the answer is sent)."""
    try:
        _record(state, runtime, done)
    except Exception:
        log.exception("could not record a finished request for usage statistics and metrics")


def _record(state: Any, runtime: Any, done: RequestDone) -> None:
    outcome = done.outcome
    usage = getattr(outcome, "usage", None)
    model = getattr(outcome, "model", "") or done.requested_model
    failed = done.status >= 400 or getattr(outcome, "stream_error", None) is not None
    tokens = _tokens(usage)
    if runtime.config.usage_statistics_enabled:
        ts_us = int(done.started * 1e6)
        cred_id = getattr(outcome, "credential_id", None) or ""
        offset, buckets = _local_buckets(ts_us)
        rec = UsageRecord.make(
            ts_us=ts_us, offset=offset, buckets=buckets, api=done.api, model=model,
            source=getattr(outcome, "credential", None) or "",
            auth_index=cred_id.rpartition("-")[2], failed=failed,
            latency_ms=int(done.duration * 1000), **tokens)
        state.usage.record(runtime.config, rec)
    listed = runtime.registry.find(model) if model else None
    provider = getattr(outcome, "provider", None) or "none"
    state.metrics.observe_proxy(
        client_format=done.client_format, provider=provider,
        model=listed.id if listed is not None else "other", code=done.status,
        duration=done.duration, ttfb=done.first_byte if getattr(outcome, "attempts", 0) else None,
        tokens=tokens)
    for kind, err in _upstream_failures(outcome):
        state.metrics.upstream_error(kind, err.kind.value)


def _tokens(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    return {"input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0,
            "reasoning_tokens": usage.reasoning_tokens or 0,
            "cached_tokens": usage.cached_input_tokens or 0, "total_tokens": usage.total_tokens or 0}


def _upstream_failures(outcome: Any) -> list[tuple[str, ProxyError]]:
    """Every failed upstream attempt: those the pipeline failed over from, then a mid-stream
    break (client cancellations are the client's doing, not the upstream's)."""
    if outcome is None:
        return []
    found = list(getattr(outcome, "failures", ()))
    if outcome.stream_error is not None and outcome.provider:
        found.append((outcome.provider, outcome.stream_error))
    return [(kind, err) for kind, err in found if err.status != 499]
