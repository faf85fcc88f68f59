"""cliproxyd.usage: records, the reference's total rule, buckets, timestamps, snapshot shape,
import parsing and its dedup key (reference/cliproxyapi-surface.md §6)."""

from __future__ import annotations

import pytest

from cliproxyd.usage import (
    LocalBuckets,
    Totals,
    UsageImportError,
    UsageRecord,
    dedup_key,
    format_local,
    format_utc_nano,
    parse_import,
    parse_timestamp,
    snapshot,
)

T0 = parse_timestamp("2026-04-10T04:00:00.123456Z")
UTC = lambda ts: 0
PLUS8 = lambda ts: 8 * 3600


def rec(**kw) -> UsageRecord:
    base = {"ts_us": T0, "offset": 0, "api": "sk-client-1", "model": "gemini-2.5-pro", "source": "s",
                "auth_index": "1a2b3c4d5e6f7a8b", "input_tokens": 100, "output_tokens": 200}
    base.update(kw)
    return UsageRecord.make(**base)


def test_total_uses_upstream_total_then_sum_then_cached():
    assert rec(total_tokens=999).total_tokens == 999
    assert rec(reasoning_tokens=5).total_tokens == 305
    assert rec(input_tokens=0, output_tokens=0, cached_tokens=7).total_tokens == 7


def test_day_and_hour_buckets_use_the_local_offset():
    late = parse_timestamp("2026-04-10T20:30:00Z")
    r = rec(ts_us=late, offset=8 * 3600)
    assert (r.day, r.hour) == ("2026-04-11", "04")
    assert (rec(ts_us=late, offset=0).day, rec(ts_us=late, offset=0).hour) == ("2026-04-10", "20")


def test_empty_api_and_model_become_unknown():
    r = rec(api="", model="")
    assert (r.api, r.model) == ("unknown", "unknown")


@pytest.mark.parametrize("text, expected", [
    ("2026-04-10T04:00:00Z", "2026-04-10T04:00:00Z"),
    ("2026-04-10T12:00:00.123456+08:00", "2026-04-10T04:00:00.123456Z"),
    ("2026-04-10T04:00:00.120000000Z", "2026-04-10T04:00:00.12Z"),
    ("2026-04-10T04:00:00.123456789Z", "2026-04-10T04:00:00.123456Z"),  # ns truncated to µs
    ("2026-04-09T23:00:00-05:00", "2026-04-10T04:00:00Z"),
])
def test_timestamps_round_trip_as_go_rfc3339nano(text, expected):
    assert format_utc_nano(parse_timestamp(text)) == expected


@pytest.mark.parametrize("bad", ["yesterday", "2026-04-10", "2026-04-10T04:00:00", "2026-13-10T04:00:00Z"])
def test_bad_timestamps_are_refused(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_local_format_carries_the_offset_and_microseconds():
    assert format_local(T0, 8 * 3600) == "2026-04-10T12:00:00.123456+08:00"
    assert parse_timestamp(format_local(T0, 8 * 3600)) == T0


def test_dedup_key_is_the_reference_key():
    r = rec(failed=True, cached_tokens=3, reasoning_tokens=4)
    assert dedup_key(r) == ("sk-client-1|gemini-2.5-pro|2026-04-10T04:00:00.123456Z|s|"
                            "1a2b3c4d5e6f7a8b|true|100|200|4|3|304")


def test_snapshot_has_the_reference_shape():
    details = [rec(), rec(ts_us=T0 + 1, failed=True, input_tokens=1, output_tokens=1)]
    totals = [Totals("sk-client-1", "gemini-2.5-pro", requests=2, failures=1, tokens=302)]
    buckets = {"day": {"2026-04-10": (2, 302)}, "hour": {"04": (2, 302)}}
    body = snapshot(totals, details, buckets, UTC)
    usage = body["usage"]
    assert body["failed_requests"] == 1
    assert (usage["total_requests"], usage["success_count"], usage["failure_count"],
            usage["total_tokens"]) == (2, 1, 1, 302)
    model = usage["apis"]["sk-client-1"]["models"]["gemini-2.5-pro"]
    assert model["total_requests"] == 2 and len(model["details"]) == 2
    assert model["details"][0] == {
        "timestamp": "2026-04-10T04:00:00.123456+00:00", "latency_ms": 0, "source": "s",
        "auth_index": "1a2b3c4d5e6f7a8b",
        "tokens": {"input_tokens": 100, "output_tokens": 200, "reasoning_tokens": 0,
                   "cached_tokens": 0, "total_tokens": 300},
        "failed": False}
    assert usage["requests_by_day"] == {"2026-04-10": 2} and usage["tokens_by_hour"] == {"04": 302}


def test_empty_snapshot_has_empty_maps():
    usage = snapshot([], [], {}, UTC)["usage"]
    assert usage["apis"] == {} and usage["requests_by_day"] == {} and usage["total_requests"] == 0


def _export(details: list[dict], version=1) -> dict:
    return {"version": version, "usage": {"total_requests": 999, "apis": {
        "k": {"total_requests": 999, "models": {"m": {"details": details}}}}}}


def test_import_reads_details_only_and_clamps():
    body = _export([{"timestamp": "2026-04-10T12:00:00.123456+08:00", "latency_ms": -5,
                     "source": "x", "auth_index": "y", "failed": True,
                     "tokens": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}},
                    {"tokens": {}}])
    records = parse_import(body, now_us=T0 + 42, offset=PLUS8)
    assert len(records) == 2
    first, second = records
    assert (first.ts_us, first.latency_ms, first.failed, first.total_tokens) == (T0, 0, True, 3)
    assert (first.api, first.model, first.day, first.hour) == ("k", "m", "2026-04-10", "12")
    assert second.ts_us == T0 + 42  # a missing timestamp becomes now


def test_import_re_export_gives_identical_dedup_keys():
    original = [rec(), rec(ts_us=T0 + 7, failed=True)]
    body = snapshot([Totals("sk-client-1", "gemini-2.5-pro", 2, 1, 600)], original, {}, PLUS8)
    again = parse_import({"version": 1, "usage": body["usage"]}, now_us=0, offset=PLUS8)
    assert [dedup_key(r) for r in again] == [dedup_key(r) for r in original]


@pytest.mark.parametrize("body, message", [
    ([], "invalid json"),
    ({"version": 2, "usage": {}}, "unsupported version"),
    ({"version": "1", "usage": {}}, "unsupported version"),
    ({"usage": {"apis": []}}, "usage.apis must be an object"),
    (_export("nope"), "usage.apis.k.models.m.details must be a list"),
    (_export([{"timestamp": "soon"}]), "timestamp is not an RFC 3339 timestamp"),
    (_export([{"tokens": {"input_tokens": "5"}}]), "input_tokens must be a number"),
    (_export([{"failed": "yes"}]), "failed must be true or false"),
    (_export([{"latency_ms": True}]), "latency_ms must be a number"),
    (_export([{"latency_ms": 10**400}]), "latency_ms is out of range"),
])
def test_import_rejects_bad_bodies_naming_the_field(body, message):
    with pytest.raises(UsageImportError, match=message):
        parse_import(body, now_us=T0, offset=UTC)


def test_import_version_zero_or_missing_is_accepted():
    assert len(parse_import(_export([{}], version=0), now_us=T0, offset=UTC)) == 1
    body = _export([{}])
    del body["version"]
    assert len(parse_import(body, now_us=T0, offset=UTC)) == 1


def test_local_buckets_follow_an_offset_change_and_match_make():
    """Worked out once per UTC quarter hour, and the same day/hour `UsageRecord.make` gives.
    Nepal's +5:45 moves the local hour at UTC :15; a DST-like change lands on a quarter."""
    change = 1_700_001_000 * 10**6  # on a quarter hour (1_700_001_000 s is 15-minute aligned)
    assert change % 900_000_000 == 0
    def offset_of(ts_us: int) -> int:
        return 5 * 3600 + 45 * 60 if ts_us < change else 6 * 3600 + 45 * 60

    asked: list[int] = []
    buckets = LocalBuckets(lambda ts_us: asked.append(ts_us) or offset_of(ts_us))
    start = change - 2 * 3600 * 10**6
    for ts in range(start, change + 2 * 3600 * 10**6, 60 * 10**6 + 7):  # every minute or so
        offset, (day, hour) = buckets(ts)
        assert offset == offset_of(ts)
        rec = UsageRecord.make(ts_us=ts, offset=offset, api="k", model="m")
        assert (day, hour) == (rec.day, rec.hour), ts
    assert len(asked) == len({ts // 900_000_000 for ts in asked}) == 16  # once per quarter hour
