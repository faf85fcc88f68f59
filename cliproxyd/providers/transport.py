"""Upstream HTTP: the only module that sends requests to upstreams.

Owns sending a `WireRequest` and getting bytes back with timeouts that fit long streams
(DESIGN.md "Tornado notes", STYLE.md §6.2.10).  The client is Tornado's ``curl_httpclient``
(libcurl through pycurl) because it keeps upstream connections alive and reuses them, which
Tornado's simple client cannot: on the benchmark (issue 8) that is most of what a proxy costs.

* ``connect_timeout`` is libcurl's (DNS + TCP + TLS; DNS is asynchronous in libcurl).
* A first-byte watchdog: no response status line within ``first_byte_timeout`` seconds of the
  start → 504.  Then an idle watchdog: no header line or body chunk for ``idle_timeout`` seconds
  → 504.  libcurl's whole-request timeout is set to a day, as a last-resort net only, so a long
  healthy stream is never cut.
* The status line and headers are captured as libcurl reports them, before any body, so a 2xx
  body goes to ``on_chunk`` as it comes while a non-2xx body is buffered and returned (not
  raised) for `Provider.classify_error`.
* Back-pressure: when ``on_chunk`` returns an awaitable (a client flush), libcurl is told to
  pause the transfer (``CURL_WRITEFUNC_PAUSE``) until it completes, so a slow client never makes
  the daemon buffer a fast upstream's stream; that wait is not upstream idle time.
* `UpstreamCall.cancel()` removes the transfer from libcurl at once; an unfinished transfer's
  connection is closed, not pooled (the upstream sees the disconnect).  The handler calls it
  from ``on_connection_close``.
* Up to `default_max_transfers()` requests are in flight at once (half the open-files limit;
  the daemon raises that limit to its hard maximum at start, as Go programs do); libcurl handles
  are made as transfers need them, not all at start.  A request beyond the cap waits for a free
  slot, its first-byte timeout running.
* Application code never runs inside a libcurl callback (libcurl forbids re-entering it from
  there): header lines and body chunks are queued and handed over from the IOLoop.

Failures become `ProxyError`s with a transport code (see `routing.pool`): connection refused,
reset or DNS failure → 502 ``upstream_connect_failed``; a connect timeout → 504
``upstream_connect_failed``; a watchdog timeout → 504 ``upstream_timeout``; the connection lost
after the status line → 502 ``upstream_connection_lost``; a cancel → 499 ``client_cancelled``.

An outbound proxy (``proxy-url``) is libcurl's: ``http://`` and ``https://`` proxies always
tunnel with CONNECT (the proxy sees only host and port, TLS runs end to end inside), and
``socks4``/``socks4a``/``socks5``/``socks5h`` are spoken natively; credentials come from the URL.
Any other scheme fails with a clear 502 instead of silently going direct.  TLS verification
uses the same trust store as Python's ``ssl`` module (``SSL_CERT_FILE`` honoured).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import resource
import ssl
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import pycurl
from tornado import httputil
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.ioloop import IOLoop

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
_FIRST_HANDLES = 16  # libcurl handles made at start; more are made as transfers need them
_USER_AGENT = "cliproxyd"
_PROXY_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})


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


class _Headers(Mapping[str, str]):
    """Response headers from their raw lines, parsed on first use (only error answers are
    looked at; a 2xx never is).  Lower-case names; repeated headers joined with ", " (RFC 9110
    §5.3); a malformed line is skipped."""

    __slots__ = ("_lines", "_flat")

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._flat: dict[str, str] | None = None

    def _parsed(self) -> dict[str, str]:
        if self._flat is None:
            headers = httputil.HTTPHeaders()
            for line in self._lines:
                try:
                    headers.parse_line(line)
                except httputil.HTTPInputError:
                    log.debug("ignoring a malformed upstream header line")
            flat: dict[str, str] = {}
            for name, value in headers.get_all():
                key = name.lower()
                flat[key] = f"{flat[key]}, {value}" if key in flat else value
            self._flat = flat
        return self._flat

    def __getitem__(self, key: str) -> str:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __repr__(self) -> str:
        return f"_Headers({self._parsed()!r})"


class UpstreamCall:
    """One upstream request in flight: `cancel()` it, or `await result()`."""

    def __init__(self, wire: WireRequest, connect_timeout: float, proxy_url: str,
                 on_chunk: ChunkCallback | None, first_byte_timeout: float,
                 idle_timeout: float, max_response: int, loop: asyncio.AbstractEventLoop) -> None:
        # What `_CurlClient` sends.
        self.wire, self.connect_timeout, self.proxy_url = wire, connect_timeout, proxy_url
        # The asyncio loop itself, not Tornado's IOLoop: its call_at and add_callback wrap
        # every callback once more, and look the running loop up on each call.
        self._loop = loop
        self._on_chunk = on_chunk
        self._first_byte_timeout = first_byte_timeout
        self._idle_timeout = idle_timeout
        self._max_response = max_response
        self._started = self._last_activity = self._loop.time()
        self._done: asyncio.Future[UpstreamResponse] = self._loop.create_future()
        self._client: _CurlClient | None = None
        self._curl: pycurl.Curl | None = None
        self._curl_info: object = None  # identifies our transfer on a reusable curl handle
        self._timer: object | None = None
        self._deadline = math.inf  # when the armed timer fires
        self.status: int | None = None
        self._header_lines: list[str] = []
        self._buffer = bytearray()
        # Header lines and body chunks from libcurl waiting for the IOLoop; back-pressure state.
        self._head: list[bytes] = []
        self._queue: collections.deque[bytes] = collections.deque()
        self._flush_scheduled = False
        self._holding = False      # the consumer has not finished with the last chunk
        self._curl_paused = False  # libcurl was told to pause the transfer meanwhile
        # (status, error) of a transfer libcurl finished while chunks were still undelivered.
        self._final: tuple[int | None, BaseException | None] | None = None
        self._tunnel_head = False  # an HTTP proxy's CONNECT answer comes before the response
        self._paused = 0  # > 0 while waiting for the consumer (the watchdog then waits too)
        self.bytes_received = 0

    # -- wiring -----------------------------------------------------------------------------------

    def _attach(self, client: _CurlClient, curl: pycurl.Curl) -> None:
        self._client, self._curl, self._curl_info = client, curl, curl.info  # type: ignore[attr-defined]

    def _detach(self) -> tuple[_CurlClient | None, pycurl.Curl | None]:
        """Forget the handle (libcurl reuses it for other requests once ours is finished);
        returns it if our transfer is still the one on it."""
        client, curl = self._client, self._curl
        mine = curl is not None and getattr(curl, "info", None) is self._curl_info
        self._client = self._curl = self._curl_info = None
        return (client, curl) if mine else (None, None)

    def _begin(self) -> None:
        self._arm(self._started + self._first_byte_timeout)

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        self._timer = self._loop.call_at(deadline, self._watchdog)

    def _watchdog(self) -> None:
        self._timer = None
        if self._done.done():
            return
        now = self._loop.time()
        if self._paused or self._holding:  # our consumer is slow, not the upstream
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

    # -- from libcurl (inside its callbacks: queue only, never run application code) --------------

    def _curl_header(self, line: bytes) -> None:
        self._head.append(line)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _curl_write(self, chunk: bytes) -> int | None:
        if self._holding:
            # Not consumed: libcurl keeps it and hands it over again after PAUSE_CONT.
            self._curl_paused = True
            return pycurl.WRITEFUNC_PAUSE
        self._queue.append(chunk)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return None

    # -- on the IOLoop ----------------------------------------------------------------------------

    def _on_header_line(self, line: str) -> None:
        self._last_activity = self._loop.time()
        if self._tunnel_head:
            # The proxy's answer to CONNECT is not the upstream's: skip it up to its blank line.
            # (A refusal fails the transfer in libcurl, before any upstream status.)
            self._tunnel_head = bool(line.strip()) or line.startswith("HTTP/")
            return
        if line.startswith("HTTP/"):
            # "HTTP/1.1 200 OK", "HTTP/2 200"; a 1xx comes first and is replaced by the final
            # status line and its headers.
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[1].isdigit():
                return
            first = self.status is None
            self.status, self._header_lines = int(parts[1]), []
            idle_deadline = self._last_activity + self._idle_timeout
            if first and not self._done.done() and idle_deadline < self._deadline:
                # From now on the idle limit applies.  A later deadline needs no new timer: the
                # watchdog re-arms itself when it finds the upstream still active.
                self._stop_timer()
                self._arm(idle_deadline)
        elif line.strip():
            self._header_lines.append(line)

    def _flush(self) -> None:
        """Take queued header lines, then hand queued chunks to the consumer, stopping while it
        applies back-pressure."""
        self._flush_scheduled = False
        if self._head:  # libcurl reports every header line before any body byte
            lines, self._head = self._head, []
            for line in lines:
                self._on_header_line(line.decode("latin-1"))
        queue = self._queue
        while queue and not self._holding:
            # What libcurl handed over in one go goes on as one piece: one parse, one client
            # write and flush for many small SSE chunks instead of one each.
            chunk = queue.popleft() if len(queue) == 1 else b"".join(queue)
            queue.clear()
            if self._done.done():
                continue
            pending = self._on_body(chunk)
            if pending is not None:
                self._holding = True
                asyncio.ensure_future(pending).add_done_callback(self._release)
        if not self._holding:
            self._drained()

    def _release(self, _: object) -> None:
        self._holding = False
        self._flush()

    def _drained(self) -> None:
        """Everything libcurl gave us is delivered: let it go on, or finish the call."""
        if self._curl_paused:
            self._curl_paused = False
            client, curl = self._client, self._curl
            if curl is not None and getattr(curl, "info", None) is self._curl_info:
                try:
                    curl.pause(pycurl.PAUSE_CONT)  # may call _curl_write again, synchronously
                except pycurl.error:
                    pass  # the transfer failed while paused; libcurl reports it to _finish
                else:
                    client._set_timeout(0)  # type: ignore[union-attr]  # ask for a socket_action
        if self._final is not None and not self._queue:
            final, self._final = self._final, None
            self._transfer_done(*final)

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

    def _transfer_done(self, code: int | None, error: BaseException | None) -> None:
        """libcurl finished the transfer (``code``: the HTTP status) or failed it (``error``), or
        it could not be started (``error``)."""
        if not self._done.done() and (self._queue or self._holding):
            self._final = (code, error)  # answer once the consumer has every chunk
            return
        self._stop_timer()
        self._detach()
        if self._done.done():
            return
        if error is None:  # any real HTTP status, 2xx or not, is an answer
            self._done.set_result(self._response(code or 0))
            return
        self._failed(self._map_failure(error))

    # -- outcomes ---------------------------------------------------------------------------------

    def _response(self, code: int) -> UpstreamResponse:
        return UpstreamResponse(self.status or code, _Headers(self._header_lines),
                                bytes(self._buffer))

    def _map_failure(self, exc: BaseException | None) -> ProxyError:
        errno = getattr(exc, "errno", None)
        if errno == pycurl.E_OPERATION_TIMEDOUT and self.status is None:
            return ProxyError(ErrorKind.UPSTREAM_TIMEOUT, f"Upstream connect timed out: {exc}",
                              code=CODE_CONNECT_FAILED)
        if self.status is not None:
            return ProxyError(ErrorKind.UPSTREAM_ERROR, "Upstream connection lost mid-response.",
                              status=502, code=CODE_STREAM_BROKEN)
        if isinstance(exc, CurlError):
            reason = f"curl error {errno}: {exc.message}"
        else:
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
        return ProxyError(ErrorKind.UPSTREAM_ERROR, f"Could not reach the upstream ({reason}).",
                          status=502, code=CODE_CONNECT_FAILED)

    def _fail(self, error: ProxyError) -> None:
        self._stop_timer()
        if self._done.done():
            return
        self._failed(error)
        self._abandon(error.message)

    def _failed(self, error: ProxyError) -> None:
        self._done.set_exception(error)
        # Marked as seen: a failure nobody awaits (cancelled before `result()`) must not log
        # "exception was never retrieved"; an awaiting `result()` still gets it raised.
        self._done.exception()

    def _abandon(self, why: str) -> None:
        """Drop what is queued and abort the transfer, if it is still ours."""
        self._queue.clear()
        client, curl = self._detach()
        if client is not None and curl is not None:
            client.abort(curl, why)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # type: ignore[attr-defined]
            self._timer = None

    def cancel(self) -> None:
        """Abort now (the client went away): the socket is closed, `result()` raises a 499
        ``client_cancelled`` `ProxyError`.  Safe to call at any time, more than once."""
        self._fail(ProxyError(ErrorKind.UPSTREAM_ERROR, "Request cancelled by the client.",
                              status=499, code=CODE_CANCELLED))

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers received so far (lower-case keys; empty before the status)."""
        return _Headers(list(self._header_lines))

    @property
    def done(self) -> bool:
        """Whether the call has finished (answered, failed or cancelled)."""
        return self._done.done()

    async def result(self) -> UpstreamResponse:
        """The response once the body is complete; raises `ProxyError` on failure."""
        try:
            return await self._done
        except asyncio.CancelledError:
            # The awaiting task was cancelled, and the future with it (no asyncio.shield: its
            # extra future and callbacks were a cost on every request): do not leak the transfer.
            if self._done.cancelled():
                self._stop_timer()
                self._abandon("Request cancelled.")
            raise


def _trust_store() -> tuple[str | None, str | None]:
    """The CA file and directory Python's ``ssl`` would use, for libcurl to use too."""
    paths = ssl.get_default_verify_paths()
    cafile = os.environ.get(paths.openssl_cafile_env) or paths.cafile
    capath = os.environ.get(paths.openssl_capath_env) or paths.capath
    return (cafile if cafile and os.path.isfile(cafile) else None,
            capath if capath and os.path.isdir(capath) else None)


class _CurlClient(CurlAsyncHTTPClient):
    """Tornado's libcurl client driving `UpstreamCall`s directly: Tornado keeps the multi
    handle, its socket and timer callbacks and the pool of easy handles; the queue, the
    per-transfer setup (header and write callbacks that only queue, for back-pressure; abort;
    proxies; the trust store) and the finish are ours.

    Tornado's setup reads some forty request attributes and sets about thirty options per
    transfer, and its fetch and finish build request, response and timing objects we never read;
    on the benchmark those were the largest single costs of a request.  A handle is reset after
    each transfer (its pooled connections survive that), so every option we need is set again
    for every transfer.
    """

    def initialize(self, *, max_clients: int, **kwargs: Any) -> None:  # type: ignore[override]
        self._cafile, self._capath = _trust_store()
        # Tornado creates every handle up front and queues a transfer beyond them until one
        # is free; we start with a few and create more as transfers need them, up to the cap.
        self._max_transfers = max_clients
        self._due_now = False  # the pending libcurl timer is a call_soon, not a timer
        self._aio = IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
        super().initialize(max_clients=min(max_clients, _FIRST_HANDLES), **kwargs)

    def _set_timeout(self, msecs: int) -> None:
        """libcurl's timer callback (``M_TIMERFUNCTION``), and ours to ask for a socket_action.

        Tornado's version re-arms an IOLoop timeout on every call, through its wrappers, and
        turns libcurl's -1 ("delete the timer") into one that fires at once; libcurl calls this
        five times for a request on a kept-alive connection.  Here: -1 deletes, 0 is one
        call_soon (a second 0 while it is pending changes nothing), any other value a timer.
        Tornado's ``close`` and ``_handle_timeout`` work on the handle as before (``cancel``,
        and ``_timeout = None`` when it runs)."""
        pending = self._timeout
        if pending is not None:
            if msecs == 0 and self._due_now:
                return
            pending.cancel()  # type: ignore[attr-defined]
        if msecs < 0:
            self._timeout = None
        elif msecs == 0:
            self._timeout, self._due_now = self._aio.call_soon(self._handle_timeout), True
        else:
            self._timeout = self._aio.call_later(msecs / 1000.0, self._handle_timeout)
            self._due_now = False

    def _handle_socket(self, event: int, fd: int, multi: Any, data: Any) -> None:
        """libcurl's socket callback (``M_SOCKETFUNCTION``): which of its sockets to watch.

        As Tornado's, a socket's watch is always removed and added again, never changed in
        place (libcurl may close a socket and open another with the same number without
        saying so in between, and an in-place change of a closed descriptor fails in the
        poller), but straight on the asyncio loop: Tornado's add_handler and remove_handler
        keep their own tables and wrap every ready event in one more call, on two sockets
        (the connection and libcurl's wake-up pipe) of every request."""
        aio, fds = self._aio, self._fds
        watched = fds.pop(fd, None)
        if watched is not None:
            if watched & _READ:
                aio.remove_reader(fd)
            if watched & _WRITE:
                aio.remove_writer(fd)
        if event == pycurl.POLL_REMOVE:
            return
        wanted = _POLL_EVENTS[event]
        if wanted & _READ:
            aio.add_reader(fd, self._handle_events, fd, _READ)
        if wanted & _WRITE:
            aio.add_writer(fd, self._handle_events, fd, _WRITE)
        fds[fd] = wanted

    def close(self) -> None:
        """Stop watching libcurl's sockets (Tornado's close leaves them), then close."""
        for fd in list(self._fds):
            self._handle_socket(pycurl.POLL_REMOVE, fd, None, None)
        super().close()

    def submit(self, call: UpstreamCall) -> None:
        """Start ``call``'s transfer, or queue it until a handle is free.  Tornado's ``fetch``
        is not used: its request and response objects, future and timing dictionary were a
        tenth of a small request's cost, and we read none of them."""
        self._requests.append(call)  # type: ignore[arg-type]
        self._process_queue()
        self._set_timeout(0)

    def _process_queue(self) -> None:
        requests, free = self._requests, self._free_list
        wanted = min(len(requests) - len(free), self._max_transfers - len(self._curls))
        if wanted > 0:
            fresh = [self._curl_create() for _ in range(wanted)]
            self._curls += fresh
            free += fresh
        while free and requests:
            curl = free.pop()
            call: UpstreamCall = requests.popleft()  # type: ignore[assignment]
            curl.info = call  # type: ignore[attr-defined]  # Tornado's "handle in use" mark
            try:
                self._setup(curl, call)
            except Exception as exc:
                curl.info = None  # type: ignore[attr-defined]
                curl.reset()
                free.append(curl)
                call._transfer_done(None, exc)
            else:
                self._multi.add_handle(curl)

    def _finish(self, curl: pycurl.Curl, curl_error: int | None = None,
                curl_message: str | None = None) -> None:
        """libcurl is done with ``curl`` (Tornado calls this for finished transfers)."""
        call: UpstreamCall = curl.info  # type: ignore[attr-defined]
        curl.info = None  # type: ignore[attr-defined]
        self._multi.remove_handle(curl)
        if curl_error:
            code, error = None, CurlError(curl_error, curl_message or "")
        else:
            code, error = curl.getinfo(pycurl.HTTP_CODE), None
        try:
            call._transfer_done(code, error)
        except Exception:
            log.exception("finishing an upstream transfer failed")
        curl.reset()
        self._free_list.append(curl)

    def _setup(self, curl: pycurl.Curl, call: UpstreamCall) -> None:
        if call.done:  # cancelled while queued for a free handle
            raise ConnectionAbortedError("cancelled before the request started")
        # Options not set here are at their defaults (redirects not followed, peers verified):
        # Tornado resets the handle after each transfer.  libcurl's verbose trace would include
        # request headers, i.e. upstream credentials.
        curl.setopt(pycurl.VERBOSE, 0)
        curl.setopt(pycurl.NOSIGNAL, 1)  # other threads exist (usage writer, OAuth)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.ENCODING, "gzip,deflate")  # and the body arrives decompressed
        curl.setopt(pycurl.USERAGENT, _USER_AGENT)  # a provider's own User-Agent header wins
        curl.setopt(pycurl.TIMEOUT_MS, int(1000 * _SAFETY_REQUEST_TIMEOUT))
        if self._cafile:
            curl.setopt(pycurl.CAINFO, self._cafile)
        if self._capath:
            curl.setopt(pycurl.CAPATH, self._capath)
        wire = call.wire
        curl.setopt(pycurl.URL, wire.url)
        curl.setopt(pycurl.HTTPHEADER, _header_lines(wire.headers))
        curl.setopt(pycurl.HEADERFUNCTION, call._curl_header)
        curl.setopt(pycurl.WRITEFUNCTION, call._curl_write)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(1000 * call.connect_timeout))
        proxy_url = call.proxy_url
        if proxy_url:  # without one, libcurl's default: the *_proxy environment variables
            curl.setopt(pycurl.PROXY, proxy_url)
            curl.setopt(pycurl.HTTPPROXYTUNNEL, 1)
        if wire.body or wire.method == "POST":
            curl.setopt(pycurl.POSTFIELDS, wire.body)  # a POST unless CUSTOMREQUEST says else
        if wire.method not in ("GET", "POST"):
            curl.setopt(pycurl.CUSTOMREQUEST, wire.method)
        call._attach(self, curl)

    def abort(self, curl: pycurl.Curl, reason: str) -> None:
        """End a transfer now.  Removing an unfinished transfer makes libcurl close its
        connection rather than pool it."""
        self._finish(curl, pycurl.E_ABORTED_BY_CALLBACK, reason)
        self._process_queue()  # a handle is free again


_READ, _WRITE = IOLoop.READ, IOLoop.WRITE
_POLL_EVENTS = {pycurl.POLL_NONE: 0, pycurl.POLL_IN: _READ, pycurl.POLL_OUT: _WRITE,
                pycurl.POLL_INOUT: _READ | _WRITE}


def _header_lines(headers: Mapping[str, str]) -> list[bytes]:
    """libcurl's header list.  ``Expect:`` and ``Pragma:`` with no value stop libcurl from
    adding its own (100-continue would cost a round trip); a CR or LF would split a header."""
    lines = [b"%s: %s" % (name.encode("ascii"), value.encode("latin-1"))
             for name, value in headers.items()]
    names = {name.lower() for name in headers}
    if "expect" not in names:
        lines.append(b"Expect:")
    if "pragma" not in names:
        lines.append(b"Pragma:")
    joined = b"".join(lines)  # one scan of all of them: this runs for every upstream request
    if b"\r" in joined or b"\n" in joined:
        raise ValueError("Illegal characters in an upstream header (CR or LF)")
    return lines


def default_max_transfers() -> int:
    """Half the process's open-files limit (each transfer holds one socket), at least 64."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(64, soft // 2)


def _proxy_scheme(proxy_url: str) -> str:
    """The scheme of a usable ``proxy-url``; anything else is a 502 (never a silent direct
    connection)."""
    parts = urlsplit(proxy_url)
    if parts.scheme not in _PROXY_SCHEMES or not parts.hostname:
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, f"Unsupported proxy-url scheme "
                         f"{parts.scheme or '(none)'!r}: use http, https, socks4, socks4a, "
                         "socks5 or socks5h.", status=502, code=CODE_CONNECT_FAILED)
    return parts.scheme


class Transport:
    """The upstream HTTP client; one instance per daemon, closed on shutdown.  Connections to
    upstreams are kept alive and reused across requests (and across credentials that share a
    host and proxy)."""

    def __init__(self, *, max_transfers: int | None = None,
                 max_response_bytes: int = _DEFAULT_MAX_RESPONSE) -> None:
        """``max_transfers``: upstream requests in flight at once (more wait for a free slot,
        their first-byte timeout running); by default half the open-files limit, so client
        connections keep the other half."""
        self._max_response = max_response_bytes
        self._max_transfers = max_transfers or default_max_transfers()
        self._client: _CurlClient | None = None

    def _curl_client(self) -> _CurlClient:
        if self._client is None:  # created on the loop that uses it
            self._client = _CurlClient(force_instance=True, max_clients=self._max_transfers,
                                       max_body_size=_STREAM_MAX_BODY)
        return self._client

    def start(self, wire: WireRequest, *, connect_timeout: float, first_byte_timeout: float,
              idle_timeout: float, on_chunk: ChunkCallback | None = None,
              proxy_url: str | None = None) -> UpstreamCall:
        """Send ``wire``; returns at once with the call (cancel handle).  Must run on the loop.

        ``on_chunk`` receives each 2xx body chunk as it arrives (it may return an awaitable to
        apply back-pressure); without it the body is buffered into the response.
        ``proxy_url`` sends the request through that proxy (see the module docstring).
        """
        client = self._curl_client()
        call = UpstreamCall(wire, connect_timeout, proxy_url or "", on_chunk, first_byte_timeout,
                            idle_timeout, self._max_response, client._aio)
        if proxy_url:
            try:
                call._tunnel_head = _proxy_scheme(proxy_url) in ("http", "https")
            except ProxyError as err:
                call._fail(err)
                return call
        call._begin()
        client.submit(call)
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
        """Close the client and its pooled connections (in-flight requests fail)."""
        if self._client is not None:
            self._client.close()
            self._client = None
