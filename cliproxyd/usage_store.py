"""Persistent usage statistics: an SQLite database written by one thread, off the IOLoop.

`UsageStore` owns one database file (``usage-db``, default ``<auth-dir>/usage.sqlite``, mode
0600) and one writer thread, the only user of its connection.  The loop hands it records
(`record`, never blocks) and jobs (`call`, a `concurrent.futures.Future`).  Records go on a
deque the thread drains every `FLUSH_SECONDS` (handing each one over through a queue woke the
thread per request, which cost the loop ~13% of its time under load), so a crash loses at most
the last half second.  A job is run after the records handed over before it are committed, so a
read sees all of them.

An import skips a detail whose dedup key (the reference's, `usage.dedup_key`) is already
there: details are matched on the key's fields through the timestamp index, so a recorded
request costs no hashing and no index of random keys (an index on a hash column made each record
four times as costly to write, and the file a third larger).

Retention (``usage-retention-days``) applies to *details*: once an hour, details older than the
window are folded into roll-up tables (totals per client key and model, day and hour buckets)
and their dedup keys kept (8-byte hashes), so totals survive pruning and a re-import of old
details is still skipped.

`UsageRecorder` is the process-lifetime front (in `AppState`): it follows the live config
(``usage-statistics-enabled``, ``usage-db``, retention) and owns the current store.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from cliproxyd.usage import Totals, UsageRecord, dedup_key, local_offset, snapshot

__all__ = ["FLUSH_SECONDS", "UsageRecorder", "UsageStore", "UsageUnavailable"]

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
_PRUNE_EVERY = 3600.0
_STOP = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS details (
    id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL, api TEXT NOT NULL, model TEXT NOT NULL,
    source TEXT NOT NULL, auth_index TEXT NOT NULL, failed INTEGER NOT NULL,
    input INTEGER NOT NULL, output INTEGER NOT NULL, reasoning INTEGER NOT NULL,
    cached INTEGER NOT NULL, total INTEGER NOT NULL, latency_ms INTEGER NOT NULL,
    day TEXT NOT NULL, hour TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS details_ts ON details (ts_us);
CREATE TABLE IF NOT EXISTS rollup (
    api TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL, failures INTEGER NOT NULL,
    tokens INTEGER NOT NULL, PRIMARY KEY (api, model));
CREATE TABLE IF NOT EXISTS rollup_buckets (
    kind TEXT NOT NULL, key TEXT NOT NULL, requests INTEGER NOT NULL, tokens INTEGER NOT NULL,
    PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS pruned_keys (h INTEGER PRIMARY KEY);
"""
_COLUMNS = ("ts_us, api, model, source, auth_index, failed, input, output, reasoning, cached, "
            "total, latency_ms, day, hour")
# The dedup key's fields (`usage.dedup_key`), as columns.
_KEY_COLUMNS = ("ts_us", "api", "model", "source", "auth_index", "failed", "input", "output",
                "reasoning", "cached", "total")
_SAME_KEY = " AND ".join(f"{c} = ?" for c in _KEY_COLUMNS)


class UsageUnavailable(RuntimeError):
    """The usage database could not be opened (the reason is in the message and the log)."""


def _hash(rec: UsageRecord) -> int:
    """The dedup key as a signed 64-bit integer (what SQLite stores natively): how the keys of
    pruned details are kept."""
    return int.from_bytes(hashlib.sha256(dedup_key(rec).encode()).digest()[:8], "big", signed=True)


def _hash_columns(ts_us: int, api: str, model: str, source: str, auth_index: str, failed: int,
                  *tokens: int) -> int:
    """`_hash` of a stored detail's key columns (an SQL function for `UsageStore.prune`)."""
    return _hash(UsageRecord(ts_us, api, model, source, auth_index, bool(failed), *tokens))


_WIDTH = _COLUMNS.count(",") + 1
_MAX_ROWS = 256  # x 14 parameters, well under SQLite's limit of 32,766 per statement


@functools.lru_cache(maxsize=None)
def _insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` details (a power of two up to _MAX_ROWS)."""
    one = "(" + ", ".join("?" * _WIDTH) + ")"
    return f"INSERT INTO details ({_COLUMNS}) VALUES " + ", ".join([one] * rows)


def _row(rec: UsageRecord) -> tuple:
    # The record's fields are the columns' order (see _COLUMNS), failed as 0/1.
    return (*rec[:5], int(rec.failed), *rec[6:])


def _key(rec: UsageRecord) -> tuple:
    return (*rec[:5], int(rec.failed), *rec[6:11])


def _record(row: tuple) -> UsageRecord:
    (ts_us, api, model, source, auth_index, failed, inp, out, reasoning, cached, total,
     latency, day, hour) = row
    return UsageRecord(ts_us, api, model, source, auth_index, bool(failed), inp, out, reasoning,
                       cached, total, latency, day, hour)


def _private_file(path: str) -> None:
    """Create ``path`` (and its folder, 0700) with mode 0600 before SQLite opens it."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class UsageStore:
    """One database file and its writer thread (see the module docstring)."""

    def __init__(self, path: str, retention_days: int, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.retention_days = retention_days
        self._wall = wall
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # jobs and the stop signal
        self._records: collections.deque[UsageRecord] = collections.deque()
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()

    # -- loop side ---------------------------------------------------------------------------

    def record(self, rec: UsageRecord) -> None:
        """Hand one record over (never blocks; deque appends are thread-safe)."""
        self._records.append(rec)

    def call(self, job: Callable[[sqlite3.Connection], Any]) -> concurrent.futures.Future:
        """Run ``job(connection)`` on the writer thread after pending records are committed."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((job, future))
        return future

    async def run(self, job: Callable[[sqlite3.Connection], Any]) -> Any:
        """`call` awaited from the loop."""
        return await asyncio.wrap_future(self.call(job))

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued and stop the thread (blocks up to ``timeout``)."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def stop_soon(self) -> None:
        """Ask the thread to commit and stop, without waiting (a replaced store)."""
        self._queue.put(_STOP)

    # -- jobs (run on the writer thread) ----------------------------------------------------

    def snapshot(self, conn: sqlite3.Connection) -> dict:
        """The ``GET /usage`` body."""
        totals: dict[tuple[str, str], list[int]] = {}
        for api, model, n, failed, tokens in conn.execute(
                "SELECT api, model, COUNT(*), SUM(failed), SUM(total) FROM details "
                "GROUP BY api, model UNION ALL "
                "SELECT api, model, requests, failures, tokens FROM rollup"):
            row = totals.setdefault((api, model), [0, 0, 0])
            row[0] += n
            row[1] += failed
            row[2] += tokens
        buckets: dict[str, dict[str, tuple[int, int]]] = {"day": {}, "hour": {}}
        for kind, key, n, tokens in conn.execute(
                "SELECT 'day', day, COUNT(*), SUM(total) FROM details GROUP BY day UNION ALL "
                "SELECT 'hour', hour, COUNT(*), SUM(total) FROM details GROUP BY hour UNION ALL "
                "SELECT kind, key, requests, tokens FROM rollup_buckets"):
            old = buckets[kind].get(key, (0, 0))
            buckets[kind][key] = (old[0] + n, old[1] + tokens)
        rows = [Totals(api, model, *v) for (api, model), v in totals.items()]
        details = (_record(r) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM details ORDER BY ts_us, id"))
        return snapshot(rows, details, buckets, local_offset)

    def import_records(self, conn: sqlite3.Connection, records: Iterable[UsageRecord]) -> tuple[int, int]:
        """Insert records whose dedup key is new; returns (added, skipped)."""
        added = skipped = 0
        with conn:
            for rec in records:
                if conn.execute(f"SELECT 1 FROM details WHERE {_SAME_KEY} LIMIT 1",
                                _key(rec)).fetchone() or conn.execute(
                        "SELECT 1 FROM pruned_keys WHERE h = ?", (_hash(rec),)).fetchone():
                    skipped += 1  # (an earlier record of this import counts: it is inserted)
                    continue
                self._insert(conn, [rec])
                added += 1
        return added, skipped

    @staticmethod
    def counts(conn: sqlite3.Connection) -> tuple[int, int]:
        """(total requests, failed requests), pruned details included."""
        n, failed = conn.execute(
            "SELECT COALESCE(SUM(n), 0), COALESCE(SUM(f), 0) FROM ("
            "SELECT COUNT(*) AS n, SUM(failed) AS f FROM details UNION ALL "
            "SELECT SUM(requests), SUM(failures) FROM rollup)").fetchone()
        return int(n), int(failed)

    def prune(self, conn: sqlite3.Connection) -> int:
        """Fold details older than the retention window into the roll-ups; returns how many."""
        cutoff = int((self._wall() - self.retention_days * 86400.0) * 1e6)
        old = "FROM details WHERE ts_us < ?"
        with conn:
            conn.execute(
                "INSERT INTO rollup (api, model, requests, failures, tokens) "
                f"SELECT api, model, COUNT(*), SUM(failed), SUM(total) {old} GROUP BY api, model "
                "ON CONFLICT (api, model) DO UPDATE SET "
                "requests = requests + excluded.requests, failures = failures + excluded.failures, "
                "tokens = tokens + excluded.tokens", (cutoff,))
            for kind in ("day", "hour"):
                conn.execute(
                    "INSERT INTO rollup_buckets (kind, key, requests, tokens) "
                    f"SELECT '{kind}', {kind}, COUNT(*), SUM(total) {old} GROUP BY {kind} "
                    "ON CONFLICT (kind, key) DO UPDATE SET "
                    "requests = requests + excluded.requests, tokens = tokens + excluded.tokens",
                    (cutoff,))
            conn.execute("INSERT OR IGNORE INTO pruned_keys (h) SELECT "
                         f"cliproxyd_dedup({', '.join(_KEY_COLUMNS)}) {old}", (cutoff,))
            return conn.execute(f"DELETE {old}", (cutoff,)).rowcount

    # -- the writer thread ------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        _private_file(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a process crash loses nothing committed
        conn.executescript(_SCHEMA)
        self._migrate(conn)
        conn.create_function("cliproxyd_dedup", len(_KEY_COLUMNS), _hash_columns,
                             deterministic=True)
        conn.isolation_level = "DEFERRED"
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.chmod(self.path + suffix, 0o600)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring a database written by an earlier version up to the current schema: details
        kept a hashed dedup key, with its own index, until 2026-12-06."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(details)")}
        if "dedup" in columns:
            log.info("usage statistics: dropping the dedup column from %s (once)", self.path)
            conn.execute("DROP INDEX IF EXISTS details_dedup")
            conn.execute("ALTER TABLE details DROP COLUMN dedup")

    def _run(self) -> None:
        try:
            conn = self._open()
        except (OSError, sqlite3.Error) as exc:
            log.error("usage statistics disabled: cannot open %s: %s", self.path, exc)
            self._drain_failed(exc)
            return
        try:
            self._loop(conn)
        finally:
            conn.close()

    def _loop(self, conn: sqlite3.Connection) -> None:
        next_prune = 0.0
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                item = None
            self._commit(conn, self._take())
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + _PRUNE_EVERY
                self._job(conn, self.prune, None)
            if item is _STOP:
                return
            if isinstance(item, tuple):
                self._job(conn, *item)

    def _take(self) -> list[UsageRecord]:
        taken: list[UsageRecord] = []
        try:
            while True:
                taken.append(self._records.popleft())
        except IndexError:
            return taken

    def _commit(self, conn: sqlite3.Connection, pending: list[UsageRecord]) -> None:
        if not pending:
            return
        try:
            with conn:
                self._insert(conn, pending)
        except sqlite3.Error as exc:
            log.error("usage statistics: %d records lost: %s", len(pending), exc)
        pending.clear()

    @staticmethod
    def _insert(conn: sqlite3.Connection, records: Iterable[UsageRecord]) -> None:
        # Many rows per statement: the sqlite3 module gives up and takes back the GIL around
        # every statement step, and each time it may wait for the busy IOLoop thread (one row
        # per step: 9.1 us of writer CPU per request on the benchmark, 6.8 now).  Batches are
        # cut into power-of-two sizes so a handful of statement texts serve (and stay cached).
        values = [value for rec in records for value in _row(rec)]
        rows, at = len(values) // _WIDTH, 0
        size = _MAX_ROWS
        while rows:
            while size > rows:
                size //= 2
            conn.execute(_insert_sql(size), values[at:at + size * _WIDTH])
            at += size * _WIDTH
            rows -= size

    @staticmethod
    def _job(conn: sqlite3.Connection, job: Callable, future: concurrent.futures.Future | None) -> None:
        if future is not None and not future.set_running_or_notify_cancel():
            return
        try:
            result = job(conn)
        except Exception as exc:  # a failed job must not kill the writer thread
            if future is None:
                log.exception("usage statistics: background job failed")
            else:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)

    def _drain_failed(self, exc: Exception) -> None:
        """The database could not be opened: fail every job (records are dropped) until stop."""
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                item = None
            self._records.clear()  # nowhere to keep them
            if item is _STOP:
                return
            if isinstance(item, tuple):
                item[1].set_exception(UsageUnavailable(f"usage database unavailable: {exc}"))


class UsageRecorder:
    """The live front of usage statistics: follows the config, owns the current store."""

    def __init__(self) -> None:
        self._store: UsageStore | None = None

    def store_for(self, config: Any) -> UsageStore:
        """The store for ``config``'s database path (opened or switched on demand)."""
        path = config.usage_db_path
        store = self._store
        if store is None or store.path != path:
            if store is not None:
                store.stop_soon()
            store = self._store = UsageStore(path, config.usage_retention_days)
        store.retention_days = config.usage_retention_days
        return store

    def record(self, config: Any, rec: UsageRecord) -> None:
        """Record one request unless ``usage-statistics-enabled`` is off in ``config``."""
        if config.usage_statistics_enabled:
            self.store_for(config).record(rec)

    def close(self, timeout: float = 10.0) -> None:
        """Commit and stop (blocks: call from an executor or at exit)."""
        if self._store is not None:
            self._store.close(timeout)
            self._store = None
