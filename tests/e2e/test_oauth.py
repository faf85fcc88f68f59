"""End to end: OAuth subscription logins (issue 7) against a fake provider and fake upstreams.

The real daemon runs with ``oauth.claude`` / ``oauth.codex`` pointing at `fakes.oauth.FakeOAuth`
and the API base at `fakes.upstreams`; a "browser" is `requests` following redirects.
"""

from __future__ import annotations

import json
import os
import stat
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from harness import free_port

from tests.fakes.oauth import FakeOAuth
from tests.fakes.upstreams import start_fake

SECRET = "management-secret-oauth-1"
MGMT = {"Authorization": f"Bearer {SECRET}"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
WAIT = 30.0


@pytest.fixture
def claude_up():
    fake = start_fake("claude")
    yield fake
    fake.stop()


@pytest.fixture
def codex_up():
    fake = start_fake("responses")
    yield fake
    fake.stop()


@pytest.fixture
def providers():
    made = {kind: FakeOAuth(kind) for kind in ("claude", "codex")}
    yield made
    for fake in made.values():
        fake.stop()


def config_for(providers, claude_up, codex_up, **extra):
    return {
        "remote-management": {"secret-key": SECRET},
        "oauth": {
            "claude": providers["claude"].config(claude_up.base_url, free_port()),
            "codex": providers["codex"].config(codex_up.base_url + "/backend-api/codex",
                                               free_port()),
        },
        **extra,
    }


def auth_url(d, session: str, webui: bool = False) -> dict:
    path = f"/v0/management/{session}-auth-url" + ("?is_webui=1" if webui else "")
    resp = d.request("GET", path, headers=MGMT)
    assert resp.status == 200, resp.body
    return resp.json()


def status(d, state: str):
    return d.request("GET", f"/v0/management/get-auth-status?state={state}", headers=MGMT)


def wait_until(predicate, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def chat(d, model: str):
    return d.request("POST", "/v1/chat/completions", json_body={"model": model, **CHAT})


# -- the whole flow --------------------------------------------------------------------------


def test_claude_login_through_the_redirect_port_then_proxy_with_the_token(
        daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    started = auth_url(d, "anthropic", webui=True)
    url = urlsplit(started["url"])
    query = parse_qs(url.query)
    assert started["status"] == "ok" and query["state"] == [started["state"]]
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"][0] and query["code"] == ["true"]
    redirect = urlsplit(query["redirect_uri"][0])
    assert redirect.scheme == "http" and redirect.hostname == "localhost"
    assert redirect.path == "/callback"
    assert status(d, started["state"]).json() == {"status": "wait"}

    # The browser: the provider's consent page redirects to localhost:<redirect-port>/callback,
    # whose forwarder sends it on to the daemon's /anthropic/callback.
    page = requests.get(started["url"], timeout=WAIT)
    assert page.status_code == 200, page.text
    assert "Authentication successful" in page.text
    assert [urlsplit(r.headers["Location"]).path for r in page.history] == \
        ["/callback", "/anthropic/callback"]

    assert status(d, started["state"]).json() == {"status": "ok"}
    (call,) = providers["claude"].token_requests
    assert call.content_type == "application/json"
    assert call.fields["grant_type"] == "authorization_code"
    assert call.fields["redirect_uri"] == query["redirect_uri"][0]
    assert call.fields["client_id"] == query["client_id"][0] and call.fields["code_verifier"]

    path = d.workdir / "auth" / "claude-alice@example.com.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    saved = json.loads(path.read_text())
    token = providers["claude"].access_tokens[-1]
    assert saved["type"] == "claude" and saved["access_token"] == token
    assert saved["email"] == "alice@example.com" and saved["id_token"] == ""
    assert saved["refresh_token"] and saved["expired"] and saved["last_refresh"]

    listed = d.request("GET", "/v1/models").json()
    assert any(m["id"].startswith("claude-") for m in listed["data"])
    resp = chat(d, "claude-sonnet-4-5-20250929")
    assert resp.status == 200, resp.body
    sent = claude_up.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert "oauth-2025-04-20" in sent.headers["anthropic-beta"].split(",")
    assert "x-api-key" not in sent.headers
    # A fresh login is not refreshed at once.
    assert len(providers["claude"].token_requests) == 1
    # Neither the code nor a token reaches the log.
    assert "code=" not in d.logs and token not in d.logs and saved["refresh_token"] not in d.logs
    # The redirect-port forwarder is gone once no login is pending.
    with pytest.raises(requests.ConnectionError):
        requests.get(query["redirect_uri"][0], timeout=WAIT)


def test_webui_flow_reports_a_taken_redirect_port(daemon, providers, claude_up, codex_up):
    import socket

    cfg = config_for(providers, claude_up, codex_up)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg["oauth"]["codex"]["redirect-port"] = busy.getsockname()[1]
        d = daemon(cfg)
        resp = d.request("GET", "/v0/management/codex-auth-url?is_webui=true", headers=MGMT)
    assert resp.status == 500 and resp.json() == {"error": "failed to start callback server"}


def test_codex_login_via_the_main_callback_then_proxy_with_account_id(
        daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    started = auth_url(d, "codex")
    consent = requests.get(started["url"], allow_redirects=False, timeout=WAIT)
    assert consent.status_code == 302
    back = parse_qs(urlsplit(consent.headers["Location"]).query)
    assert back["state"] == [started["state"]]
    page = d.request("GET", f"/codex/callback?code={back['code'][0]}&state={back['state'][0]}")
    assert page.status == 200 and b"Authentication successful" in page.body
    assert status(d, started["state"]).json() == {"status": "ok"}
    (call,) = providers["codex"].token_requests
    assert call.content_type == "application/x-www-form-urlencoded"
    sent_uri = parse_qs(urlsplit(started["url"]).query)["redirect_uri"][0]
    assert call.fields["redirect_uri"] == sent_uri and sent_uri.endswith("/auth/callback")

    saved = json.loads((d.workdir / "auth" / "codex-alice@example.com-plus.json").read_text())
    assert saved["type"] == "codex" and saved["account_id"] == "acct-1234"
    assert saved["email"] == "alice@example.com" and saved["id_token"].count(".") == 2
    for key in ("access_token", "refresh_token", "expired", "last_refresh"):
        assert saved[key], key

    resp = chat(d, "gpt-5")
    assert resp.status == 200, resp.body
    assert resp.json()["choices"][0]["message"]["content"] == "Hello from gpt-5."
    sent = codex_up.requests[-1]
    assert sent.path == "/backend-api/codex/responses"
    assert sent.headers["authorization"] == f"Bearer {providers['codex'].access_tokens[-1]}"
    assert sent.headers["chatgpt-account-id"] == "acct-1234"
    assert sent.body["stream"] is True and sent.body["store"] is False


def test_manual_paste_of_the_redirect_url(daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    started = auth_url(d, "anthropic")
    consent = requests.get(started["url"], allow_redirects=False, timeout=WAIT)
    resp = d.request("POST", "/v0/management/oauth-callback", headers=MGMT, json_body={
        "provider": "claude", "redirect_url": consent.headers["Location"]})
    assert resp.status == 200 and resp.json() == {"status": "ok"}
    assert status(d, started["state"]).json() == {"status": "ok"}
    again = d.request("POST", "/v0/management/oauth-callback", headers=MGMT, json_body={
        "provider": "claude", "redirect_url": consent.headers["Location"]})
    assert again.status == 409 and again.json()["status"] == "error"


@pytest.mark.parametrize("body, code, message", [
    ({"provider": "gemini", "code": "c", "state": "s"}, 400, "unsupported provider"),
    ({"provider": "codex", "code": "c"}, 400, "state is required"),
    ({"provider": "codex", "state": "abc"}, 400, "code or error is required"),
    ({"provider": "codex", "code": "c", "state": "a/b"}, 400, "invalid state"),
    ({"provider": "openai", "code": "c", "state": "abc"}, 404, "unknown or expired state"),
    ({"provider": "codex", "redirect_url": "nonsense"}, 400, "invalid redirect_url"),
    ([], 400, "invalid body"),
])
def test_oauth_callback_post_errors(daemon, providers, claude_up, codex_up, body, code, message):
    d = daemon(config_for(providers, claude_up, codex_up))
    resp = d.request("POST", "/v0/management/oauth-callback", headers=MGMT, json_body=body)
    assert resp.status == code and resp.json() == {"status": "error", "error": message}
    assert providers["codex"].token_requests == []


def test_oauth_callback_post_with_code_and_state(daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    started = auth_url(d, "codex")
    back = parse_qs(urlsplit(requests.get(started["url"], allow_redirects=False,
                                          timeout=WAIT).headers["Location"]).query)
    wrong = d.request("POST", "/v0/management/oauth-callback", headers=MGMT, json_body={
        "provider": "anthropic", "code": back["code"][0], "state": back["state"][0]})
    assert wrong.status == 400 and wrong.json()["error"] == "provider does not match state"
    resp = d.request("POST", "/v0/management/oauth-callback", headers=MGMT, json_body={
        "provider": "openai", "code": back["code"][0], "state": back["state"][0]})
    assert resp.status == 200 and status(d, started["state"]).json() == {"status": "ok"}


# -- bad input -------------------------------------------------------------------------------


def test_forged_or_unknown_state_makes_no_token_request(daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    started = auth_url(d, "anthropic")
    forged = "f" * 32
    page = d.request("GET", f"/anthropic/callback?code=stolen&state={forged}")
    assert page.status == 404 and b"unknown or expired state" in page.body
    assert providers["claude"].token_requests == []
    assert status(d, forged).json() == {"status": "error", "error": "unknown or expired state"}
    assert status(d, started["state"]).json() == {"status": "wait"}
    assert status(d, "../etc").status == 400
    assert status(d, "").status == 400
    wrong = d.request("GET", f"/codex/callback?code=x&state={started['state']}")
    assert wrong.status == 400 and providers["claude"].token_requests == []


def test_provider_error_and_failing_token_endpoint_report_error(
        daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    denied = auth_url(d, "anthropic")
    page = d.request("GET", f"/anthropic/callback?error=access_denied&state={denied['state']}")
    assert page.status == 400
    body = status(d, denied["state"]).json()
    assert body["status"] == "error" and "access_denied" in body["error"]

    providers["claude"].state.mode = "garbage"
    started = auth_url(d, "anthropic", webui=True)
    page = requests.get(started["url"], timeout=WAIT)
    assert page.status_code == 502 and "Authentication failed" in page.text
    body = status(d, started["state"]).json()
    assert body["status"] == "error" and "not a JSON object" in body["error"]
    assert not list((d.workdir / "auth").glob("claude-*.json"))
    assert d.alive()


def test_other_providers_callbacks_answer_not_enabled(daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    for path in ("/google/callback", "/iflow/callback", "/antigravity/callback"):
        page = d.request("GET", path + "?code=x&state=abc")
        assert page.status == 404 and b"not enabled" in page.body


def test_auth_url_needs_the_management_secret(daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    assert d.request("GET", "/v0/management/anthropic-auth-url").status == 401
    assert d.request("GET", "/v0/management/get-auth-status?state=abc").status == 401


# -- refresh ---------------------------------------------------------------------------------


def write_auth(d, name: str, data: dict) -> None:
    folder = d.workdir / "auth"
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def expired_claude(email: str, token: str, refresh: str) -> dict:
    return {"type": "claude", "access_token": token, "refresh_token": refresh, "id_token": "",
            "email": email, "expired": "2020-01-01T00:00:00Z",
            "last_refresh": "2019-12-31T00:00:00Z"}


def test_expired_at_start_is_refreshed_before_use(daemon, providers, claude_up, codex_up):
    providers["claude"].accept_refresh_token("old-refresh")
    d = daemon(config_for(providers, claude_up, codex_up), start=False)
    write_auth(d, "claude-bob@example.com.json",
               expired_claude("bob@example.com", "old-access", "old-refresh"))
    d.start()
    path = d.workdir / "auth" / "claude-bob@example.com.json"
    assert wait_until(lambda: json.loads(path.read_text())["access_token"] != "old-access")
    saved = json.loads(path.read_text())
    assert saved["access_token"] == providers["claude"].access_tokens[-1]
    assert saved["refresh_token"] != "old-refresh" and saved["expired"] != "2020-01-01T00:00:00Z"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (call,) = providers["claude"].token_requests
    assert call.content_type == "application/json"
    assert call.fields == {"client_id": "test-claude-client", "grant_type": "refresh_token",
                           "refresh_token": "old-refresh"}
    assert wait_until(lambda: chat(d, "claude-sonnet-4-5-20250929").status == 200)
    assert all(r.headers["authorization"] != "Bearer old-access" for r in claude_up.requests)
    assert claude_up.requests[-1].headers["authorization"] == f"Bearer {saved['access_token']}"


def test_refresh_failure_marks_the_account_and_skips_it(daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up), start=False)
    write_auth(d, "claude-dead@example.com.json",
               expired_claude("dead@example.com", "dead-access", "revoked-refresh"))
    write_auth(d, "claude-live@example.com.json", {
        "type": "claude", "access_token": "live-access", "refresh_token": "r",
        "email": "live@example.com", "expired": "2999-01-01T00:00:00Z",
        "last_refresh": "2999-01-01T00:00:00Z"})
    d.start()
    assert wait_until(lambda: providers["claude"].token_requests)
    for _ in range(4):
        resp = chat(d, "claude-sonnet-4-5-20250929")
        assert resp.status == 200, resp.body
    assert {r.headers["authorization"] for r in claude_up.requests} == {"Bearer live-access"}

    def metric() -> str:
        text = d.request("GET", "/metrics").body.decode()
        return next((line for line in text.splitlines() if line.startswith(
            'cliproxyd_credentials{provider="claude",state="unavailable"}')), "")
    assert wait_until(lambda: metric().endswith(" 1.0"))
    files = d.request("GET", "/v0/management/auth-files",
                      headers={"Authorization": f"Bearer {SECRET}"}).json()["files"]
    by_name = {f["name"]: f for f in files}
    dead, live = by_name["claude-dead@example.com.json"], by_name["claude-live@example.com.json"]
    assert dead["status"] == "error" and dead["unavailable"] and dead["status_message"]
    assert "revoked-refresh" not in json.dumps(files) and "live-access" not in json.dumps(files)
    assert live.get("status") != "error" and not live.get("unavailable")


def test_only_unavailable_accounts_give_503_with_the_reason(daemon, providers, claude_up,
                                                            codex_up):
    providers["claude"].state.mode = "fail"
    d = daemon(config_for(providers, claude_up, codex_up), start=False)
    write_auth(d, "claude-dead@example.com.json",
               expired_claude("dead@example.com", "dead-access", "revoked-refresh"))
    d.start()
    assert wait_until(lambda: providers["claude"].token_requests)
    assert wait_until(lambda: b"refresh failed" in chat(d, "claude-sonnet-4-5-20250929").body)
    resp = chat(d, "claude-sonnet-4-5-20250929")
    assert resp.status == 503 and b"invalid_grant" in resp.body
    assert claude_up.requests == []
    listed = [m["id"] for m in d.request("GET", "/v1/models").json()["data"]]
    assert "claude-sonnet-4-5-20250929" in listed


def test_hand_edits_are_picked_up_on_sighup(daemon, providers, claude_up, codex_up):
    d = daemon(config_for(providers, claude_up, codex_up))
    assert chat(d, "claude-sonnet-4-5-20250929").status == 404
    write_auth(d, "claude-hand@example.com.json", {
        "type": "claude", "access_token": "hand-access", "refresh_token": "r",
        "email": "hand@example.com", "expired": "2999-01-01T00:00:00Z", "prefix": "team"})
    write_auth(d, "broken.json", {"type": "claude"} | {"x": 1})
    (d.workdir / "auth" / "corrupt.json").write_text("{not json")
    d.reload()
    assert chat(d, "claude-sonnet-4-5-20250929").status == 200
    assert chat(d, "team/claude-sonnet-4-5-20250929").status == 200
    assert claude_up.requests[-1].headers["authorization"] == "Bearer hand-access"
    assert "corrupt.json" in d.logs
