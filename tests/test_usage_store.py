"""cliproxyd.usage_store: the SQLite writer thread, persistence across reopen, import dedup,
retention roll-ups, file modes and the recorder's live switches."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from dataclasses import dataclass

from cliproxyd.usage import UsageRecord, parse_import
from cliproxyd.usage_store import UsageRecorder, UsageStore, _hash

DAY_US = 86_400 * 10**6


def rec(ts_us: int, **kw) -> UsageRecord:
    base = {"ts_us": ts_us, "offset": 0, "api": "k", "model": "m", "source": "src", "input_tokens": 10,
                "output_tokens": 5}
    base.update(kw)
    return UsageRecord.make(**base)


def now_us() -> int:
    return int(time.time() * 1e6)


def snap(store: UsageStore) -> dict:
    return store.call(store.snapshot).result(10)["usage"]


def test_records_are_readable_after_they_are_handed_over(tmp_path):
    store = UsageStore(str(tmp_path / "u.sqlite"), 30)
    try:
        for i in range(3):
            store.record(rec(now_us() + i, failed=i == 2))
        usage = snap(store)  # a job runs after pending records are committed
        assert (usage["total_requests"], usage["failure_count"], usage["total_tokens"]) == (3, 1, 45)
        assert len(usage["apis"]["k"]["models"]["m"]["details"]) == 3
    finally:
        store.close()


def test_a_batch_of_any_size_is_written_whole_and_in_order(tmp_path):
    """Records go in as multi-row INSERTs cut in power-of-two sizes: every size and order kept."""
    path = str(tmp_path / "u.sqlite")
    store = UsageStore(path, 30)
    start, count = now_us(), 256 + 128 + 64 + 7  # 455 rows: five statement sizes
    for i in range(count):
        store.record(rec(start + i, model=f"m{i % 3}", input_tokens=i, failed=i % 5 == 0))
    store.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT ts_us, model, input, failed, total FROM details ORDER BY id").fetchall()
    conn.close()
    assert rows == [(start + i, f"m{i % 3}", i, int(i % 5 == 0), i + 5) for i in range(count)]


def test_data_survives_close_and_reopen(tmp_path):
    path = str(tmp_path / "state" / "u.sqlite")
    store = UsageStore(path, 30)
    store.record(rec(now_us()))
    store.close()  # commits what is queued
    again = UsageStore(path, 30)
    try:
        assert snap(again)["total_requests"] == 1
    finally:
        again.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700


def test_import_skips_details_already_present(tmp_path):
    store = UsageStore(str(tmp_path / "u.sqlite"), 30)
    try:
        store.record(rec(now_us()))
        exported = {"version": 1, "usage": snap(store)}
        records = parse_import(exported, now_us(), lambda ts: 0)
        assert store.call(lambda c: store.import_records(c, records)).result(10) == (0, 1)
        fresh = [rec(now_us() + 5, model="other")] * 2  # the same detail twice in one import
        assert store.call(lambda c: store.import_records(c, fresh)).result(10) == (1, 1)
        assert store.call(store.counts).result(10) == (2, 0)
    finally:
        store.close()


def test_import_matches_every_field_of_the_dedup_key(tmp_path):
    store = UsageStore(str(tmp_path / "u.sqlite"), 30)
    try:
        base = rec(now_us(), auth_index="0123456789abcdef")
        store.record(base)
        snap(store)
        # A detail that differs from the stored one in one key field only is a different request;
        # latency and the local buckets are not part of the key.
        twins = [base._replace(**{field: value}) for field, value in (
            ("ts_us", base.ts_us + 1), ("api", "k2"), ("model", "m2"), ("source", "s2"),
            ("auth_index", "fedcba9876543210"), ("failed", True), ("input_tokens", 11),
            ("output_tokens", 6), ("reasoning_tokens", 1), ("cached_tokens", 1),
            ("total_tokens", 99))]
        same = base._replace(latency_ms=base.latency_ms + 7, hour="23")
        assert store.call(lambda c: store.import_records(c, [*twins, same])).result(10) == (11, 1)
    finally:
        store.close()


_OLD_SCHEMA = """
CREATE TABLE details (
    id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL, api TEXT NOT NULL, model TEXT NOT NULL,
    source TEXT NOT NULL, auth_index TEXT NOT NULL, failed INTEGER NOT NULL,
    input INTEGER NOT NULL, output INTEGER NOT NULL, reasoning INTEGER NOT NULL,
    cached INTEGER NOT NULL, total INTEGER NOT NULL, latency_ms INTEGER NOT NULL,
    day TEXT NOT NULL, hour TEXT NOT NULL, dedup INTEGER NOT NULL);
CREATE INDEX details_ts ON details (ts_us);
CREATE INDEX details_dedup ON details (dedup);
CREATE TABLE pruned_keys (h INTEGER PRIMARY KEY);
"""


def test_a_database_of_the_earlier_schema_is_migrated_and_keeps_its_data(tmp_path):
    """Until 2026-12-06 details carried a hashed dedup key with its own index."""
    path = tmp_path / "u.sqlite"
    kept, pruned = rec(now_us() - DAY_US), rec(now_us() - 40 * DAY_US)
    conn = sqlite3.connect(path)
    conn.executescript(_OLD_SCHEMA)
    conn.execute("INSERT INTO details VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (*kept[:5], 0, *kept[6:], _hash(kept)))
    conn.execute("INSERT INTO pruned_keys VALUES (?)", (_hash(pruned),))
    conn.commit()
    conn.close()
    os.chmod(path, 0o600)
    store = UsageStore(str(path), 30)
    try:
        store.record(rec(now_us()))
        assert snap(store)["total_requests"] == 2  # the old detail and the new one
        assert store.call(lambda c: store.import_records(c, [kept, pruned])).result(10) == (0, 2)
        columns = store.call(lambda c: [r[1] for r in c.execute("PRAGMA table_info(details)")])
        assert "dedup" not in columns.result(10)
    finally:
        store.close()


def test_retention_rolls_old_details_up_and_keeps_their_dedup_keys(tmp_path):
    store = UsageStore(str(tmp_path / "u.sqlite"), 30)
    try:
        old = rec(now_us() - 40 * DAY_US, failed=True)
        store.record(old)
        store.record(rec(now_us()))
        usage = snap(store)  # the first commit also prunes
        assert usage["total_requests"] == 2 and usage["failure_count"] == 1
        assert usage["total_tokens"] == 30
        assert len(usage["apis"]["k"]["models"]["m"]["details"]) == 1  # only the recent one
        assert len(usage["requests_by_day"]) == 2  # the old day survives in the roll-up
        assert store.call(lambda c: store.import_records(c, [old])).result(10) == (0, 1)
    finally:
        store.close()


def test_prune_honours_a_changed_retention(tmp_path):
    store = UsageStore(str(tmp_path / "u.sqlite"), 30)
    try:
        store.record(rec(now_us() - 5 * DAY_US))
        assert snap(store)["apis"]["k"]["models"]["m"]["details"]
        store.retention_days = 1
        assert store.call(store.prune).result(10) == 1
        usage = snap(store)
        assert usage["apis"]["k"]["models"]["m"]["details"] == [] and usage["total_requests"] == 1
    finally:
        store.close()


def test_an_unopenable_database_fails_jobs_without_blocking(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = UsageStore(str(blocker / "u.sqlite"), 30)
    try:
        store.record(rec(now_us()))
        future = store.call(store.snapshot)
        try:
            future.result(10)
        except RuntimeError as exc:
            assert "usage database unavailable" in str(exc)
        else:
            raise AssertionError("the job should fail")
    finally:
        store.close()


@dataclass(frozen=True)
class _Cfg:
    usage_db_path: str
    usage_statistics_enabled: bool = True
    usage_retention_days: int = 30


def test_recorder_follows_the_switch_and_the_path(tmp_path):
    recorder = UsageRecorder()
    a, b = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    try:
        recorder.record(_Cfg(a, usage_statistics_enabled=False), rec(now_us()))
        recorder.record(_Cfg(a), rec(now_us()))
        store_a = recorder.store_for(_Cfg(a))
        assert snap(store_a)["total_requests"] == 1  # nothing recorded while off
        recorder.record(_Cfg(b, usage_retention_days=7), rec(now_us()))
        store_b = recorder.store_for(_Cfg(b, usage_retention_days=7))
        assert store_b is not store_a and store_b.retention_days == 7
        assert snap(store_b)["total_requests"] == 1
    finally:
        recorder.close()
