"""``GET /usage``, ``GET /usage/export`` and ``POST /usage/import`` (reference §6 shapes).

The data comes from the live config's `UsageStore` (queries run on its writer thread, after
every record handed over before them).  Import parses the body off the loop, then inserts the
details whose dedup key is new and answers ``{"added", "skipped", "total_requests",
"failed_requests"}``.
"""

from __future__ import annotations

import datetime as dt
import json
import time

from cliproxyd.errors import ErrorKind
from cliproxyd.handlers.management import (
    ManagementError,
    ManagementHandler,
    bad_request,
)
from cliproxyd.usage import EXPORT_VERSION, UsageImportError, local_offset, parse_import
from cliproxyd.usage_store import UsageUnavailable

__all__ = ["UsageExportHandler", "UsageHandler", "UsageImportHandler"]


class _UsageHandler(ManagementHandler):
    async def store_job(self, job_of_store) -> object:
        """Run ``job_of_store(store)(connection)`` on the live store's writer thread."""
        store = self.state.usage.store_for(self.runtime.config)
        try:
            return await store.run(job_of_store(store))
        except UsageUnavailable as exc:
            raise ManagementError(ErrorKind.INTERNAL, str(exc), code="usage_unavailable") from None

    async def write_big_json(self, value: object) -> None:
        """A possibly large body (every detail), serialised off the loop."""
        text = await self.run_blocking(json.dumps, value)
        self.set_header("Content-Type", "application/json")
        self.finish(text)


class UsageHandler(_UsageHandler):
    """``GET /v0/management/usage``."""

    async def get(self) -> None:
        await self.write_big_json(await self.store_job(lambda store: store.snapshot))


class UsageExportHandler(_UsageHandler):
    """``GET /v0/management/usage/export``: ``{"version", "exported_at" (UTC), "usage"}``."""

    async def get(self) -> None:
        snap = await self.store_job(lambda store: store.snapshot)
        exported = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.write_big_json({"version": EXPORT_VERSION, "exported_at": exported,
                                   "usage": snap["usage"]})


def _parse(raw: bytes, now_us: int) -> list:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UsageImportError("invalid json") from None
    return parse_import(body, now_us, local_offset)


class UsageImportHandler(_UsageHandler):
    """``POST /v0/management/usage/import``: details are de-duplicated against stored ones."""

    async def post(self) -> None:
        try:
            records = await self.run_blocking(_parse, self.request.body, int(time.time() * 1e6))
        except UsageImportError as err:
            raise bad_request(str(err), "invalid_import") from None
        added, skipped = await self.store_job(
            lambda store: lambda conn: store.import_records(conn, records))
        total, failed = await self.store_job(lambda store: store.counts)
        self.write_json({"added": added, "skipped": skipped, "total_requests": total,
                         "failed_requests": failed})
