"""The ``/auth-files`` routes: list, upload, delete, download and enable/disable credential files.

Names are checked by `files.check_name` (plain ``*.json``, 400 otherwise); files are written
atomically with mode 0600 in ``auth-dir`` (0700).  Upload takes multipart files (any field, the
contract's ``file`` repeatable) with the contract's optional ``channel`` and ``prefix`` fields,
or a raw JSON body with ``?name=``.  ``channel=vertex`` wraps a Google service-account JSON the
way CLIProxyAPI's vertex import stores it (§7.3, §12).  After a change the daemon reloads, so
the credential set is re-read without a restart.  Token values never appear in a listing.
"""

from __future__ import annotations

import re
from typing import Any

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.handlers.management import ManagementHandler, bad_request
from cliproxyd.management import files
from cliproxyd.management.files import AuthFileError

__all__ = ["AuthFileDownloadHandler", "AuthFileStatusHandler", "AuthFilesHandler"]

CHANNELS = frozenset({"claude", "codex", "gemini", "gemini-cli", "vertex", "aistudio",
                      "antigravity", "iflow", "kimi", "qwen"})
_PREFIX = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _raise(err: AuthFileError) -> ProxyError:
    if err.status == 413:
        return ProxyError(ErrorKind.PAYLOAD_TOO_LARGE, err.message)
    return bad_request(err.message, status=err.status)


def _prepared(name: str, data: bytes, channel: str, prefix: str) -> tuple[str, dict]:
    """(file name, JSON object) of one upload, with the contract's channel/prefix applied."""
    files.check_name(name)
    value = files.parse_auth_json(data)
    if channel == "vertex" and value.get("type") == "service_account":
        project = str(value.get("project_id") or "")
        value = {"type": "vertex", "service_account": value, "project_id": project,
                 "email": value.get("client_email", ""), "location": "us-central1"}
        name = files.check_name(f"vertex-{prefix + '-' if prefix else ''}{project}.json") \
            if project else name
    elif channel and not isinstance(value.get("type"), str):
        value["type"] = channel
    if prefix:
        value["prefix"] = prefix
    return name, value


def _body_names(body: Any) -> list[str]:
    """Names from a DELETE body: ``["a", "b"]``, ``{"names": [...]}`` or ``{"name": "a"}``."""
    if isinstance(body, dict):
        body = body.get("names") or [body.get("name")]
    return [n for n in body if isinstance(n, str)] if isinstance(body, list) else []


class _AuthFileHandler(ManagementHandler):
    @property
    def auth_dir(self) -> str:
        return self.runtime.config.auth_dir

    async def _reload(self) -> None:
        """Re-read the credential set now (a new or removed file takes effect at once)."""
        if self.state.reload is not None:
            await self.state.reload()


class AuthFilesHandler(_AuthFileHandler):
    """``GET``, ``POST`` and ``DELETE /v0/management/auth-files``."""

    async def get(self) -> None:
        listed = await self.run_blocking(files.list_auth_files, self.auth_dir)
        if self.state.oauth is not None:  # say which accounts cannot be used, and why
            self.state.oauth.annotate(listed)
        self.write_json({"files": listed})

    def _uploads(self) -> list[tuple[str, bytes]]:
        if self.request.headers.get("Content-Type", "").startswith("multipart/form-data"):
            found = [(f.filename, f.body) for field in self.request.files.values() for f in field]
            if not found:
                raise bad_request("no files uploaded")
            return found
        return [(self.get_query_argument("name", ""), self.request.body)]

    def _form(self, name: str) -> str:
        values = self.request.body_arguments.get(name) or [b""]
        return values[0].decode("utf-8", "replace").strip()

    async def post(self) -> None:
        channel, prefix = self._form("channel").lower(), self._form("prefix").strip("/")
        if channel and channel not in CHANNELS:
            raise bad_request(f"unknown channel (known: {', '.join(sorted(CHANNELS))})")
        if prefix and not _PREFIX.fullmatch(prefix):
            raise bad_request("invalid prefix: one path segment of letters, digits, '.', '_', '-'")
        uploads = self._uploads()
        done, failed = await self._store_all(uploads, channel, prefix)
        if len(uploads) == 1 and failed:
            raise failed[0][1]
        await self._reload()
        if len(uploads) == 1:
            self.write_json({"status": "ok"})
            return
        body: dict[str, Any] = {"status": "partial" if failed else "ok", "uploaded": len(done),
                                "files": done}
        if failed:
            body["failed"] = [{"name": n, "error": e.message} for n, e in failed]
        self.write_json(body, 207 if failed else 200)

    async def _store_all(self, uploads: list, channel: str, prefix: str) -> tuple[list, list]:
        done, failed = [], []
        async with self.state.edit_lock:
            for name, data in uploads:
                try:
                    final, value = _prepared(name, data, channel, prefix)
                    await self.run_blocking(files.write_auth_file, self.auth_dir, final, value)
                    done.append(final)
                except AuthFileError as err:
                    failed.append((name, _raise(err)))
        return done, failed

    def _names_to_delete(self) -> list[str] | None:
        if self.get_query_argument("all", "").lower() in ("true", "1", "*"):
            return None
        names = self.get_query_arguments("name")
        if not names and self.request.body.strip():
            names = _body_names(self.json_body())
        if not names:
            raise bad_request("invalid name")
        return names

    async def delete(self) -> None:
        names = self._names_to_delete()
        all_files = names is None
        if all_files:
            names = [f["name"] for f in await self.run_blocking(files.list_auth_files, self.auth_dir)]
        done, failed = [], []
        async with self.state.edit_lock:
            for name in names:
                try:
                    await self.run_blocking(files.delete_auth_file, self.auth_dir, name)
                    done.append(name)
                except AuthFileError as err:
                    failed.append((name, _raise(err)))
        if len(names) == 1 and failed and not all_files:
            raise failed[0][1]
        await self._reload()
        if all_files or len(names) > 1:
            body: dict[str, Any] = {"status": "partial" if failed else "ok", "deleted": len(done)}
            if not all_files:
                body["files"] = done
            if failed:
                body["failed"] = [{"name": n, "error": e.message} for n, e in failed]
            self.write_json(body, 207 if failed else 200)
            return
        self.write_json({"status": "ok"})


class AuthFileDownloadHandler(ManagementHandler):
    """``GET /v0/management/auth-files/download?name=x.json``."""

    async def get(self) -> None:
        name = self.get_query_argument("name", "")
        try:
            data = await self.run_blocking(files.read_auth_file, self.runtime.config.auth_dir, name)
        except AuthFileError as err:
            raise _raise(err) from None
        self.set_header("Content-Type", "application/json")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(data)


class AuthFileStatusHandler(_AuthFileHandler):
    """``PATCH /v0/management/auth-files/status`` with ``{"name", "disabled"}``."""

    async def patch(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise bad_request("invalid request body")
        name, disabled = body.get("name"), body.get("disabled")
        if not isinstance(name, str) or not name:
            raise bad_request("name is required")
        if not isinstance(disabled, bool):
            raise bad_request("disabled is required (true or false)")
        async with self.state.edit_lock:
            try:
                data = await self.run_blocking(files.read_auth_file, self.auth_dir, name)
                value = files.parse_auth_json(data)
                value["disabled"] = disabled
                await self.run_blocking(files.write_auth_file, self.auth_dir, name, value)
            except AuthFileError as err:
                raise _raise(err) from None
        await self._reload()
        self.write_json({"status": "ok", "disabled": disabled})
