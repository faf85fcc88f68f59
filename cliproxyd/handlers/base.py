"""BaseHandler and the HTTP plumbing every route shares.

`BaseHandler` owns, for every request: dependency injection (`initialize(runtime_ref, state,
route)`), the one read of `runtime_ref.current` (so a request keeps its config snapshot across a
reload), the access check (client keys, management secret) run in `prepare` *before* any route
logic, the 413 for an over-size body, in-flight tracking for graceful shutdown, and `write_error`,
the single place a `ProxyError` becomes a response body in the client's own format.

`ProxyApplication` is the Tornado `Application` with a per-request delegate that counts a request
as in flight from its first header (a slow upload is in flight too) and stops buffering a body
once it passes `max-body-size`, so the handler can answer a readable 413 instead of Tornado
closing the connection.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from asyncio import Future
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from tornado import gen, httputil, web
from tornado.ioloop import IOLoop

from cliproxyd import access, jsontext
from cliproxyd.errors import (
    ErrorKind,
    ProxyError,
    anthropic_type_for,
    kind_for_status,
    openai_type_for,
)
from cliproxyd.formats import codec
from cliproxyd.runtime import AppState, Runtime, RuntimeRef
from cliproxyd.secrets import verify_secret

__all__ = ["BaseHandler", "NotFoundHandler", "ProxyApplication", "render_error_body"]

log = logging.getLogger(__name__)

_TOO_LARGE_ATTR = "_cliproxyd_body_too_large"
_ANSWERED_ATTR = "_cliproxyd_answered"
# Bound on holding a connection while an over-size request is answered before its body.
_EARLY_ANSWER_WAIT = 30.0


def render_error_body(fmt: str | None, err: ProxyError) -> dict[str, Any]:
    """The JSON body for ``err`` in client format ``fmt`` (None: the contract's plain shape).

    The format's codec (`formats.<fmt>.render_error`) decides the body; the contract's
    ``error.message`` and ``error.type`` are then guaranteed present (Gemini's error object has
    no ``type`` of its own), so every body is a superset of the contract's.
    """
    if fmt is None:
        return {"error": {"message": err.message, "type": openai_type_for(err)}}
    body = dict(codec(fmt).render_error(err))
    inner = body.get("error")
    if isinstance(inner, dict):
        inner.setdefault("message", err.message)
        inner.setdefault("type", anthropic_type_for(err) if fmt == "claude" else openai_type_for(err))
    return body


def _error_from_http(status: int, reason: str | None) -> ProxyError:
    if status == 404:
        return ProxyError(ErrorKind.NOT_FOUND, "Not Found")
    message = reason or httputil.responses.get(status, "Error")
    return ProxyError(kind_for_status(status), message, status=status)


class BaseHandler(web.RequestHandler):
    """Every cliproxyd handler.  Subclasses set `client_format` and `access`.

    * ``client_format``: ``"openai_chat"``, ``"openai_responses"``, ``"claude"``, ``"gemini"`` or
      None (the contract's plain ``{"error":{"message","type"}}`` shape, used by management).
    * ``access``: ``"public"``, ``"client"`` (API keys) or ``"management"`` (the secret).
    After `prepare`, ``self.runtime`` is this request's snapshot and ``self.principal`` the
    matched client key ("" when open or not a client route).
    """

    client_format: str | None = None
    access: str = "public"

    def initialize(self, runtime_ref: RuntimeRef, state: AppState, route: str) -> None:
        self.runtime_ref = runtime_ref
        self.state = state
        self.route_name = route
        self.runtime: Runtime = runtime_ref.current  # the one read per request
        self.principal = ""
        state.inflight.enter(self)

    async def prepare(self) -> None:
        await self.check_access()
        if getattr(self.request.connection, _TOO_LARGE_ATTR, False):
            limit = self.runtime.config.max_body_size
            raise ProxyError(
                ErrorKind.PAYLOAD_TOO_LARGE, f"request body is larger than {limit} bytes (max-body-size)"
            )

    def access_mode(self) -> str:
        """The access rule for this request (a handler may decide from config, e.g. /metrics)."""
        return self.access

    async def check_access(self) -> None:
        mode = self.access_mode()
        if mode == "client":
            self._check_client()
        elif mode == "management":
            await self._check_management()

    def _check_client(self) -> None:
        keys = self.runtime.config.api_keys
        if not keys:
            return
        presented = access.client_key_candidates(
            self.request.headers, self.get_query_argument("key", None)
        )
        matched = access.match_client_key(keys, presented)
        if matched is None:
            raise ProxyError(ErrorKind.AUTHENTICATION, access.AUTH_FAILED_MESSAGE)
        self.principal = matched

    async def _check_management(self) -> None:
        rm = self.runtime.config.remote_management
        peer, now = self.peer_address(), time.monotonic()
        lockout = self.state.lockout
        refusal = access.check_management_precondition(
            rm.secret_key, rm.allow_remote, peer, lockout, now
        )
        if refusal is not None:
            raise refusal
        presented = access.management_key(self.request.headers)
        # bcrypt costs tens of milliseconds: keep it off the loop.
        ok = bool(presented) and await IOLoop.current().run_in_executor(
            None, verify_secret, presented, rm.secret_key
        )
        if not ok:
            lockout.failure(peer, now)
            log.warning("management authentication failed from %s", peer)
            raise ProxyError(ErrorKind.AUTHENTICATION, access.AUTH_FAILED_MESSAGE)
        lockout.success(peer)

    def peer_address(self) -> str:
        """The socket peer's IP: never X-Forwarded-For / X-Real-IP (the localhost rule needs the
        truth).  "" when unknown, which no rule treats as loopback."""
        stream = getattr(self.request.connection, "stream", None)
        sock = getattr(stream, "socket", None)
        if sock is not None:
            try:
                peer = sock.getpeername()
            except OSError:
                peer = None
            if isinstance(peer, tuple) and peer:
                return str(peer[0])
        return ""

    def write_json(self, value: Any, status: int = 200) -> None:
        """Finish with a JSON body."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(jsontext.dumps_bytes(value))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Render any failure as the client's format; the only error renderer."""
        err = self._as_proxy_error(status_code, kwargs.get("exc_info"))
        self.set_status(err.status, reason=None if err.status in httputil.responses else "Error")
        if err.retry_after is not None:
            self.set_header("Retry-After", str(max(0, math.ceil(err.retry_after))))
        self.set_header("Content-Type", "application/json")
        self.finish(jsontext.dumps_bytes(render_error_body(self.client_format, err)))

    def _as_proxy_error(self, status: int, exc_info: Any) -> ProxyError:
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, ProxyError):
            return exc
        if isinstance(exc, web.HTTPError):
            return _error_from_http(exc.status_code, exc.reason)
        if exc is not None or status >= 500:
            return ProxyError(ErrorKind.INTERNAL, "internal server error")
        return _error_from_http(status, self._reason)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log failures without the query string (``?key=`` carries a client key)."""
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, ProxyError):
            log.debug("%s: %s", where, value)
        elif isinstance(value, web.HTTPError):
            log.debug("%s: HTTP %s", where, value.status_code)
        else:
            log.error("uncaught exception in %s", where, exc_info=(typ, value, tb))

    def on_finish(self) -> None:
        self._done()

    def on_connection_close(self) -> None:
        self._done()
        super().on_connection_close()

    def _done(self) -> None:
        self.state.inflight.leave(self)
        answered = getattr(self.request.connection, _ANSWERED_ATTR, None)
        if answered is not None and not answered.done():
            answered.set_result(None)


class NotFoundHandler(BaseHandler):
    """404 for a path no route serves, after the access rule of its area (auth before routing)."""

    def initialize(  # type: ignore[override]
        self,
        runtime_ref: RuntimeRef,
        state: AppState,
        route: str,
        client_format: str | None = None,
        access: str = "public",
    ) -> None:
        super().initialize(runtime_ref, state, route)
        self.client_format = client_format
        self.access = access

    async def _not_found(self, *args: Any) -> None:
        raise ProxyError(ErrorKind.NOT_FOUND, "Not Found")

    get = post = put = patch = delete = head = options = _not_found


class _GuardedDelegate(httputil.HTTPMessageDelegate):
    """Wraps Tornado's routing delegate: counts the request in flight from its headers on,
    stops passing body bytes on once they exceed the limit (the handler then answers 413), and
    closes the connection of a body still unread after ``timeouts.client-body``.

    The body timeout is one timer per request with a body, set here rather than as Tornado's
    ``body_timeout``: Tornado wraps every body read in ``gen.with_timeout``, so even a body that
    came with its headers cost an extra IOLoop turn (about 6 % of a small request's CPU).

    A declared ``Content-Length`` over the limit is answered at once, before the body is read:
    the client (``Expect: 100-continue`` or not) can read the 413 even when the body is larger
    than the server's own hard limit, past which Tornado drops the connection.
    """

    def __init__(self, inner: httputil.HTTPMessageDelegate, conn: Any, state: AppState, limit: int,
                 body_timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        self._inner, self._conn, self._state, self._limit = inner, conn, state, limit
        self._body_timeout, self._loop = body_timeout, loop
        self._body_timer: Any = None
        self._received = 0
        self._too_large = False
        self._finished_early = False

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        self._state.inflight.enter(self)
        length = headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > self._limit:
            self._mark_too_large()
        if (length not in ("", "0") or "Transfer-Encoding" in headers) and self._body_timeout > 0:
            self._body_timer = self._loop.call_later(self._body_timeout, self._body_timed_out)
        result = self._inner.headers_received(start_line, headers)
        if self._too_large and result is None and self._handler_is_ours():
            # Run the handler now with no body (its prepare() answers 401 or 413) and hold the
            # connection until it has answered, so no "100 Continue" and no body read come first.
            answered: Future[None] = Future()
            setattr(self._conn, _ANSWERED_ATTR, answered)
            self._finished_early = True
            self._inner.finish()
            return gen.with_timeout(timedelta(seconds=_EARLY_ANSWER_WAIT), answered)
        return result

    def _handler_is_ours(self) -> bool:
        handler_class = getattr(getattr(self._inner, "delegate", None), "handler_class", None)
        return isinstance(handler_class, type) and issubclass(handler_class, BaseHandler)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._too_large:
            return None  # drain: read and drop, so the client can read our 413
        self._received += len(chunk)
        if self._received > self._limit:
            self._mark_too_large()
            return None
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._stop_body_timer()
        try:
            if not self._finished_early:
                self._inner.finish()
        finally:
            self._state.inflight.leave(self)

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        log.info("timeout reading the request body (%gs); connection closed", self._body_timeout)
        self._conn.close()

    def on_connection_close(self) -> None:
        self._stop_body_timer()
        try:
            self._inner.on_connection_close()
        finally:
            self._state.inflight.leave(self)

    def _mark_too_large(self) -> None:
        self._too_large = True
        setattr(self._conn, _TOO_LARGE_ATTR, True)


class ProxyApplication(web.Application):
    """`web.Application` plus the body limit and in-flight tracking of `_GuardedDelegate`."""

    def __init__(self, handlers: list, runtime_ref: RuntimeRef, state: AppState, **settings: Any):
        self.runtime_ref = runtime_ref
        self.state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        super().__init__(handlers, **settings)

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        inner = super().start_request(server_conn, request_conn)
        config = self.runtime_ref.current.config
        if self._loop is None:  # the loop that serves us, looked up once
            self._loop = asyncio.get_running_loop()
        return _GuardedDelegate(inner, request_conn, self.state, config.max_body_size,
                                config.timeouts.client_body, self._loop)


def server_body_limit(max_body_size: int) -> int:
    """The HTTP server's own hard limit: above the config's, so bodies up to twice the limit are
    drained and answered with a readable 413 rather than a dropped connection."""
    return max_body_size + max(max_body_size, 1024 * 1024)


def log_request(state: AppState) -> Callable[[web.RequestHandler], None]:
    """The Application ``log_function``: one access line (path without query) and the RED count."""

    def _log(handler: web.RequestHandler) -> None:
        status = handler.get_status()
        route = getattr(handler, "route_name", "other")
        state.metrics.observe_request(route, handler.request.method or "", status)
        ms = 1000.0 * handler.request.request_time()
        level = logging.WARNING if status >= 500 else logging.INFO
        log.log(level, "%d %s %s (%s) %.1fms", status, handler.request.method,
                handler.request.path, route, ms)

    return _log
