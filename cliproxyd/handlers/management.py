"""The management API under ``/v0/management``: config, settings and list endpoints.

Every handler here has ``access = "management"``: `BaseHandler.prepare` applies the contract's
rules (404 without a secret, 403 for a remote peer unless ``allow-remote``, lockout, 401
``invalid password``) before any of this code runs.  Errors use the contract's plain shape
``{"error": {"message", "type"}}`` plus, where the reference names one, ``error.code``
(``invalid_yaml``, ``invalid_config``, ``write_failed``, ...) and ``error.problems`` (every
validation problem, "FILE:LINE: key.path: message").

Every change goes one way (`ManagementHandler.save_config`): the new text is validated by
`config.parse_config` (the start-up code) and the TLS files are loaded; only then is config.yaml
replaced atomically (mode 0600) and the daemon's reload run, exactly as SIGHUP would.  Edits are
serialised by `AppState.edit_lock`.  Usage and auth-file routes live in `cliproxyd.management`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from tornado import httputil
from tornado.ioloop import IOLoop

from cliproxyd import __version__, _config_yaml
from cliproxyd.config import Config, ConfigError, effective_config_json, parse_config
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.handlers.base import BaseHandler, render_error_body
from cliproxyd.management import list_ops
from cliproxyd.management.config_edit import (
    LIST_KINDS,
    SCALARS,
    STRATEGY_ALIASES,
    ConfigDocument,
    EditError,
    check_type,
)
from cliproxyd.management.files import atomic_write

__all__ = ["ConfigHandler", "ConfigYAMLHandler", "ListHandler", "ManagementError",
           "ManagementHandler", "ScalarHandler"]

_MAX_YAML = 4 * 1024 * 1024  # the config loader's own limit


@dataclass(eq=False)
class ManagementError(ProxyError):
    """A management failure with the reference's error code and every problem found."""

    problems: tuple[str, ...] = ()


def bad_request(message: str, code: str = "invalid_body", status: int = 400) -> ManagementError:
    """A 400 (or 404) management error with the reference's message and code."""
    kind = ErrorKind.NOT_FOUND if status == 404 else ErrorKind.INVALID_REQUEST
    return ManagementError(kind, message, status=status, code=code)


class ManagementHandler(BaseHandler):
    """Base of every management handler: the management secret guards it."""

    access = "management"
    client_format = None

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")  # answers carry keys
        # CLIProxyAPI's management UI reads its server's version from these (reference §5.1).
        self.set_header("X-CPA-VERSION", __version__)
        self.set_header("X-CPA-COMMIT", "unknown")
        self.set_header("X-CPA-BUILD-DATE", "unknown")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The contract's shape plus ``code`` and ``problems`` when known."""
        err = self._as_proxy_error(status_code, kwargs.get("exc_info"))
        body = render_error_body(None, err)
        if err.code:
            body["error"]["code"] = err.code
        if getattr(err, "problems", ()):
            body["error"]["problems"] = list(err.problems)
        self.set_status(err.status, reason=None if err.status in httputil.responses else "Error")
        if err.retry_after is not None:
            self.set_header("Retry-After", str(max(0, math.ceil(err.retry_after))))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def json_body(self) -> Any:
        """The request body as JSON (any JSON value), or 400 ``invalid body``."""
        try:
            return json.loads(self.request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise bad_request("invalid body: not JSON") from None

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        """File and parse work off the IOLoop."""
        return await IOLoop.current().run_in_executor(None, fn, *args)

    # -- the one way config.yaml changes --------------------------------------------------------

    @property
    def config_path(self) -> str:
        """The running config's file, links resolved (the rename replaces the real file)."""
        return os.path.realpath(self.runtime.config.path)

    async def read_config_text(self) -> str:
        """config.yaml as on disk (404 ``not_found`` when it is gone)."""
        try:
            data = await self.run_blocking(_read_bytes, self.config_path)
        except FileNotFoundError:
            raise bad_request("config file not found", "not_found", 404) from None
        return data.decode("utf-8", "replace")

    async def edit_config(self, edit: Any) -> None:
        """Load config.yaml for round-trip editing, apply ``edit(doc)``, validate, save, apply."""
        async with self.state.edit_lock:
            doc = ConfigDocument(await self.read_config_text())
            try:
                edit(doc)
            except EditError as err:
                raise bad_request(err.message, status=err.status) from None
            await self._save_locked(doc.dump())
        self.write_json({"status": "ok"})

    async def save_config(self, text: str) -> None:
        """Validate ``text``, write it as config.yaml and apply it (PUT /config.yaml)."""
        async with self.state.edit_lock:
            await self._save_locked(text)

    async def _save_locked(self, text: str) -> None:
        new = await self._validate(text)
        path = self.config_path
        try:
            previous = await self.run_blocking(_read_bytes, path)
        except OSError:
            previous = None
        try:
            await self.run_blocking(atomic_write, path, text.encode("utf-8"))
        except OSError as exc:
            raise ManagementError(ErrorKind.INTERNAL, f"failed to save config: {exc.strerror}",
                                  code="write_failed") from None
        if not await self._apply(new):
            if previous is not None:
                await self.run_blocking(atomic_write, path, previous)
            raise ManagementError(ErrorKind.INTERNAL, "the new config could not be applied; "
                                  "config.yaml was restored (see the daemon log)",
                                  code="reload_failed")

    async def _validate(self, text: str) -> Config:
        """The start-up validation plus the TLS files; 400 unparsable (or hostile), 422 invalid."""
        try:
            await self.run_blocking(_config_yaml.compose, text)
        except _config_yaml.YAMLProblem as exc:
            where = f"line {exc.line}: " if exc.line else ""
            raise ManagementError(ErrorKind.INVALID_REQUEST, where + exc.message, code="invalid_yaml",
                                  problems=(where + exc.message,)) from None
        try:
            new = await self.run_blocking(parse_config, text, self.runtime.config.path)
            # Imported here: the daemon imports this module (through app.py).
            from cliproxyd.daemon import build_ssl_context

            await self.run_blocking(build_ssl_context, new)
        except ConfigError as err:
            raise ManagementError(ErrorKind.INVALID_REQUEST, "; ".join(err.problems), status=422,
                                  code="invalid_config", problems=tuple(err.problems)) from None
        return new

    async def _apply(self, new: Config) -> bool:
        if self.state.reload is not None:
            return await self.state.reload()
        # No daemon (an in-process app): build and swap the runtime directly.
        from cliproxyd.runtime import Runtime

        self.runtime_ref.current = Runtime.build(new, previous=self.runtime_ref.current)
        return True


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_MAX_YAML + 1)


class ConfigHandler(ManagementHandler):
    """``GET /v0/management/config``: the effective config, including ``api-keys``, without the
    management secret."""

    def get(self) -> None:
        self.write_json(effective_config_json(self.runtime.config))


class ConfigYAMLHandler(ManagementHandler):
    """``GET /config.yaml`` (the file as on disk) and ``PUT /config.yaml`` (validate, write,
    apply)."""

    async def get(self) -> None:
        text = await self.read_config_text()
        self.set_header("Content-Type", "application/yaml; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(text.encode("utf-8"))

    async def put(self) -> None:
        body = self.request.body
        if len(body) > _MAX_YAML:
            raise ProxyError(ErrorKind.PAYLOAD_TOO_LARGE, "config.yaml is larger than 4 MiB")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("config.yaml is not UTF-8 text", "invalid_yaml") from None
        await self.save_config(text)
        self.write_json({"ok": True, "changed": ["config"]})


def _scalar_value(config: Config, name: str) -> Any:
    if name == "routing/strategy":
        return config.routing.strategy
    return getattr(config, name.replace("-", "_"))


class ScalarHandler(ManagementHandler):
    """``debug``, ``usage-statistics-enabled``, ``request-retry``, ``ws-auth``,
    ``force-model-prefix``, ``routing/strategy``: GET ``{"<key>": value}``, PUT/PATCH
    ``{"value": ...}``."""

    def get(self, name: str) -> None:
        key = "strategy" if name == "routing/strategy" else name
        self.write_json({key: _scalar_value(self.runtime.config, name)})

    async def put(self, name: str) -> None:
        path, want = SCALARS[name]
        body = self.json_body()
        if not isinstance(body, dict) or "value" not in body:
            raise bad_request(f"invalid body: expected {{\"value\": ...}} for {name}")
        value = check_type_400(body["value"], want, name)
        if name == "routing/strategy":
            value = STRATEGY_ALIASES.get(value.strip().lower())
            if value is None:
                raise bad_request("invalid strategy")
        await self.edit_config(lambda doc: doc.set_scalar(path, value))

    patch = put


def check_type_400(value: Any, want: type, name: str) -> Any:
    """`check_type` as a management 400 naming the field."""
    try:
        return check_type(value, want, name)
    except EditError as err:
        raise bad_request(err.message) from None


class ListHandler(ManagementHandler):
    """``api-keys``, ``gemini-api-key``, ``claude-api-key``, ``codex-api-key``,
    ``openai-compatibility``: GET ``{"<key>": [...]}``; PUT/PATCH/DELETE per `list_ops`."""

    def get(self, key: str) -> None:
        self.write_json({key: effective_config_json(self.runtime.config).get(key, [])})

    async def put(self, key: str) -> None:
        body = self.json_body()
        await self.edit_config(lambda doc: list_ops.put_items(doc, key, body))

    async def patch(self, key: str) -> None:
        body = self.json_body()
        await self.edit_config(lambda doc: list_ops.patch_items(doc, key, body))

    async def delete(self, key: str) -> None:
        def query(name: str) -> str | None:
            return self.get_query_argument(name, None)

        await self.edit_config(lambda doc: list_ops.delete_items(doc, key, query))


SCALAR_PATTERN = "(" + "|".join(SCALARS) + ")"
LIST_PATTERN = "(" + "|".join(LIST_KINDS) + ")"
