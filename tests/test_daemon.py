"""End-to-end lifecycle tests of cliproxyd/daemon.py: sd_notify, SIGHUP reload, drain on SIGTERM,
re-binding, body limits and start-up failures, against the real daemon in a subprocess."""

from __future__ import annotations

import http.client
import re
import socket
import time

import pytest
from harness import count, free_port

KEY = "sk-test-old-0123456789"
NEW_KEY = "sk-test-new-9876543210"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _fields(message: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in message.split("\n") if "=" in line)


def test_ready_reloading_stopping_in_order(daemon):
    d = daemon({"api-keys": [KEY]})
    first = _fields(d.notifications[0])
    assert first["READY"] == "1"
    assert "serving http on 127.0.0.1:" in first["STATUS"]

    ready_msg = d.reload()
    assert "serving" in _fields(ready_msg)["STATUS"]
    reloading = [m for m in d.notifications if "RELOADING=1" in m.split("\n")]
    assert len(reloading) == 1
    assert int(_fields(reloading[0])["MONOTONIC_USEC"]) > 0

    assert d.stop() == 0
    kinds = [k for m in d.notifications for k in ("READY=1", "RELOADING=1", "STOPPING=1") if k in m.split("\n")]
    assert kinds == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_sighup_swaps_api_keys_in_the_same_process(daemon):
    d = daemon({"api-keys": [KEY]})
    pid = d.pid
    assert d.request("GET", "/v1/nothing-here", headers=_auth(KEY)).status == 404
    assert d.request("GET", "/v1/nothing-here", headers=_auth(NEW_KEY)).status == 401

    d.reload({"api-keys": [NEW_KEY]})

    assert d.pid == pid and d.alive()
    assert d.request("GET", "/v1/nothing-here", headers=_auth(KEY)).status == 401
    assert d.request("GET", "/v1/nothing-here", headers=_auth(NEW_KEY)).status == 404
    assert "configuration reloaded" in d.logs


@pytest.mark.parametrize(
    "bad_text, expected",
    [
        ("api-keys: [unclosed\n", "config.yaml:"),
        ("port: not-a-number\napi-keys: [x]\n", "port"),
    ],
)
def test_bad_file_on_sighup_keeps_serving_old_config(daemon, bad_text, expected):
    d = daemon({"api-keys": [KEY]})
    status = _fields(d.reload(bad_text))["STATUS"]
    assert status.startswith("reload failed: ")
    assert d.alive()
    assert d.request("GET", "/v1/x", headers=_auth(KEY)).status == 404
    assert d.request("GET", "/healthz").status == 200
    errors = [line for line in d.logs.splitlines() if "reload failed" in line]
    assert errors and expected in "\n".join(errors)
    metrics = d.request("GET", "/metrics").body.decode()
    assert 'cliproxyd_config_reloads_total{result="failure"} 1.0' in metrics
    assert 'cliproxyd_config_reloads_total{result="success"} 0.0' in metrics


def test_sigterm_lets_a_slow_in_flight_request_finish(daemon):
    d = daemon({"api-keys": [KEY]})
    body = b'{"model": "m", "messages": []}'
    sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    head = (f"POST /v1/slow-upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body[:10])
    # Wait until the daemon has our headers (it then counts the request in flight, as does the
    # metrics request itself); half the body is still to come when the stop begins.
    _wait_in_flight(d, 2)
    d.proc.send_signal(15)
    assert d.notify.wait_for(lambda m: count(m, "STOPPING=1") == 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", d.port), timeout=5).close()
    assert d.alive()  # still draining our request

    sock.sendall(body[10:])
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 404")
    assert b'"type":"not_found"' in reply
    d.proc.wait(30)
    assert d.proc.returncode == 0


def _wait_in_flight(d, n: int) -> None:
    for _ in range(600):
        metrics = d.request("GET", "/metrics").body.decode()
        found = re.search(r"^cliproxyd_http_requests_in_flight (\S+)$", metrics, re.MULTILINE)
        if found and float(found.group(1)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the daemon never saw the slow request")


def test_watchdog_pings_when_systemd_asks(daemon):
    d = daemon({}, env={"WATCHDOG_USEC": "200000"})
    assert d.notify.wait_for(lambda m: count(m, "WATCHDOG=1") >= 2)


def test_watchdog_silent_without_watchdog_usec(daemon):
    d = daemon({})
    d.reload()
    assert count(d.notifications, "WATCHDOG=1") == 0


def test_port_change_rebinds_without_dropping_accepted_connections(daemon):
    d = daemon({})
    old_port = d.port
    conn = d.connection()
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b'{"status":"ok"}'

    new_port = free_port()
    d.reload({"port": new_port})

    conn.request("GET", "/healthz")  # same keep-alive connection, accepted before the reload
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b'{"status":"ok"}'
    conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old_port), timeout=5).close()
    d.port = new_port
    assert d.request("GET", "/healthz").status == 200


def test_port_change_to_a_busy_port_keeps_the_old_socket(daemon):
    d = daemon({"api-keys": [KEY]})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        status = _fields(d.reload({"port": taken, "api-keys": [NEW_KEY]}))["STATUS"]
        assert f"127.0.0.1:{d.port}" in status
        assert d.request("GET", "/v1/x", headers=_auth(NEW_KEY)).status == 404  # rest applied
    assert re.search(rf"keeping 127\.0\.0\.1:{d.port}: cannot listen on 127\.0\.0\.1:{taken}", d.logs)


def test_body_over_max_body_size_gets_a_readable_413_in_the_client_format(daemon):
    d = daemon({"api-keys": [KEY], "max-body-size": 1000})
    big = b"x" * 5000
    resp = d.request("POST", "/v1/chat/completions-nope", headers=_auth(KEY), body=big)
    assert resp.status == 413
    assert resp.json()["error"]["type"] == "invalid_request_error"
    resp = d.request("POST", "/v1/messages", headers={"x-api-key": KEY}, body=big)
    assert resp.status == 413
    assert resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "request_too_large"
    # Auth still comes first: no key, no 413.
    assert d.request("POST", "/v1/messages", body=big).status == 401
    # At the limit is fine (the route does not exist: 404, not 413).
    assert d.request("POST", "/v1/x", headers=_auth(KEY), body=b"y" * 1000).status == 404


def test_chunked_body_over_the_limit_gets_413(daemon):
    d = daemon({"max-body-size": 1000})
    conn = d.connection()
    conn.putrequest("POST", "/v1/x")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for _ in range(5):
        conn.send(b"3e8\r\n" + b"z" * 1000 + b"\r\n")
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()


def test_port_in_use_is_exit_1_with_a_clear_message(daemon):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = daemon({"port": port}, start=False)
        d.spawn()
        assert d.proc.wait(30) == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in d.logs
    assert "Traceback" not in d.logs
    assert count(d.notifications, "READY=1") == 0


def test_bad_config_at_start_is_exit_78_with_every_problem(daemon):
    d = daemon("port: 99999999\nrouting:\n  strategy: sideways\nno-such-key: 1\n", start=False)
    d.spawn()
    assert d.proc.wait(30) == 78
    logs = d.logs
    assert "config.yaml:1: port" in logs
    assert "config.yaml:3: routing.strategy" in logs
    assert "config.yaml:4: no-such-key" in logs
    assert "Traceback" not in logs


def test_sigint_stops_like_sigterm(daemon):
    d = daemon({})
    d.proc.send_signal(2)
    assert d.proc.wait(30) == 0
    assert count(d.notifications, "STOPPING=1") == 1


def test_headers_up_to_64_kib_are_accepted_and_larger_refused(daemon):
    d = daemon({})
    assert d.request("GET", "/healthz", headers={"X-Pad": "a" * 60_000}).status == 200
    try:
        status = d.request("GET", "/healthz", headers={"X-Pad": "a" * 70_000}).status
    except (ConnectionError, http.client.HTTPException):
        status = None  # the server may close the connection instead of answering
    assert status != 200
    assert d.request("GET", "/healthz").status == 200
    assert "Traceback" not in d.logs


def test_ipv6_loopback_listener(daemon):
    d = daemon({"remote-management": {"secret-key": "s"}}, host="::1")
    assert d.url.startswith("http://[::1]:")
    assert d.request("GET", "/healthz").status == 200
    # ::1 is loopback for the management rule.
    assert d.request("GET", "/v0/management/config", headers={"Authorization": "Bearer s"}).status == 200


def test_host_change_on_the_same_port_rebinds(daemon):
    d = daemon({})
    conn = d.connection()
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b'{"status":"ok"}'
    status = _fields(d.reload({"host": ""}))["STATUS"]
    assert status == f"serving http on *:{d.port}"
    assert d.request("GET", "/healthz").status == 200  # 127.0.0.1 is one of all interfaces
    conn.request("GET", "/healthz")  # the connection accepted before the reload survives
    assert conn.getresponse().status == 200
    conn.close()
    assert f"now listening on *:{d.port}" in d.logs


def _raw_response_head(port: int, head: bytes) -> bytes:
    """Send request headers only and read until the response headers and body start."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        reply = b""
        while b"}" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def test_declared_huge_body_gets_413_before_the_body_is_sent(daemon):
    d = daemon({"api-keys": [KEY], "max-body-size": 1000})
    huge = 50 * 1024 * 1024  # far above the server's own hard limit too
    for expect in ("Expect: 100-continue\r\n", ""):
        reply = _raw_response_head(d.port, (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\n{expect}Content-Length: {huge}\r\n\r\n").encode())
        assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
        assert b"100 Continue" not in reply
        assert b'"invalid_request_error"' in reply
    # Without a key the answer is still 401, not 413.
    reply = _raw_response_head(d.port, (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {huge}\r\n\r\n").encode())
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert d.alive() and d.request("GET", "/healthz").status == 200


def test_an_unreachable_notify_socket_is_logged_and_the_daemon_serves(daemon, tmp_path):
    """sdnotify would swallow the failure; systemd would then kill the service at its start
    timeout with nothing in the journal saying why."""
    d = daemon({"api-keys": [KEY]}, env={"NOTIFY_SOCKET": str(tmp_path / "gone" / "notify")},
               start=False)
    d.spawn()
    deadline = time.monotonic() + 30
    while "serving http on" not in d.logs and d.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.request("GET", "/v1/models", headers=_auth(KEY)).status == 200
    assert "cannot reach the systemd notify socket" in d.logs
    assert "Traceback" not in d.logs


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(daemon):
    """Every client connection and upstream transfer holds a descriptor; a soft default of a
    few hundred would cap a busy daemon far below what the host allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))  # the daemon inherits it
    try:
        d = daemon({"api-keys": [KEY]})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = open(f"/proc/{d.pid}/limits").read()
    row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert row.split()[3:5] == [expected, expected]


def test_the_daemon_runs_on_uvloop_by_default(daemon):
    import uvloop

    d = daemon({"api-keys": [KEY]})
    assert f"event loop: uvloop {uvloop.__version__}" in d.logs
    d.reload({"api-keys": [NEW_KEY]})  # signal handlers and the reload task on uvloop
    assert d.request("GET", "/v1/models", headers=_auth(NEW_KEY)).status == 200


def test_cliproxyd_event_loop_asyncio_runs_the_standard_loop(daemon):
    d = daemon({"api-keys": [KEY]}, env={"CLIPROXYD_EVENT_LOOP": "asyncio"})
    assert "event loop: asyncio" in d.logs and "uvloop" not in d.logs
    d.reload({"api-keys": [NEW_KEY]})
    assert d.request("GET", "/v1/models", headers=_auth(NEW_KEY)).status == 200
    assert d.stop() == 0
