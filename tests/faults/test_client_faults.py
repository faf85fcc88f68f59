"""Client faults (issue 8; reliability catalogue §2.3): a client that disconnects mid-stream
(the upstream request is cancelled and no upstream connection stays open), slowloris headers
and bodies (closed by ``timeouts.client-idle``/``client-body``), oversized bodies, 64 KiB
headers, invalid UTF-8 and deep nesting; a client that reads a stream slowly (the upstream is held
back, nothing is buffered without bound, every byte arrives).  Every test ends by checking the daemon still serves.

Open upstream connections are observed from the kernel: the ESTABLISHED TCP sockets in
/proc/net/tcp whose remote port is the fake upstream's.  Idle kept-alive connections may be
pooled by the transport, but a cancelled transfer's connection is closed, never pooled.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time

import pytest
from conftest import AUTH, CLIENT_KEY, CLIENTS, TIMEOUTS, client_request
from harness import Daemon

WAIT = 15.0  # upper bound for something the daemon must do on its own (not a speed claim)
BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def client_daemon(fakes, tmp_path_factory):
    # Long upstream timeouts: a stalled stream must end because its client left, not because
    # the daemon gave up on the upstream.
    timeouts = dict(TIMEOUTS, **{"first-byte": 60, "idle": 60})
    config = {
        "api-keys": [CLIENT_KEY], "request-retry": 0, "timeouts": timeouts,
        "max-body-size": BODY_LIMIT, "streaming": {"keepalive-seconds": 0},
        "claude-api-key": [{"api-key": "fk-client-claude", "base-url": fakes["claude"].base_url,
                            "models": [{"name": "claude-sonnet-4-5", "alias": "cf-claude"}]}],
        "openai-compatibility": [{
            "name": "cf", "base-url": fakes["openai"].base_url + "/v1",
            "api-key-entries": [{"api-key": "fk-client-openai"}],
            "models": [{"name": "up-model", "alias": "cf-openai"}]}],
    }
    daemon = Daemon(tmp_path_factory.mktemp("client-faults"), config).start()
    yield daemon
    daemon.stop()


def established_to(port: int) -> int:
    """ESTABLISHED TCP connections (IPv4 and IPv6) whose remote port is ``port``."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01":
                total += 1
    return total


def wait_until(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def in_flight(daemon: Daemon) -> float:
    text = daemon.request("GET", "/metrics").body.decode()
    line = next(x for x in text.splitlines() if x.startswith("cliproxyd_http_requests_in_flight "))
    return float(line.split()[1])


def assert_serving(daemon: Daemon) -> None:
    path, body = client_request("openai_chat", "cf-openai", False)
    resp = daemon.request("POST", path, headers=AUTH, json_body=body)
    assert resp.status == 200 and "Hello from" in resp.json()["choices"][0]["message"]["content"]
    assert daemon.alive() and "Traceback" not in daemon.logs


def raw_request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_until_closed(sock: socket.socket, timeout: float = WAIT) -> tuple[bytes, bool]:
    """Everything the daemon sends until it closes (True) or ``timeout`` passes (False)."""
    sock.settimeout(0.5)
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


# -- disconnect mid-stream ---------------------------------------------------------------------


@pytest.mark.parametrize("model,fake_kind", [("cf-claude", "claude"), ("cf-openai", "openai")])
def test_disconnect_mid_stream_cancels_upstream_and_leaks_nothing(client_daemon, fakes, model,
                                                                  fake_kind):
    fake = fakes[fake_kind]
    fake.set_mode("stall", key=f"fk-client-{fake_kind}")
    before = fake.disconnects
    streams = 20
    socks = []
    try:
        for i in range(streams):
            path, body = client_request("openai_chat", model, True)
            sock = socket.create_connection(("127.0.0.1", client_daemon.port), timeout=WAIT)
            sock.sendall(raw_request("POST", path, json.dumps(body).encode(),
                                     dict(AUTH, **{"Content-Length": str(len(json.dumps(body)))})))
            seen = b""
            while b"data: " not in seen:  # the stream is flowing (headers and a first event)
                chunk = sock.recv(65536)
                assert chunk, seen
                seen += chunk
            assert seen.startswith(b"HTTP/1.1 200")
            socks.append(sock)
        assert established_to(fake.port) >= streams  # every stream holds an upstream connection
    finally:
        for i, sock in enumerate(socks):
            if i % 2:  # half of them reset (SO_LINGER 0), half closed politely
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        fake.set_mode("ok", key=f"fk-client-{fake_kind}")
    assert fake.wait_disconnects(before + streams, timeout=WAIT), fake.disconnects - before
    assert wait_until(lambda: established_to(fake.port) == 0), established_to(fake.port)
    # Only the scrape itself is in flight once every stream is cleaned up.
    assert wait_until(lambda: in_flight(client_daemon) == 1.0)
    assert_serving(client_daemon)


# -- slow clients ------------------------------------------------------------------------------


def test_slowloris_headers_are_cut_by_the_idle_timeout(client_daemon):
    socks = []
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", client_daemon.port), timeout=WAIT)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(sock)
    assert_serving(client_daemon)  # the service stays available meanwhile
    lone = socks[0]
    deadline = time.monotonic() + WAIT
    closed = False
    try:
        while time.monotonic() < deadline and not closed:
            lone.sendall(b"X-Drip: 1\r\n")  # one header line at a time, never the blank line
            time.sleep(0.2)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        closed = read_until_closed(lone, 1.0)[1]
    assert closed, "a client that never finishes its headers must be disconnected"
    for sock in socks[1:]:
        assert read_until_closed(sock)[1]
        sock.close()
    lone.close()
    assert_serving(client_daemon)


def test_slow_body_is_cut_by_the_body_timeout(client_daemon):
    path, body = client_request("claude", "cf-claude", False)
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", client_daemon.port), timeout=WAIT)
    sock.sendall(raw_request("POST", path, b"", dict(AUTH, **{"Content-Length": str(len(data))})))
    closed, deadline = False, time.monotonic() + WAIT
    try:
        for byte in data[:-1]:  # a byte at a time, never the last one
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
            if time.monotonic() > deadline:
                break
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    reply, done = read_until_closed(sock, 2.0)
    sock.close()
    assert closed or done
    assert b"200 OK" not in reply
    assert_serving(client_daemon)


# -- hostile bodies and headers ----------------------------------------------------------------


def _error_shape(client: str, resp) -> dict:
    body = resp.json()
    if client == "claude":
        assert body["type"] == "error"
    elif client == "gemini":
        assert body["error"]["code"] == resp.status
    return body["error"]


@pytest.mark.parametrize("client", CLIENTS)
def test_oversized_body_is_413_in_the_clients_format_and_not_forwarded(client_daemon, fakes,
                                                                       client):
    fake = fakes["claude"]
    sent = len(fake.requests)
    path, body = client_request(client, "cf-claude", False)
    body["padding"] = "x" * (BODY_LIMIT + 1)
    resp = client_daemon.request("POST", path, headers=AUTH, json_body=body)
    assert resp.status == 413
    assert "max-body-size" in _error_shape(client, resp)["message"]
    assert len(fake.requests) == sent
    assert_serving(client_daemon)


def test_oversized_chunked_body_is_refused_without_reaching_upstream(client_daemon, fakes):
    fake = fakes["claude"]
    sent = len(fake.requests)
    chunk = b"x" * 16384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(BODY_LIMIT // 16384 + 2))
    sock = socket.create_connection(("127.0.0.1", client_daemon.port), timeout=WAIT)
    try:
        sock.sendall(raw_request("POST", "/v1/messages", b"",
                                 dict(AUTH, **{"Transfer-Encoding": "chunked"})))
        try:
            sock.sendall(body + b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply, _ = read_until_closed(sock, 5.0)
    finally:
        sock.close()
    status = reply.split(b"\r\n", 1)[0]
    assert reply == b"" or b" 413 " in status or b" 400 " in status, status
    assert len(fake.requests) == sent
    assert_serving(client_daemon)


def test_64_kib_of_headers_closes_or_refuses_and_the_next_request_works(client_daemon):
    sock = socket.create_connection(("127.0.0.1", client_daemon.port), timeout=WAIT)
    try:
        sock.sendall(raw_request("GET", "/v1/models", b"",
                                 dict(AUTH, **{"X-Big": "a" * (64 * 1024)})))
        reply, closed = read_until_closed(sock)
    except (BrokenPipeError, ConnectionResetError):
        reply, closed = b"", True
    finally:
        sock.close()
    assert closed
    assert reply == b"" or reply.split(b" ", 2)[1] in (b"400", b"431"), reply[:100]
    assert_serving(client_daemon)


_HOSTILE_BODIES = [
    (b'{"model": "cf-claude", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "UTF-8"),
    (b"\xef\xbb\xbf" + b'{"model": "cf-claude"}', "JSON"),  # a UTF-8 BOM is not JSON
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),  # under max-body-size
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    (b'{"model": "cf-claude", "temperature": NaN}', "not valid JSON"),
    (b'{"model": "cf-claude", "messages": null', "not valid JSON"),
]


@pytest.mark.parametrize("client", CLIENTS)
def test_hostile_json_is_400_in_the_clients_format_and_not_forwarded(client_daemon, fakes,
                                                                      client):
    fake = fakes["claude"]
    sent = len(fake.requests)
    path, _ = client_request(client, "cf-claude", False)
    for raw, fragment in _HOSTILE_BODIES:
        resp = client_daemon.request("POST", path, headers=AUTH, body=raw)
        assert resp.status == 400, (raw[:40], resp.body[:200])
        assert fragment in _error_shape(client, resp)["message"], (raw[:40], resp.body[:200])
    assert len(fake.requests) == sent
    assert_serving(client_daemon)


# -- a client that reads slowly ----------------------------------------------------------------


class _FirehoseUpstream:
    """An OpenAI-compatible upstream on 127.0.0.1 that streams ``pieces`` chat chunks of
    ``size`` characters as fast as its socket takes them, counting the bytes the kernel took."""

    def __init__(self, pieces: int, size: int) -> None:
        self.pieces, self.size = pieces, size
        self.sent = 0
        self.finished = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def piece(self, i: int) -> str:
        return chr(ord("a") + i % 26) * self.size

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(self.pieces + 1):
                delta = {"content": self.piece(i)} if i < self.pieces else {}
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
                         "model": "up-model", "choices": [{"index": 0, "delta": delta,
                         "finish_reason": None if i < self.pieces else "stop"}]}
                event = b"data: " + json.dumps(chunk).encode() + b"\n\n"
                if i == self.pieces:
                    event += b"data: [DONE]\n\n"
                frame = b"%x\r\n%s\r\n" % (len(event), event)
                conn.sendall(frame)
                self.sent += len(frame)
            conn.sendall(b"0\r\n\r\n")
            self.finished.set()


def test_a_slow_reader_holds_the_upstream_back_and_gets_every_byte(tmp_path):
    pieces, size = 2048, 16 * 1024  # 32 MiB of text: more than every socket buffer on the way
    upstream = _FirehoseUpstream(pieces, size)
    config = {
        "api-keys": [CLIENT_KEY], "request-retry": 0, "streaming": {"keepalive-seconds": 0},
        "timeouts": dict(TIMEOUTS, **{"first-byte": 60, "idle": 60}),
        "openai-compatibility": [{
            "name": "fh", "base-url": f"http://127.0.0.1:{upstream.port}/v1",
            "api-key-entries": [{"api-key": "fk-firehose"}],
            "models": [{"name": "up-model", "alias": "firehose"}]}],
    }
    daemon = Daemon(tmp_path, config).start()
    try:
        path, body = client_request("openai_chat", "firehose", True)
        raw = json.dumps(body).encode()
        sock = socket.socket()
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", daemon.port))
        sock.sendall(raw_request("POST", path, raw, dict(AUTH, **{"Content-Length": str(len(raw))})))
        # The client reads nothing: the daemon must stop reading its upstream rather than
        # buffer the stream in memory, so the upstream is held back well short of the end.
        wait_until(lambda: False, timeout=2.0)
        held_at = upstream.sent
        assert not upstream.finished.is_set() and held_at < pieces * size // 2, held_at
        wait_until(lambda: False, timeout=0.5)
        assert upstream.sent - held_at < 2 * 1024 * 1024  # and stays held back
        data, closed = b"", False
        sock.settimeout(0.5)
        deadline = time.monotonic() + 60
        while not data.endswith(b"0\r\n\r\n") and time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                closed = True
                break
            data += chunk
        sock.close()
        assert not closed and upstream.finished.wait(WAIT)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
        events = [e for e in _dechunk(rest).split(b"\n\n") if e.startswith(b"data: ")]
        assert events[-1] == b"data: [DONE]"
        text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "")
                       for e in events[:-1] if json.loads(e[6:])["choices"])
        assert text == "".join(upstream.piece(i) for i in range(pieces))
        assert_serving_with(daemon)
    finally:
        daemon.stop()


def _dechunk(data: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body."""
    out, pos = [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def assert_serving_with(daemon: Daemon) -> None:
    assert daemon.alive() and "Traceback" not in daemon.logs
    assert daemon.request("GET", "/v1/models", headers=AUTH).status == 200
