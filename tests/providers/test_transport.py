"""cliproxyd/providers/transport.py against a real Tornado server on 127.0.0.1.

The fake upstream records what it received and whether its client went away; modes: stream
(three flushed chunks), error (429 + JSON body + Retry-After), stall (never answers), stall-mid
(one chunk, then silence), slow-chunks (chunks closer together than the idle timeout but longer
than it in total), drop-mid (closes the socket after one chunk), peer (answers with the
client's address: which pooled connection was used), big (8 MiB as fast as it is taken); plus
a minimal HTTP CONNECT proxy and a minimal SOCKS5 proxy for `proxy-url`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpclient import TCPClient
from tornado.tcpserver import TCPServer

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.providers.base import WireRequest
from cliproxyd.providers.transport import Transport
from cliproxyd.routing.pool import (
    CODE_CANCELLED,
    CODE_CONNECT_FAILED,
    CODE_STREAM_BROKEN,
    CODE_TIMEOUT,
)

# Generous bounds on waits, never assertions about speed.
LONG = 30.0


class _Base(tornado.web.RequestHandler):
    def initialize(self, state: dict) -> None:
        self.state = state

    def on_connection_close(self) -> None:
        self.state["closed"].set()

    async def _hold(self) -> None:
        # Wait for the client to go away (or the test to end): never answer on our own.
        await self.state["closed"].wait()


class Stream(_Base):
    async def post(self) -> None:
        self.state["received"] = (dict(self.request.headers), self.request.body)
        self.set_header("Content-Type", "text/event-stream")
        for n in range(3):
            self.write(f"data: {n}\n\n")
            await self.flush()
            await asyncio.sleep(0.01)


class Peer(_Base):
    """Answers with the client's address: which connection the request came on."""

    async def post(self) -> None:
        self.write("%s:%s" % self.request.connection.stream.socket.getpeername()[:2])


class Big(_Base):
    """8 MiB in 64 KiB writes, as fast as the client takes them."""

    async def post(self) -> None:
        self.state["big_written"] = 0
        block = b"x" * 65536
        try:
            for _ in range(128):
                self.write(block)
                await self.flush()
                self.state["big_written"] += len(block)
        except StreamClosedError:
            pass


class Error(_Base):
    async def post(self) -> None:
        self.set_status(429)
        self.set_header("Retry-After", "7")
        self.write({"error": {"message": "slow down", "type": "rate_limit_error"}})


class Stall(_Base):
    async def post(self) -> None:
        await self._hold()


class StallMid(_Base):
    async def post(self) -> None:
        self.state["peer"] = "%s:%s" % self.request.connection.stream.socket.getpeername()[:2]
        self.write("data: first\n\n")
        await self.flush()
        await self._hold()


class SlowChunks(_Base):
    async def post(self) -> None:
        for n in range(4):
            self.write(f"chunk{n};")
            await self.flush()
            await asyncio.sleep(self.state["gap"])


class DropMid(_Base):
    async def post(self) -> None:
        self.write("data: first\n\n")
        await self.flush()
        # Drop only once the client has the first chunk: a drop *after* data, deterministically.
        await self.state["client_got_first"].wait()
        self.request.connection.stream.close()


def _app(state: dict) -> tornado.web.Application:
    routes = [("/stream", Stream), ("/error", Error), ("/stall", Stall), ("/stall-mid", StallMid),
              ("/slow", SlowChunks), ("/drop", DropMid), ("/peer", Peer), ("/big", Big)]
    return tornado.web.Application([(p, h, {"state": state}) for p, h in routes])


def run(scenario, gap: float = 0.0, **transport_options):
    """Start the fake upstream on a free port, run ``scenario(transport, base, state)``."""

    async def main():
        state = {"closed": asyncio.Event(), "gap": gap, "client_got_first": asyncio.Event()}
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        server = HTTPServer(_app(state))
        server.add_sockets([sock])
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        transport = Transport(**transport_options)
        try:
            return await scenario(transport, base, state)
        finally:
            state["closed"].set()
            transport.close()
            server.stop()
            await server.close_all_connections()

    return asyncio.run(main())


def wire(url: str, body: bytes = b"{}") -> WireRequest:
    return WireRequest("POST", url, {"Content-Type": "application/json", "X-Test": "yes"}, body)


def test_streaming_chunks_arrive_through_on_chunk_and_headers_are_sent():
    chunks: list[bytes] = []

    async def scenario(t, base, state):
        resp = await t.send(wire(base + "/stream", b'{"a":1}'), connect_timeout=5,
                            first_byte_timeout=LONG, idle_timeout=LONG, on_chunk=chunks.append)
        return resp, state["received"]

    resp, (headers, body) = run(scenario)
    assert resp.status == 200 and resp.ok
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.body == b""  # streamed, not buffered
    assert b"".join(chunks) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert headers["X-Test"] == "yes" and body == b'{"a":1}'


def test_without_on_chunk_the_body_is_buffered():
    async def scenario(t, base, state):
        return await t.send(wire(base + "/stream"), connect_timeout=5, first_byte_timeout=LONG,
                            idle_timeout=LONG)

    resp = run(scenario)
    assert resp.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_error_status_is_returned_with_its_body_not_streamed():
    chunks: list[bytes] = []

    async def scenario(t, base, state):
        return await t.send(wire(base + "/error"), connect_timeout=5, first_byte_timeout=LONG,
                            idle_timeout=LONG, on_chunk=chunks.append)

    resp = run(scenario)
    assert resp.status == 429 and not resp.ok
    assert resp.headers["retry-after"] == "7"
    assert json.loads(resp.body)["error"]["message"] == "slow down"
    assert chunks == []  # an error body never reaches the client stream


def test_connection_refused_is_a_502_connect_failure():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now

    async def scenario(t, base, state):
        with pytest.raises(ProxyError) as info:
            await t.send(wire(f"http://127.0.0.1:{port}/x"), connect_timeout=5,
                         first_byte_timeout=LONG, idle_timeout=LONG)
        return info.value

    err = run(scenario)
    assert err.status == 502 and err.kind is ErrorKind.UPSTREAM_ERROR
    assert err.code == CODE_CONNECT_FAILED


def test_first_byte_timeout_is_a_504_and_closes_the_connection():
    async def scenario(t, base, state):
        with pytest.raises(ProxyError) as info:
            await t.send(wire(base + "/stall"), connect_timeout=5, first_byte_timeout=0.2,
                         idle_timeout=LONG)
        await asyncio.wait_for(state["closed"].wait(), LONG)
        return info.value

    err = run(scenario)
    assert err.status == 504 and err.kind is ErrorKind.UPSTREAM_TIMEOUT
    assert err.code == CODE_TIMEOUT and "first byte" in err.message


def test_idle_timeout_mid_stream_after_data_was_delivered():
    chunks: list[bytes] = []

    async def scenario(t, base, state):
        with pytest.raises(ProxyError) as info:
            await t.send(wire(base + "/stall-mid"), connect_timeout=5, first_byte_timeout=LONG,
                         idle_timeout=0.2, on_chunk=chunks.append)
        await asyncio.wait_for(state["closed"].wait(), LONG)  # the socket was closed too
        return info.value

    err = run(scenario)
    assert chunks == [b"data: first\n\n"]
    assert err.status == 504 and err.code == CODE_TIMEOUT and "idle" in err.message


def test_idle_timer_restarts_on_every_chunk():
    # Four chunks 0.1 s apart with a 0.5 s idle limit: total time may exceed the limit, but no
    # gap does, so the stream completes.
    chunks: list[bytes] = []

    async def scenario(t, base, state):
        return await t.send(wire(base + "/slow"), connect_timeout=5, first_byte_timeout=LONG,
                            idle_timeout=0.5, on_chunk=chunks.append)

    resp = run(scenario, gap=0.1)
    assert resp.status == 200
    assert b"".join(chunks) == b"chunk0;chunk1;chunk2;chunk3;"


def test_connection_dropped_mid_stream_is_a_broken_stream():
    chunks: list[bytes] = []

    async def scenario(t, base, state):
        def on_chunk(chunk: bytes) -> None:
            chunks.append(chunk)
            state["client_got_first"].set()

        with pytest.raises(ProxyError) as info:
            await t.send(wire(base + "/drop"), connect_timeout=5, first_byte_timeout=LONG,
                         idle_timeout=LONG, on_chunk=on_chunk)
        return info.value

    err = run(scenario)
    assert err.status == 502 and err.code == CODE_STREAM_BROKEN
    assert chunks == [b"data: first\n\n"]


def test_cancel_closes_the_upstream_connection_within_a_second():
    async def scenario(t, base, state):
        got_first = asyncio.Event()
        call = t.start(wire(base + "/stall-mid"), connect_timeout=5, first_byte_timeout=LONG,
                       idle_timeout=LONG, on_chunk=lambda c: got_first.set())
        await asyncio.wait_for(got_first.wait(), LONG)
        call.cancel()
        # The requirement: the upstream observes the disconnect within one second.
        await asyncio.wait_for(state["closed"].wait(), 1.0)
        with pytest.raises(ProxyError) as info:
            await call.result()
        return info.value

    err = run(scenario)
    assert err.code == CODE_CANCELLED and err.status == 499


def test_sockets_are_watched_while_in_use_and_released_on_close():
    """libcurl's sockets are registered on the asyncio loop directly: the connection of a
    waiting transfer is watched for reading, and closing the transport lets every one go."""
    watched = {}

    async def scenario(t, base, state):
        got_first = asyncio.Event()
        t.start(wire(base + "/stall-mid"), connect_timeout=5, first_byte_timeout=LONG,
                idle_timeout=LONG, on_chunk=lambda c: got_first.set())
        await asyncio.wait_for(got_first.wait(), LONG)
        client = t._curl_client()
        watched.update(client._fds)
        loop = asyncio.get_running_loop()
        readers = [fd for fd in watched if loop.remove_reader(fd)]
        for fd in readers:  # put them back as found: the transfer goes on
            loop.add_reader(fd, client._handle_events, fd, 1)
        t.close()
        return readers, client._fds, [fd for fd in readers if loop.remove_reader(fd)]

    readers, after_close, still_watched = run(scenario)
    assert readers and 1 in watched.values()  # at least the connection, for reading
    assert after_close == {} and still_watched == []


def test_cancelling_the_awaiting_task_aborts_the_request():
    async def scenario(t, base, state):
        task = asyncio.ensure_future(t.send(wire(base + "/stall"), connect_timeout=5,
                                            first_byte_timeout=LONG, idle_timeout=LONG))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(state["closed"].wait(), 1.0)
        return True

    assert run(scenario)


class _ConnectProxy(TCPServer):
    """A minimal HTTP CONNECT proxy: records each request head, optionally refuses, then pipes."""

    def __init__(self, refuse: bool = False) -> None:
        super().__init__()
        self.heads: list[str] = []
        self.refuse = refuse

    async def handle_stream(self, stream: IOStream, address) -> None:
        head = (await stream.read_until(b"\r\n\r\n")).decode("latin-1")
        self.heads.append(head)
        if self.refuse:
            await stream.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            stream.close()
            return
        host, port = head.split()[1].rsplit(":", 1)
        upstream = await TCPClient().connect(host, int(port))
        await stream.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(stream, upstream), _pipe(upstream, stream))


async def _pipe(src: IOStream, dst: IOStream) -> None:
    try:
        while True:
            dst.write(await src.read_bytes(65536, partial=True))
    except StreamClosedError:
        dst.close()


def _listen(server: TCPServer) -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server.add_sockets([sock])
    return sock.getsockname()[1]


async def _through(t: Transport, proxy: TCPServer, base: str, body: bytes, prefix: str):
    """POST ``body`` to the /stream upstream through ``proxy`` (``prefix``: scheme and
    credentials of its URL)."""
    port = _listen(proxy)
    try:
        return await t.send(wire(base + "/stream", body), connect_timeout=5,
                            first_byte_timeout=LONG, idle_timeout=LONG,
                            proxy_url=f"{prefix}127.0.0.1:{port}")
    finally:
        proxy.stop()


def test_proxy_url_tunnels_with_connect_and_sends_credentials():
    async def scenario(t, base, state):
        proxy = _ConnectProxy()
        resp = await _through(t, proxy, base, b'{"via":"proxy"}', "http://us%40er:p%3Ass@")
        return resp, proxy.heads, state["received"]

    resp, heads, (_, body) = run(scenario)
    assert resp.status == 200 and resp.body.startswith(b"data: 0")
    assert body == b'{"via":"proxy"}'  # the request really went through the tunnel
    (head,) = heads
    upstream_hostport = head.split()[1]
    assert head.startswith("CONNECT 127.0.0.1:") and upstream_hostport.startswith("127.0.0.1:")
    expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert f"Proxy-Authorization: {expected}" in head


def test_proxy_refusing_connect_is_a_502_connect_failure():
    async def scenario(t, base, state):
        proxy = _ConnectProxy(refuse=True)
        port = _listen(proxy)
        try:
            with pytest.raises(ProxyError) as info:
                await t.send(wire(base + "/stream"), connect_timeout=5, first_byte_timeout=LONG,
                             idle_timeout=LONG, proxy_url=f"http://127.0.0.1:{port}")
        finally:
            proxy.stop()
        return info.value, "received" in state

    err, reached = run(scenario)
    assert err.status == 502 and err.code == CODE_CONNECT_FAILED
    assert not reached


def test_unsupported_proxy_scheme_fails_clearly_instead_of_going_direct():
    async def scenario(t, base, state):
        with pytest.raises(ProxyError) as info:
            await t.send(wire(base + "/stream"), connect_timeout=5, first_byte_timeout=LONG,
                         idle_timeout=LONG, proxy_url="ftp://127.0.0.1:2121")
        return info.value, "received" in state

    err, reached = run(scenario)
    assert err.status == 502 and "'ftp'" in err.message and err.code == CODE_CONNECT_FAILED
    assert not reached


class _Socks5Proxy(TCPServer):
    """A minimal SOCKS5 proxy (RFC 1928, username/password per RFC 1929): records the
    credentials and target of each CONNECT, then pipes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bytes, str, int]] = []

    async def handle_stream(self, stream: IOStream, address) -> None:
        version, nmethods = await stream.read_bytes(2)
        methods = await stream.read_bytes(nmethods)
        assert version == 5 and 2 in methods
        await stream.write(b"\x05\x02")
        _, ulen = await stream.read_bytes(2)
        user = await stream.read_bytes(ulen)
        password = await stream.read_bytes((await stream.read_bytes(1))[0])
        await stream.write(b"\x01\x00")
        _, cmd, _, atyp = await stream.read_bytes(4)
        if atyp == 1:
            host = socket.inet_ntoa(await stream.read_bytes(4))
        else:  # a name (socks5h)
            host = (await stream.read_bytes((await stream.read_bytes(1))[0])).decode()
        port = int.from_bytes(await stream.read_bytes(2), "big")
        self.seen.append((user, password, host, port))
        upstream = await TCPClient().connect(host, port)
        await stream.write(b"\x05\x00\x00\x01" + bytes(4) + bytes(2))
        await asyncio.gather(_pipe(stream, upstream), _pipe(upstream, stream))


def test_socks5_proxy_carries_the_request_with_its_credentials():
    async def scenario(t, base, state):
        proxy = _Socks5Proxy()
        resp = await _through(t, proxy, base, b'{"via":"socks"}', "socks5://alice:s3cret@")
        return resp, proxy.seen, state["received"], int(base.rsplit(":", 1)[1])

    resp, seen, (_, body), upstream_port = run(scenario)
    assert resp.status == 200 and resp.body.startswith(b"data: 0")
    assert body == b'{"via":"socks"}'
    assert seen == [(b"alice", b"s3cret", "127.0.0.1", upstream_port)]


def test_connect_timeout_is_a_504_connect_failure():
    # A listener whose accept queue is full and never drained: the kernel drops further SYNs,
    # so a connect attempt hangs until the client's connect timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)

    async def scenario(t, base, state):
        with pytest.raises(ProxyError) as info:
            await t.send(wire(f"http://127.0.0.1:{port}/x"), connect_timeout=0.5,
                         first_byte_timeout=LONG, idle_timeout=LONG)
        return info.value

    try:
        err = run(scenario)
    finally:
        for s in fillers + [listener]:
            s.close()
    assert err.status == 504 and err.kind is ErrorKind.UPSTREAM_TIMEOUT
    assert err.code == CODE_CONNECT_FAILED


def test_connections_are_kept_alive_between_requests():
    async def scenario(t, base, state):
        peers = []
        for _ in range(3):
            resp = await t.send(wire(base + "/peer"), connect_timeout=5, first_byte_timeout=LONG,
                                idle_timeout=LONG)
            peers.append(resp.body)
        return peers

    peers = run(scenario)
    assert len(set(peers)) == 1  # one client port: the same connection, reused


def test_libcurl_timer_requests_map_to_one_pending_callback_or_none():
    """libcurl's timer callback: -1 deletes the timer (Tornado's client armed one that fired
    at once), 0 runs libcurl soon (once, however often asked), any other value arms a timer
    that replaces the last; an idle client is left with nothing pending."""

    async def scenario(t, base, state):
        await t.send(wire(base + "/peer"), connect_timeout=5, first_byte_timeout=LONG,
                     idle_timeout=LONG)
        client = t._curl_client()
        idle = client._timeout
        client._set_timeout(0)
        soon = client._timeout
        client._set_timeout(0)
        same = client._timeout is soon
        client._set_timeout(60_000)
        later = client._timeout
        delay = later.when() - asyncio.get_running_loop().time()
        client._set_timeout(-1)
        return idle, same, soon.cancelled(), later.cancelled(), delay, client._timeout

    idle, same, soon_cancelled, later_cancelled, delay, deleted = run(scenario)
    assert idle is None and deleted is None
    assert same and soon_cancelled and later_cancelled
    assert 59 < delay <= 60


def test_a_header_with_a_line_break_is_refused_not_sent():
    """A CR or LF in a header value (an upstream key pasted with its newline, say) would split
    the request's headers: the call fails before anything is sent."""

    async def scenario(t, base, state):
        bad = WireRequest("POST", base + "/peer", {"Authorization": "Bearer k\r\nX-Evil: 1"}, b"{}")
        with pytest.raises(ProxyError) as info:
            await t.send(bad, connect_timeout=5, first_byte_timeout=LONG, idle_timeout=LONG)
        ok = await t.send(wire(base + "/peer"), connect_timeout=5, first_byte_timeout=LONG,
                          idle_timeout=LONG)
        return info.value, ok.status

    err, status = run(scenario)
    assert err.status == 502 and "CR or LF" in err.message
    assert status == 200  # the client goes on serving


def test_a_cancelled_transfer_is_not_pooled():
    async def scenario(t, base, state):
        got_first = asyncio.Event()
        call = t.start(wire(base + "/stall-mid"), connect_timeout=5, first_byte_timeout=LONG,
                       idle_timeout=LONG, on_chunk=lambda c: got_first.set())
        await asyncio.wait_for(got_first.wait(), LONG)
        first_peer = state["peer"]
        call.cancel()
        await asyncio.wait_for(state["closed"].wait(), LONG)
        resp = await t.send(wire(base + "/peer"), connect_timeout=5, first_byte_timeout=LONG,
                            idle_timeout=LONG)
        return first_peer, resp.body.decode()

    cancelled_peer, next_peer = run(scenario)
    assert cancelled_peer != next_peer  # a half-read response's connection was closed


def test_slow_consumer_pauses_the_upstream_instead_of_buffering_it():
    # The upstream writes 8 MiB as fast as it can; the consumer takes 20 ms per chunk.  While
    # it is held up, libcurl is paused, so what the transport holds beyond what the consumer
    # has seen stays far below the body size.
    seen = {"delivered": 0, "max_ahead": 0}

    async def scenario(t, base, state):
        async def slow(chunk: bytes) -> None:
            seen["delivered"] += len(chunk)
            queued = sum(len(c) for c in call._queue)
            seen["max_ahead"] = max(seen["max_ahead"], queued)
            await asyncio.sleep(0.02)

        call = t.start(wire(base + "/big"), connect_timeout=5, first_byte_timeout=LONG,
                       idle_timeout=LONG, on_chunk=slow)
        await asyncio.sleep(0.5)
        written = state["big_written"]
        call.cancel()
        return written

    written = run(scenario)
    assert seen["delivered"] > 0
    assert seen["max_ahead"] <= 1024 * 1024
    assert written < 8 * 1024 * 1024  # the upstream itself was held back (socket buffers full)


def test_slow_consumer_is_not_an_idle_upstream():
    # The consumer takes longer per chunk than the idle limit (back-pressure); the upstream
    # itself is never idle, so the stream completes.
    chunks: list[bytes] = []

    async def slow(chunk: bytes) -> None:
        chunks.append(chunk)
        await asyncio.sleep(0.4)

    async def scenario(t, base, state):
        return await t.send(wire(base + "/stream"), connect_timeout=5, first_byte_timeout=LONG,
                            idle_timeout=0.2, on_chunk=slow)

    assert run(scenario).status == 200
    assert b"".join(chunks) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_consumer_error_fails_the_call_with_that_error_and_closes_upstream():
    async def scenario(t, base, state):
        def bad(chunk: bytes) -> None:
            raise ProxyError(ErrorKind.UPSTREAM_ERROR, "malformed upstream stream", status=502)

        call = t.start(wire(base + "/stall-mid"), connect_timeout=5, first_byte_timeout=LONG,
                       idle_timeout=LONG, on_chunk=bad)
        with pytest.raises(ProxyError) as info:
            await call.result()
        await asyncio.wait_for(state["closed"].wait(), LONG)
        return info.value, call.headers

    err, headers = run(scenario)
    assert err.message == "malformed upstream stream"
    assert headers["content-type"].startswith("text/html")  # headers seen before the body


def test_buffered_body_over_the_limit_fails_instead_of_growing():
    async def scenario(t, base, state):
        small = Transport(max_response_bytes=10)
        try:
            with pytest.raises(ProxyError) as info:
                await small.send(wire(base + "/stream"), connect_timeout=5,
                                 first_byte_timeout=LONG, idle_timeout=LONG)
        finally:
            small.close()
        return info.value

    err = run(scenario)
    assert err.status == 502 and "too large" in err.message


def _open_streams(t, base, count: int) -> tuple[list, list[asyncio.Event]]:
    """Start ``count`` calls to /stall-mid; each event is set when its first chunk arrives."""
    firsts = [asyncio.Event() for _ in range(count)]
    calls = [t.start(wire(base + "/stall-mid"), connect_timeout=5, first_byte_timeout=LONG,
                     idle_timeout=LONG, on_chunk=lambda c, e=e: e.set()) for e in firsts]
    return calls, firsts


def test_many_concurrent_transfers_all_start_at_once():
    """libcurl handles are made as transfers need them (a few exist at start); none of 100
    concurrent streams waits for another to finish."""

    async def scenario(t, base, state):
        calls, firsts = _open_streams(t, base, 100)
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in firsts)), LONG)
        finally:
            for call in calls:
                call.cancel()
        return sum(e.is_set() for e in firsts)

    assert run(scenario) == 100


def test_transfers_beyond_the_cap_wait_for_a_free_slot():
    async def scenario(t, base, state):
        calls, firsts = _open_streams(t, base, 3)
        await asyncio.wait_for(asyncio.gather(firsts[0].wait(), firsts[1].wait()), LONG)
        await asyncio.sleep(0.3)
        queued = not firsts[2].is_set()
        calls[0].cancel()  # a slot is free: the third starts
        await asyncio.wait_for(firsts[2].wait(), LONG)
        for call in calls:
            call.cancel()
        return queued

    assert run(scenario, max_transfers=2)

