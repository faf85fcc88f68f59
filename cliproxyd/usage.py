"""Usage statistics as data: one `UsageRecord` per client request, its dedup key, the reference
JSON shapes (``GET /usage``, export, import) and the time helpers they need.

CLIProxyAPI's shapes (reference/cliproxyapi-surface.md §6) are kept so its management UI and
scripts work: ``{"usage": {totals, "apis": {<client key or "METHOD /route">: {"models": {<model>:
{"details": [...]}}}}, by-day and by-hour buckets}, "failed_requests": n}``.  Day buckets are
``YYYY-MM-DD`` and hour buckets ``"00"``–``"23"`` in the server's local time (hours fold all
days); they are computed when a record is made and stored with it.

Timestamps are integer microseconds since the epoch: the export's RFC 3339 text round-trips
exactly, so re-importing an export skips every detail.  The dedup key is the reference's
``api|model|timestamp(UTC RFC3339Nano)|source|auth_index|failed|input|output|reasoning|cached|
total``.

This module does no I/O and reads no clock: callers pass ``now`` and the local-time offset
function (`local_offset`), so tests are deterministic.  Persistence is `usage_store`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "EXPORT_VERSION", "LocalBuckets", "Totals", "UsageImportError", "UsageRecord", "dedup_key",
    "format_local", "format_utc_nano", "local_offset", "parse_import", "parse_timestamp", "snapshot",
]

EXPORT_VERSION = 1
# An import body holds at most this many details (a bound on memory for one request).
MAX_IMPORT_DETAILS = 1_000_000

OffsetFn = Callable[[int], int]  # microseconds since the epoch → local UTC offset in seconds


def local_offset(ts_us: int) -> int:
    """The server's local UTC offset (seconds) at ``ts_us``; the one place local time is read."""
    return int(dt.datetime.fromtimestamp(ts_us / 1e6).astimezone().utcoffset().total_seconds())


class UsageRecord(NamedTuple):
    """One client request.  ``api`` is the client key (or ``"METHOD /route"`` in open mode),
    ``source`` a log-safe credential label, ``auth_index`` its 16-hex-digit id.

    A named tuple, not a frozen dataclass: one is made for every proxied request, and the
    dataclass's fourteen ``object.__setattr__`` calls took a third of recording it."""

    ts_us: int
    api: str
    model: str
    source: str = ""
    auth_index: str = ""
    failed: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    latency_ms: int = 0
    day: str = ""
    hour: str = ""

    @classmethod
    def make(cls, *, ts_us: int, offset: int, api: str, model: str, input_tokens: int = 0,
             output_tokens: int = 0, reasoning_tokens: int = 0, cached_tokens: int = 0,
             total_tokens: int = 0, buckets: tuple[str, str] | None = None,
             **rest: Any) -> UsageRecord:
        """A record with the reference's total rule and its local day/hour buckets
        (``buckets``, when the caller has them from `LocalBuckets`).

        Total: the upstream's total, else input + output + reasoning, else that plus cached.
        """
        total = total_tokens or (input_tokens + output_tokens + reasoning_tokens)
        total = total or cached_tokens
        day, hour = buckets or _day_hour(ts_us, offset)
        return cls(ts_us=ts_us, api=api or "unknown", model=model or "unknown",
                   input_tokens=input_tokens, output_tokens=output_tokens,
                   reasoning_tokens=reasoning_tokens, cached_tokens=cached_tokens,
                   total_tokens=total, day=day, hour=hour, **rest)

    def detail(self, offset: int) -> dict[str, Any]:
        """The reference's detail object (timestamp in local time with its offset)."""
        return {
            "timestamp": format_local(self.ts_us, offset), "latency_ms": self.latency_ms,
            "source": self.source, "auth_index": self.auth_index,
            "tokens": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                       "reasoning_tokens": self.reasoning_tokens,
                       "cached_tokens": self.cached_tokens, "total_tokens": self.total_tokens},
            "failed": self.failed,
        }


def _day_hour(ts_us: int, offset: int) -> tuple[str, str]:
    local = _utc(ts_us) + dt.timedelta(seconds=offset)
    return local.strftime("%Y-%m-%d"), local.strftime("%H")


_QUARTER_HOUR_US = 900_000_000


class LocalBuckets:
    """``(offset, (day, hour))`` of a timestamp, worked out once per UTC quarter hour.

    Every zone's UTC offset, and every change of it, falls on a quarter hour, so all three are
    constant within one.  Working them out for every request (a time-zone lookup and two
    strftime calls) cost more than the rest of making its usage record.  ``offset_of`` is the
    local-offset function (`local_offset`; tests pass their own)."""

    def __init__(self, offset_of: OffsetFn) -> None:
        self._offset_of = offset_of
        self._quarter: int | None = None
        self._value: tuple[int, tuple[str, str]] = (0, ("", ""))

    def __call__(self, ts_us: int) -> tuple[int, tuple[str, str]]:
        quarter = ts_us // _QUARTER_HOUR_US
        if quarter != self._quarter:
            offset = self._offset_of(ts_us)
            self._quarter, self._value = quarter, (offset, _day_hour(ts_us, offset))
        return self._value


def dedup_key(rec: UsageRecord) -> str:
    """The reference's import dedup key."""
    return (f"{rec.api}|{rec.model}|{format_utc_nano(rec.ts_us)}|{rec.source}|{rec.auth_index}|"
            f"{'true' if rec.failed else 'false'}|{rec.input_tokens}|{rec.output_tokens}|"
            f"{rec.reasoning_tokens}|{rec.cached_tokens}|{rec.total_tokens}")


# ---------------------------------------------------------------------------------------------
# Time text.

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})")


def _utc(ts_us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ts_us)


def format_utc_nano(ts_us: int) -> str:
    """Go's RFC3339Nano in UTC: fraction digits without trailing zeros, ``Z`` suffix.  (Part of
    every record's dedup key: time.gmtime is a third of the cost of a datetime here.)"""
    seconds, micro = divmod(ts_us, 1_000_000)
    frac = f"{micro:06d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        (f".{frac}" if frac else "") + "Z"


def format_local(ts_us: int, offset: int) -> str:
    """RFC 3339 with microseconds in the local offset (``2026-04-10T12:00:00.123456+08:00``)."""
    tz = dt.timezone(dt.timedelta(seconds=offset))
    return _utc(ts_us).astimezone(tz).isoformat(timespec="microseconds")


def parse_timestamp(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 timestamp (nanoseconds are truncated);
    raises ValueError."""
    m = _RFC3339.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(9, "0")[:6])
    zone = m.group(8)
    offset = 0 if zone in ("Z", "z") else (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (
        -1 if zone[0] == "-" else 1)
    when = dt.datetime(year, month, day, hour, minute, second, micro,
                       tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
    return (when - _EPOCH) // dt.timedelta(microseconds=1)


# ---------------------------------------------------------------------------------------------
# GET /usage.

@dataclass(frozen=True)
class Totals:
    """Aggregated counts for one (api, model) pair (pruned details included)."""

    api: str
    model: str
    requests: int
    failures: int
    tokens: int


def snapshot(totals: Iterable[Totals], details: Iterable[UsageRecord],
             buckets: Mapping[str, Mapping[str, tuple[int, int]]], offset: OffsetFn) -> dict:
    """The ``GET /usage`` body from aggregated rows, the retained details and the buckets
    (``{"day"|"hour": {key: (requests, tokens)}}``)."""
    apis: dict[str, dict] = {}
    total_requests = failures = tokens = 0
    for row in totals:
        api = apis.setdefault(row.api, {"total_requests": 0, "total_tokens": 0, "models": {}})
        api["total_requests"] += row.requests
        api["total_tokens"] += row.tokens
        api["models"][row.model] = {"total_requests": row.requests, "total_tokens": row.tokens,
                                    "details": []}
        total_requests += row.requests
        failures += row.failures
        tokens += row.tokens
    for rec in details:
        model = apis.get(rec.api, {}).get("models", {}).get(rec.model)
        if model is not None:
            model["details"].append(rec.detail(offset(rec.ts_us)))
    usage = {
        "total_requests": total_requests, "success_count": total_requests - failures,
        "failure_count": failures, "total_tokens": tokens, "apis": apis,
        "requests_by_day": {k: v[0] for k, v in sorted(buckets.get("day", {}).items())},
        "requests_by_hour": {k: v[0] for k, v in sorted(buckets.get("hour", {}).items())},
        "tokens_by_day": {k: v[1] for k, v in sorted(buckets.get("day", {}).items())},
        "tokens_by_hour": {k: v[1] for k, v in sorted(buckets.get("hour", {}).items())},
    }
    return {"usage": usage, "failed_requests": failures}


# ---------------------------------------------------------------------------------------------
# POST /usage/import.

class UsageImportError(ValueError):
    """An import body that cannot be used; the message is the reference's error text."""


def parse_import(body: Any, now_us: int, offset: OffsetFn) -> list[UsageRecord]:
    """The details of an export body (``{"version": 0|1, "usage": snapshot}``) as records.

    Only ``usage.apis.*.models.*.details`` are read (aggregates are recomputed, as the reference
    does); negative latency becomes 0, a missing or zero timestamp becomes ``now_us``.
    """
    if not isinstance(body, dict):
        raise UsageImportError("invalid json")
    version = body.get("version", 0)
    if version not in (0, 1, None) or isinstance(version, bool):
        raise UsageImportError("unsupported version")
    usage = body.get("usage")
    if usage is None:
        return []
    apis = _present(_mapping(usage, "usage").get("apis"), {})
    records: list[UsageRecord] = []
    for api, api_body in _mapping(apis, "usage.apis").items():
        models = _present(_mapping(api_body, f"usage.apis.{api}").get("models"), {})
        for model, model_body in _mapping(models, f"usage.apis.{api}.models").items():
            where = f"usage.apis.{api}.models.{model}.details"
            details = _present(_mapping(model_body, where).get("details"), [])
            if not isinstance(details, list):
                raise UsageImportError(f"{where} must be a list")
            for i, item in enumerate(details):
                records.append(_detail(item, str(api), str(model), f"{where}[{i}]", now_us, offset))
                if len(records) > MAX_IMPORT_DETAILS:
                    raise UsageImportError(f"too many details (more than {MAX_IMPORT_DETAILS})")
    return records


def _present(value: Any, default: Any) -> Any:
    return default if value is None else value


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, dict):
        raise UsageImportError(f"{where} must be an object")
    return value


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise UsageImportError(f"{where} must be a number")
    if abs(value) > 1 << 62:
        raise UsageImportError(f"{where} is out of range")
    return int(value)


def _detail(item: Any, api: str, model: str, where: str, now_us: int,
            offset: OffsetFn) -> UsageRecord:
    item = _mapping(item, where)
    stamp = item.get("timestamp")
    if stamp in (None, "", "0001-01-01T00:00:00Z"):
        ts_us = now_us
    elif isinstance(stamp, str):
        try:
            ts_us = parse_timestamp(stamp)
        except (ValueError, OverflowError):
            raise UsageImportError(f"{where}.timestamp is not an RFC 3339 timestamp") from None
    else:
        raise UsageImportError(f"{where}.timestamp must be a string")
    tokens = _mapping(_present(item.get("tokens"), {}), f"{where}.tokens")
    counts = {k: max(0, _int(tokens.get(k), f"{where}.tokens.{k}")) for k in (
        "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "total_tokens")}
    failed = item.get("failed", False)
    if not isinstance(failed, bool):
        raise UsageImportError(f"{where}.failed must be true or false")
    source, auth_index = item.get("source") or "", item.get("auth_index") or ""
    if not isinstance(source, str) or not isinstance(auth_index, str):
        raise UsageImportError(f"{where}.source and auth_index must be strings")
    return UsageRecord.make(
        ts_us=ts_us, offset=offset(ts_us), api=api, model=model, source=source,
        auth_index=auth_index, failed=failed,
        latency_ms=max(0, _int(item.get("latency_ms"), f"{where}.latency_ms")), **counts)
