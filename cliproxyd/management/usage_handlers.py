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

from cliproxyd.handlers.management import ManagementHandler, bad_request
from cliproxyd.usage import EXPORT_VERSION, UsageImportError, local_offset, parse_import

__all__ = ["UsageExportHandler", "UsageHandler", "UsageImportHandler"]


class UsageHandler(ManagementHandler):
    """``GET /v0/management/usage``."""

    async def get(self) -> None:
        store = self.state.usage.store_for(self.runtime.config)
        self.write_json(await store.run(store.snapshot))


class UsageExportHandler(ManagementHandler):
    """``GET /v0/management/usage/export``: ``{"version", "exported_at" (UTC), "usage"}``."""

    async def get(self) -> None:
        store = self.state.usage.store_for(self.runtime.config)
        snap = await store.run(store.snapshot)
        exported = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.write_json({"version": EXPORT_VERSION, "exported_at": exported, "usage": snap["usage"]})


def _parse(raw: bytes, now_us: int) -> list:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UsageImportError("invalid json") from None
    return parse_import(body, now_us, local_offset)


class UsageImportHandler(ManagementHandler):
    """``POST /v0/management/usage/import``: details are de-duplicated against stored ones."""

    async def post(self) -> None:
        try:
            records = await self.run_blocking(_parse, self.request.body, int(time.time() * 1e6))
        except UsageImportError as err:
            raise bad_request(str(err), "invalid_import") from None
        store = self.state.usage.store_for(self.runtime.config)
        added, skipped = await store.run(lambda conn: store.import_records(conn, records))
        total, failed = await store.run(store.counts)
        self.write_json({"added": added, "skipped": skipped, "total_requests": total,
                         "failed_requests": failed})
