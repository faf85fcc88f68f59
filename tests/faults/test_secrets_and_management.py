"""Secrets and hostile management input (issue 8; reliability catalogue S1, U8, M2).

A canary string is placed in every key and token field of the config (client api-keys, the
management secret, every provider's api-key, provider headers, a proxy-url password) with
debug logging on.  After traffic that touches each of them — successes, streams, wrong keys,
an upstream that echoes the key it received in its 401 body, an unreachable proxy, a reload
that rotates keys — the canary appears in no log line and no response (authenticated
management reads of the config excepted: returning the config is their job).

Management: secrets of odd shapes and path tricks never get in, and a client API key never
opens management.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web
from conftest import client_request
from harness import Response

CANARY = "CANARY7f3a9c1e"
CLIENT = f"ck-{CANARY}-client"
SECRET = f"mk-{CANARY}-mgmt"


class _EchoKey(tornado.web.RequestHandler):
    """A Claude-style upstream that answers 401 echoing the credentials it received (U8)."""

    def post(self) -> None:
        self.set_status(401)
        self.set_header("Content-Type", "application/json")
        self.set_header("X-Echo-Key", self.request.headers.get("x-api-key", ""))
        seen = {k: v for k, v in self.request.headers.get_all()}
        self.finish(json.dumps({"type": "error", "error": {
            "type": "authentication_error",
            "message": f"invalid x-api-key {seen.get('X-Api-Key')} (headers: {seen})"}}))


@pytest.fixture(scope="module")
def echo_upstream():
    ready, box = threading.Event(), {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        box["port"], box["loop"] = sockets[0].getsockname()[1], loop

        async def serve() -> None:
            server = tornado.httpserver.HTTPServer(
                tornado.web.Application([(r"/v1/messages", _EchoKey)]))
            server.add_sockets(sockets)

        loop.run_until_complete(serve())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{box['port']}"
    box["loop"].call_soon_threadsafe(box["loop"].stop)


def canary_config(fakes, echo_url: str, claude_key: str = f"pk-{CANARY}-claude") -> dict:
    header = {"X-Extra-Token": f"hv-{CANARY}-header"}
    return {
        "debug": True, "api-keys": [CLIENT], "request-retry": 0,
        "remote-management": {"secret-key": SECRET},
        "timeouts": {"connect": 2, "first-byte": 2, "idle": 2},
        "claude-api-key": [
            {"api-key": claude_key, "base-url": fakes["claude"].base_url, "headers": header,
             "models": [{"name": "claude-sonnet-4-5", "alias": "s-claude"}]},
            {"api-key": f"pk-{CANARY}-echo", "base-url": echo_url, "headers": header,
             "models": [{"name": "claude-sonnet-4-5", "alias": "s-echo"}]},
            {"api-key": f"pk-{CANARY}-proxied", "base-url": fakes["claude"].base_url,
             "proxy-url": f"http://user:px-{CANARY}@127.0.0.1:1",
             "models": [{"name": "claude-sonnet-4-5", "alias": "s-proxied"}]},
        ],
        "gemini-api-key": [{"api-key": f"pk-{CANARY}-gemini", "base-url": fakes["gemini"].base_url,
                            "models": [{"name": "gemini-2.5-flash", "alias": "s-gemini"}]}],
        "codex-api-key": [{"api-key": f"pk-{CANARY}-codex",
                           "base-url": fakes["responses"].base_url + "/v1",
                           "models": [{"name": "gpt-5", "alias": "s-codex"}]}],
        "openai-compatibility": [{
            "name": "s", "base-url": fakes["openai"].base_url + "/v1", "headers": header,
            "api-key-entries": [{"api-key": f"pk-{CANARY}-compat"}],
            "models": [{"name": "up-model", "alias": "s-compat"}]}],
    }


def _seen(resp: Response) -> str:
    return resp.body.decode("utf-8", "replace") + "\n" + str(resp.headers)


def test_canary_secrets_never_reach_logs_or_responses(daemon, fakes, echo_upstream):
    for fake in fakes.values():
        fake.set_mode("ok")
    d = daemon(canary_config(fakes, echo_upstream))
    auth = {"Authorization": f"Bearer {CLIENT}", "Content-Type": "application/json"}
    seen: list[str] = []
    models = ("s-claude", "s-gemini", "s-codex", "s-compat")
    for client, model in zip(("openai_chat", "openai_responses", "claude", "gemini"), models):
        for stream in (False, True):
            path, body = client_request(client, model, stream)
            resp = d.request("POST", path, headers=auth, json_body=body)
            assert resp.status == 200, resp.body[:300]
            seen.append(_seen(resp))
    # The Gemini SDK's way: the client key in ?key= (the access log must not keep the query).
    path, body = client_request("gemini", "s-gemini", False)
    resp = d.request("POST", f"{path}?key={CLIENT}", json_body=body)
    assert resp.status == 200
    seen.append(_seen(resp))
    # An upstream echoing the key it got, and an unreachable proxy whose URL holds a password.
    for model, status in (("s-echo", 401), ("s-proxied", 502)):
        path, body = client_request("claude", model, False)
        resp = d.request("POST", path, headers=auth, json_body=body)
        assert resp.status == status, resp.body[:300]
        seen.append(_seen(resp))
    # Wrong keys that contain the canary, on proxy and management routes.
    wrong = f"ck-{CANARY}-wrong"
    for headers in ({"Authorization": f"Bearer {wrong}"}, {"x-api-key": wrong},
                    {"x-goog-api-key": wrong}):
        resp = d.request("GET", "/v1/models", headers=headers)
        assert resp.status == 401
        seen.append(_seen(resp))
    for headers in ({"Authorization": f"Bearer {SECRET}x"}, {"X-Management-Key": wrong}):
        resp = d.request("GET", "/v0/management/config", headers=headers)
        assert resp.status == 401
        seen.append(_seen(resp))
    ok = d.request("GET", "/v0/management/config", headers={"X-Management-Key": SECRET})
    assert ok.status == 200 and SECRET not in ok.body.decode()
    for path in ("/v1/models", "/metrics", "/healthz"):
        seen.append(_seen(d.request("GET", path, headers=auth)))
    # A reload that rotates a key logs a diff: redacted.
    d.reload(canary_config(fakes, echo_upstream, claude_key=f"pk-{CANARY}-rotated"))
    assert d.request("POST", "/v1/messages", headers=auth,
                     json_body=client_request("claude", "s-claude", False)[1]).status == 200
    d.stop()
    logs = d.logs
    assert "DEBUG" in logs  # debug logging really was on
    leaks = [line for line in logs.splitlines() if CANARY in line]
    assert not leaks, "\n".join(leaks[:10])
    for text in seen:
        assert CANARY not in text, text[:500]


# -- hostile management input -----------------------------------------------------------------


@pytest.fixture
def managed(daemon):
    return daemon({"api-keys": [CLIENT], "remote-management": {"secret-key": SECRET}})


INVALID = {"error": {"message": "invalid password", "type": "authentication_error"}}


def test_odd_secrets_are_refused_and_do_not_break_the_check(managed):
    odd = [
        {"Authorization": "Bearer " + "a" * 16000},             # a huge secret
        {"Authorization": f"Bearer {SECRET}x"},                 # the secret plus one byte
        {"Authorization": f"Bearer {SECRET[:-4]}"},             # the secret truncated
        {"X-Management-Key": SECRET[:-1] + "\u00e9"},           # non-ASCII (latin-1 on the wire)
    ]
    for headers in odd:
        resp = managed.request("GET", "/v0/management/config", headers=headers)
        assert resp.status == 401 and resp.json() == INVALID, (headers, resp.body[:200])
    # Four failures: not yet locked out; the right secret still works.
    resp = managed.request("GET", "/v0/management/config", headers={"X-Management-Key": SECRET})
    assert resp.status == 200


def test_a_client_key_never_opens_management(managed):
    for headers in ({"Authorization": f"Bearer {CLIENT}"}, {"X-Management-Key": CLIENT},
                    {"x-api-key": CLIENT}):
        for method, body in (("GET", None), ("PUT", b"api-keys: [x]\n")):
            resp = managed.request(method, "/v0/management/config.yaml", headers=headers,
                                   body=body)
            assert resp.status in (401, 403), (headers, method, resp.status)
    assert managed.request("GET", "/v1/models",
                           headers={"Authorization": f"Bearer {CLIENT}"}).status == 200


@pytest.mark.parametrize("path", [
    "/v0/management/../management/config",
    "//v0/management/config",
    "/v0/management/config/",
    "/v0/management/%63onfig",
    "/v0/Management/config",
    "/v1/../v0/management/config",
])
def test_path_tricks_never_reach_management_without_the_secret(daemon, path):
    d = daemon({"api-keys": [CLIENT], "remote-management": {"secret-key": SECRET}})
    resp = d.request("GET", path, headers={"Authorization": f"Bearer {CLIENT}"})
    assert resp.status in (301, 400, 401, 403, 404), (path, resp.status)
    assert b"api-keys" not in resp.body and CLIENT.encode() not in resp.body


def test_hostile_config_uploads_change_nothing(managed):
    key = {"X-Management-Key": SECRET}
    before = managed.request("GET", "/v0/management/config.yaml", headers=key).body
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    for body in (laughs, "port: !!python/object/apply:os.system ['true']\n",
                 "api-keys: [unclosed\n", "- a list\n- at the top\n", "\xff\xfe"):
        resp = managed.request("PUT", "/v0/management/config.yaml", headers=key,
                               body=body.encode("utf-8", "surrogateescape"))
        assert 400 <= resp.status < 500, (body[:40], resp.status, resp.body[:200])
    assert managed.request("GET", "/v0/management/config.yaml", headers=key).body == before
    assert managed.request("GET", "/v1/models",
                           headers={"Authorization": f"Bearer {CLIENT}"}).status == 200
    assert "Traceback" not in managed.logs
