"""Upstream HTTP: the only module that uses Tornado's AsyncHTTPClient.

Owns sending a `WireRequest` and getting bytes back with timeouts that fit long streams
(DESIGN.md "Tornado notes", STYLE.md §6.2.10):

* ``connect_timeout`` is Tornado's own (DNS + TCP + TLS).
* A first-byte watchdog: no response status line within ``first_byte_timeout`` seconds of the
  start → 504.  Then an idle watchdog: no header line or body chunk for ``idle_timeout`` seconds
  → 504.  Tornado's whole-request ``request_timeout`` is set to a day, as a last-resort net only,
  so a long healthy stream is never cut.
* The status line and headers are captured with ``header_callback`` before any body arrives, so
  a 2xx body goes to ``on_chunk`` as it comes while a non-2xx body is buffered and returned (not
  raised) for `Provider.classify_error`.
* `UpstreamCall.cancel()` aborts the request and closes the socket at once (the upstream sees
  the disconnect); the handler calls it from ``on_connection_close``.

Failures become `ProxyError`s with a transport code (see `routing.pool`): connection refused,
reset or DNS failure → 502 ``upstream_connect_failed``; a connect timeout → 504
``upstream_connect_failed``; a watchdog timeout → 504 ``upstream_timeout``; the connection lost
after the status line → 502 ``upstream_connection_lost``; a cancel → 499 ``client_cancelled``.

Tornado's simple client exposes no public abort, so `_AbortableClient` subclasses it through its
``_connection_class`` hook and aborts a connection with ``_handle_exception`` (the same path its
own timeouts take).  An outbound proxy (``proxy-url``, ``http://[user:pass@]host:port``) is used
through an HTTP CONNECT tunnel (`_TunnelTCPClient`), TLS to the upstream running inside it; other
proxy schemes (socks5, https) fail with a clear 502 instead of silently going direct.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

from tornado import httputil
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import DefaultLoopResolver, Resolver, is_valid_ip
from tornado.simple_httpclient import (
    HTTPStreamClosedError,
    HTTPTimeoutError,
    SimpleAsyncHTTPClient,
    _HTTPConnection,
)
from tornado.tcpclient import TCPClient

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.providers.base import WireRequest
from cliproxyd.routing.pool import (
    CODE_CANCELLED,
    CODE_CONNECT_FAILED,
    CODE_STREAM_BROKEN,
    CODE_TIMEOUT,
)

__all__ = ["ChunkCallback", "Transport", "UpstreamCall", "UpstreamResponse"]

log = logging.getLogger(__name__)

ChunkCallback = Callable[[bytes], "Awaitable[None] | None"]
_SAFETY_REQUEST_TIMEOUT = 24 * 3600.0
_DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024  # buffered (non-streamed or error) bodies
_STREAM_MAX_BODY = 1 << 40  # streamed bodies are not buffered: no practical limit


@dataclass(frozen=True)
class UpstreamResponse:
    """What came back.  ``headers`` keys are lower-case; ``body`` is empty when a 2xx body went to
    ``on_chunk``."""

    status: int
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    body: bytes = b""

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300


def _flatten(headers: httputil.HTTPHeaders) -> Mapping[str, str]:
    """Lower-case names; repeated headers joined with ", " (RFC 9110 §5.3)."""
    flat: dict[str, str] = {}
    for name, value in headers.get_all():
        key = name.lower()
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return MappingProxyType(flat)


class _AbortableConnection(_HTTPConnection):
    """A simple-client connection that registers itself with its `UpstreamCall`."""

    def __init__(self, client: Any, request: Any, *args: Any) -> None:
        super().__init__(client, request, *args)
        call = getattr(request, "cliproxyd_call", None)
        if call is not None:
            call._attach(self)

    def abort(self, reason: str) -> None:
        """Fail the fetch now and close the socket (Tornado's own timeout path)."""
        err = HTTPStreamClosedError(reason)
        self._handle_exception(type(err), err, None)


class _AbortableClient(SimpleAsyncHTTPClient):
    def _connection_class(self) -> type:
        return _AbortableConnection


class _LiteralResolver(Resolver):
    """An IP-literal host (a local model server, a test upstream) needs no lookup; the default
    resolver would still hop to a thread pool for ``getaddrinfo`` on every request (Tornado's
    client opens a connection per request).  Names go to the default resolver."""

    def initialize(self) -> None:  # type: ignore[override]
        self._names = DefaultLoopResolver()

    async def resolve(self, host: str, port: int,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[tuple[int, Any]]:
        if is_valid_ip(host):
            if ":" in host:
                return [(socket.AF_INET6, (host, port, 0, 0))]
            return [(socket.AF_INET, (host, port))]
        return await self._names.resolve(host, port, family)

    def close(self) -> None:
        self._names.close()


class UpstreamCall:
    """One upstream request in flight: `cancel()` it, or `await result()`."""

    def __init__(self, on_chunk: ChunkCallback | None, first_byte_timeout: float,
                 idle_timeout: float, max_response: int) -> None:
        self._loop = IOLoop.current()
        self._on_chunk = on_chunk
        self._first_byte_timeout = first_byte_timeout
        self._idle_timeout = idle_timeout
        self._max_response = max_response
        self._started = self._last_activity = self._loop.time()
        self._done: asyncio.Future[UpstreamResponse] = asyncio.get_running_loop().create_future()
        # A failure nobody awaits (cancelled before `result()`) must not log "never retrieved".
        self._done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._conn: _AbortableConnection | None = None
        self._timer: object | None = None
        self.status: int | None = None
        self._headers = httputil.HTTPHeaders()
        self._buffer = bytearray()
        self._paused = 0  # > 0 while waiting for the consumer (back-pressure)
        self.bytes_received = 0

    # -- wiring -----------------------------------------------------------------------------------

    def _attach(self, conn: _AbortableConnection) -> None:
        self._conn = conn
        if self._done.done():  # cancelled before the connection existed
            conn.abort("cancelled")

    def _begin(self, fetch: asyncio.Future[HTTPResponse]) -> None:
        fetch.add_done_callback(self._fetched)
        self._arm(self._started + self._first_byte_timeout)

    def _arm(self, deadline: float) -> None:
        self._timer = self._loop.call_at(deadline, self._watchdog)

    def _watchdog(self) -> None:
        self._timer = None
        if self._done.done():
            return
        now = self._loop.time()
        if self._paused:  # our consumer is slow, not the upstream
            self._arm(now + self._idle_timeout)
            return
        if self.status is None:
            what, deadline = "first byte", self._started + self._first_byte_timeout
        else:
            what, deadline = "idle", self._last_activity + self._idle_timeout
        if now < deadline:
            self._arm(deadline)
            return
        limit = self._first_byte_timeout if self.status is None else self._idle_timeout
        self._fail(ProxyError(ErrorKind.UPSTREAM_TIMEOUT, f"Upstream timed out ({what}: no data "
                              f"for {limit:g}s).", code=CODE_TIMEOUT))

    # -- callbacks from Tornado -------------------------------------------------------------------

    def _on_header_line(self, line: str) -> None:
        self._last_activity = self._loop.time()
        if line.startswith("HTTP/"):
            start = httputil.parse_response_start_line(line.strip())
            first = self.status is None
            self.status, self._headers = start.code, httputil.HTTPHeaders()
            if first and not self._done.done():  # from now on the idle limit applies
                self._stop_timer()
                self._arm(self._last_activity + self._idle_timeout)
        elif line.strip():
            self._headers.parse_line(line)

    def _on_body(self, chunk: bytes) -> Awaitable[None] | None:
        self._last_activity = self._loop.time()
        self.bytes_received += len(chunk)
        if self._on_chunk is not None and self.status is not None and 200 <= self.status < 300:
            return self._deliver(chunk)
        self._buffer += chunk
        if len(self._buffer) > self._max_response:
            self._fail(ProxyError(ErrorKind.UPSTREAM_ERROR, "Upstream response too large.",
                                  status=502))
        return None

    def _deliver(self, chunk: bytes) -> Awaitable[None] | None:
        """Hand a chunk to the consumer; its failure fails the call with its own error."""
        if self._done.done():
            return None
        try:
            pending = self._on_chunk(chunk)  # type: ignore[misc]
        except ProxyError as err:
            self._fail(err)
            return None
        except Exception:  # a consumer bug must not look like an upstream failure
            log.exception("stream consumer failed")
            self._fail(ProxyError(ErrorKind.INTERNAL, "Internal error while streaming."))
            return None
        return self._backpressure(pending) if pending is not None else None

    async def _backpressure(self, pending: Awaitable[None]) -> None:
        """Wait for a slow consumer (e.g. a client flush) without counting it as upstream idle
        time: the watchdog is paused meanwhile."""
        self._paused += 1
        try:
            await pending
        except ProxyError as err:
            self._fail(err)
        except Exception:
            log.exception("stream consumer failed")
            self._fail(ProxyError(ErrorKind.INTERNAL, "Internal error while streaming."))
        finally:
            self._paused -= 1
            self._last_activity = self._loop.time()

    def _fetched(self, fetch: asyncio.Future[HTTPResponse]) -> None:
        self._stop_timer()
        if fetch.cancelled():
            if not self._done.done():
                self._done.cancel()
            return
        exc = fetch.exception()  # retrieved even when the call already ended (a cancel): no
        if self._done.done():    # "exception was never retrieved" noise in the log
            return
        if exc is None:
            response = fetch.result()
            if response.code != 599:  # any real HTTP status, 2xx or not, is an answer
                self._done.set_result(self._response(response))
                return
            exc = response.error
        self._done.set_exception(self._map_failure(exc))

    # -- outcomes ---------------------------------------------------------------------------------

    def _response(self, response: HTTPResponse) -> UpstreamResponse:
        headers = self._headers if self.status is not None else response.headers
        return UpstreamResponse(self.status or response.code, _flatten(headers),
                                bytes(self._buffer))

    def _map_failure(self, exc: BaseException | None) -> ProxyError:
        if isinstance(exc, HTTPTimeoutError):
            return ProxyError(ErrorKind.UPSTREAM_TIMEOUT, f"Upstream connect timed out: {exc}",
                              code=CODE_CONNECT_FAILED)
        if self.status is not None:
            return ProxyError(ErrorKind.UPSTREAM_ERROR, "Upstream connection lost mid-response.",
                              status=502, code=CODE_STREAM_BROKEN)
        reason = type(exc).__name__ if exc is not None else "unknown error"
        if isinstance(exc, (OSError, StreamClosedError, HTTPStreamClosedError)):
            reason = f"{reason}: {exc}"
        return ProxyError(ErrorKind.UPSTREAM_ERROR, f"Could not reach the upstream ({reason}).",
                          status=502, code=CODE_CONNECT_FAILED)

    def _fail(self, error: ProxyError) -> None:
        self._stop_timer()
        if self._done.done():
            return
        self._done.set_exception(error)
        if self._conn is not None:
            self._conn.abort(error.message)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._loop.remove_timeout(self._timer)
            self._timer = None

    def cancel(self) -> None:
        """Abort now (the client went away): the socket is closed, `result()` raises a 499
        ``client_cancelled`` `ProxyError`.  Safe to call at any time, more than once."""
        self._fail(ProxyError(ErrorKind.UPSTREAM_ERROR, "Request cancelled by the client.",
                              status=499, code=CODE_CANCELLED))

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers received so far (lower-case keys; empty before the status)."""
        return _flatten(self._headers)

    @property
    def done(self) -> bool:
        """Whether the call has finished (answered, failed or cancelled)."""
        return self._done.done()

    async def result(self) -> UpstreamResponse:
        """The response once the body is complete; raises `ProxyError` on failure."""
        try:
            return await asyncio.shield(self._done)
        except asyncio.CancelledError:
            if not self._done.done():
                self.cancel()  # the awaiting task was cancelled: do not leak the connection
            raise


class _TunnelTCPClient(TCPClient):
    """Connects through an HTTP proxy with CONNECT (RFC 9110 §9.3.6), then starts TLS to the
    upstream itself, so the proxy sees only the host and port."""

    def __init__(self, host: str, port: int, auth: str | None) -> None:
        super().__init__()
        self._proxy = (host, port)
        self._auth = auth

    async def connect(self, host: str, port: int, af: socket.AddressFamily = socket.AF_UNSPEC,
                      ssl_options: Any = None, max_buffer_size: int | None = None,
                      source_ip: str | None = None, source_port: int | None = None,
                      timeout: Any = None) -> IOStream:
        stream = await super().connect(*self._proxy, af=af, max_buffer_size=max_buffer_size,
                                       source_ip=source_ip, source_port=source_port,
                                       timeout=timeout)
        try:
            handshake = self._handshake(stream, host, port)
            await (asyncio.wait_for(handshake, timeout) if timeout else handshake)
            if ssl_options is not None:
                stream = await stream.start_tls(False, ssl_options=ssl_options,
                                                server_hostname=host)
        except BaseException:
            stream.close()
            raise
        return stream

    async def _handshake(self, stream: IOStream, host: str, port: int) -> None:
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if self._auth:
            lines.append(f"Proxy-Authorization: {self._auth}")
        await stream.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await stream.read_until_regex(b"\r?\n\r?\n", max_bytes=65536)
        status = httputil.parse_response_start_line(head.split(b"\n", 1)[0].decode("latin-1").strip())
        if not 200 <= status.code < 300:
            raise ConnectionRefusedError(f"proxy CONNECT answered {status.code}")


def _proxy_endpoint(proxy_url: str) -> tuple[str, int, str | None]:
    """(host, port, Proxy-Authorization value) of an ``http://[user:pass@]host:port`` proxy."""
    parts = urlsplit(proxy_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, f"Unsupported proxy-url scheme "
                         f"{parts.scheme or '(none)'!r}: only http:// proxies (CONNECT) are "
                         "supported.", status=502, code=CODE_CONNECT_FAILED)
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode()
    return parts.hostname, parts.port or 80, auth


class Transport:
    """Upstream HTTP clients (one direct, one per outbound proxy URL in use); one instance per
    daemon, closed on shutdown."""

    def __init__(self, *, max_clients: int = 1000, max_response_bytes: int = _DEFAULT_MAX_RESPONSE,
                 max_header_size: int = 256 * 1024) -> None:
        self._max_response = max_response_bytes
        self._options = {"max_clients": max_clients, "max_body_size": _STREAM_MAX_BODY,
                         "max_header_size": max_header_size}
        self._clients: dict[str, _AbortableClient] = {}

    def _client_for(self, proxy_url: str) -> _AbortableClient:
        client = self._clients.get(proxy_url)
        if client is None:
            endpoint = _proxy_endpoint(proxy_url) if proxy_url else None
            client = _AbortableClient(force_instance=True, resolver=_LiteralResolver(),
                                      **self._options)
            if endpoint:
                client.tcp_client.close()
                client.tcp_client = _TunnelTCPClient(*endpoint)
            self._clients[proxy_url] = client
        return client

    def start(self, wire: WireRequest, *, connect_timeout: float, first_byte_timeout: float,
              idle_timeout: float, on_chunk: ChunkCallback | None = None,
              proxy_url: str | None = None) -> UpstreamCall:
        """Send ``wire``; returns at once with the call (cancel handle).  Must run on the loop.

        ``on_chunk`` receives each 2xx body chunk as it arrives (it may return an awaitable to
        apply back-pressure); without it the body is buffered into the response.
        ``proxy_url`` (``http://[user:pass@]host:port``) tunnels the request with CONNECT.
        """
        call = UpstreamCall(on_chunk, first_byte_timeout, idle_timeout, self._max_response)
        try:
            client = self._client_for(proxy_url or "")
        except ProxyError as err:
            call._fail(err)
            return call
        request = HTTPRequest(
            wire.url, method=wire.method, headers=dict(wire.headers), body=wire.body,
            connect_timeout=connect_timeout, request_timeout=_SAFETY_REQUEST_TIMEOUT,
            follow_redirects=False, decompress_response=True,
            header_callback=call._on_header_line, streaming_callback=call._on_body)
        request.cliproxyd_call = call  # type: ignore[attr-defined]  # read by _AbortableConnection
        fetch = asyncio.ensure_future(client.fetch(request, raise_error=False))
        call._begin(fetch)
        return call

    async def send(self, wire: WireRequest, *, connect_timeout: float, first_byte_timeout: float,
                   idle_timeout: float, on_chunk: ChunkCallback | None = None,
                   proxy_url: str | None = None) -> UpstreamResponse:
        """`start` and wait for the `result` (cancelling the awaiting task aborts the request)."""
        call = self.start(wire, connect_timeout=connect_timeout,
                          first_byte_timeout=first_byte_timeout, idle_timeout=idle_timeout,
                          on_chunk=on_chunk, proxy_url=proxy_url)
        return await call.result()

    def close(self) -> None:
        """Close every client (in-flight requests fail)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
