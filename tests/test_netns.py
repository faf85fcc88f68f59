"""The management localhost rule seen from a real non-loopback peer (issue 2 point 5).

The test creates its own network namespace joined to the host by a veth pair (10.231.x.0/30,
addresses that exist only inside this test), runs the daemon on all interfaces and sends
requests from inside the namespace.  The rule must follow the socket peer address only:
``X-Forwarded-For: 127.0.0.1`` / ``X-Real-IP`` from the remote peer change nothing.
Needs root and iproute2 (as the CI machine has); cleans up after itself.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

SECRET = "netns-management-secret"

_CLIENT = r"""
import http.client, json, sys
host, port, method, path, headers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
conn = http.client.HTTPConnection(host, port, timeout=30)
conn.request(method, path, headers=headers)
resp = conn.getresponse()
print(json.dumps({"status": resp.status, "headers": dict(resp.getheaders()), "body": resp.read().decode()}))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Namespace:
    """A network namespace with a veth link to the host: host side .1, namespace side .2."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"cpd-{tag}"
        self.host_if, self.ns_if = f"cpdh{tag}", f"cpdn{tag}"
        octet = int(tag[:2], 16) % 250 + 1
        self.host_addr, self.peer_addr = f"10.231.{octet}.1", f"10.231.{octet}.2"

    def create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        for args in (("addr", "add", f"{self.peer_addr}/30", "dev", self.ns_if),
                     ("link", "set", self.ns_if, "up"), ("link", "set", "lo", "up")):
            _ip("netns", "exec", self.name, "ip", *args)

    def destroy(self) -> None:
        # Either may already be gone (deleting the namespace removes the veth pair).
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)

    def request(self, port: int, method: str, path: str, headers: dict[str, str] | None = None) -> dict:
        """One HTTP request from inside the namespace to the host side of the veth pair."""
        out = subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", _CLIENT, self.host_addr,
             str(port), method, path, json.dumps(headers or {})],
            check=True, capture_output=True, text=True, timeout=60,
        )
        return json.loads(out.stdout)


@pytest.fixture(scope="module")
def netns():
    assert os.geteuid() == 0, "the netns tests need root (the CI runs as root)"
    ns = Namespace()
    try:
        ns.create()
        yield ns
    finally:
        ns.destroy()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_remote_peer_refused_even_with_the_right_secret(daemon, netns):
    d = daemon({"remote-management": {"secret-key": SECRET}}, host="")
    resp = netns.request(d.port, "GET", "/v0/management/config", _bearer(SECRET))
    assert resp["status"] == 403
    error = json.loads(resp["body"])["error"]
    assert error["type"] == "permission_error" and error["message"]
    # The same request over loopback passes: only the peer differs.
    assert d.request("GET", "/v0/management/config", headers=_bearer(SECRET)).status == 200


@pytest.mark.parametrize("spoof", [
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Real-IP": "127.0.0.1"},
    {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "::1", "Forwarded": "for=127.0.0.1"},
])
def test_forwarded_headers_from_a_remote_peer_are_ignored(daemon, netns, spoof):
    d = daemon({"remote-management": {"secret-key": SECRET}}, host="")
    resp = netns.request(d.port, "GET", "/v0/management/config", {**_bearer(SECRET), **spoof})
    assert resp["status"] == 403


def test_remote_refusals_are_not_failures_and_no_secret_is_still_404(daemon, netns):
    d = daemon({"remote-management": {"secret-key": SECRET}}, host="")
    for _ in range(7):
        assert netns.request(d.port, "GET", "/v0/management/config", _bearer("x"))["status"] == 403
    d.reload({"remote-management": {"secret-key": SECRET, "allow-remote": True}})
    assert netns.request(d.port, "GET", "/v0/management/config", _bearer(SECRET))["status"] == 200
    d.reload({})
    resp = netns.request(d.port, "GET", "/v0/management/config", _bearer(SECRET))
    assert resp["status"] == 404
    assert json.loads(resp["body"]) == {"error": {"message": "Not Found", "type": "not_found"}}


def test_allow_remote_and_a_per_address_lockout(daemon, netns):
    d = daemon({"remote-management": {"secret-key": SECRET, "allow-remote": True}}, host="")
    assert netns.request(d.port, "GET", "/v0/management/config", _bearer(SECRET))["status"] == 200
    for _ in range(5):
        assert netns.request(d.port, "GET", "/v0/management/config", _bearer("bad"))["status"] == 401
    locked = netns.request(d.port, "GET", "/v0/management/config", _bearer(SECRET))
    assert locked["status"] == 403 and int(locked["headers"]["Retry-After"]) > 0
    # Loopback is another address: not locked.
    assert d.request("GET", "/v0/management/config", headers=_bearer(SECRET)).status == 200


def test_client_keys_work_from_remote_peers(daemon, netns):
    d = daemon({"api-keys": ["client-key"], "remote-management": {"secret-key": SECRET}}, host="")
    assert netns.request(d.port, "GET", "/v1/xyz", _bearer("client-key"))["status"] == 404
    assert netns.request(d.port, "GET", "/v1/xyz", _bearer("wrong"))["status"] == 401
