"""Tests for cliproxyd/credentials/tokens.py (the blocking token POST)."""

from __future__ import annotations

import pytest
from harness import free_port

from cliproxyd.credentials.oauth import TokenError, TokenRequest
from cliproxyd.credentials.tokens import post_token
from tests.fakes.oauth import CLIENT_IDS, FakeOAuth


@pytest.fixture(scope="module")
def fake():
    f = FakeOAuth("codex")
    yield f
    f.stop()


def refresh(fake, token: str) -> TokenRequest:
    return TokenRequest(f"{fake.url}/token", {"client_id": CLIENT_IDS["codex"],
                                              "grant_type": "refresh_token",
                                              "refresh_token": token,
                                              "scope": "openid profile email"})


def test_posts_a_form_and_returns_the_token_answer(fake):
    fake.state.mode = "ok"
    fake.accept_refresh_token("rt-1")
    doc = post_token(refresh(fake, "rt-1"), proxy_url="direct")
    assert doc["access_token"] == fake.access_tokens[-1] and doc["id_token"]
    assert fake.token_requests[-1].content_type == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("mode, message", [
    ("fail", "HTTP 400: invalid_grant"),
    ("garbage", "not a JSON object"),
    ("500", "HTTP 500"),
])
def test_failures_become_token_errors_without_tokens(fake, mode, message):
    fake.state.mode = mode
    fake.accept_refresh_token("rt-secret-2")
    with pytest.raises(TokenError) as info:
        post_token(refresh(fake, "rt-secret-2"))
    assert message in str(info.value) and "rt-secret-2" not in str(info.value)
    fake.state.mode = "ok"


def test_unreachable_endpoint():
    req = TokenRequest(f"http://127.0.0.1:{free_port()}/token", {
        "client_id": "c", "grant_type": "refresh_token", "refresh_token": "r"})
    with pytest.raises(TokenError) as info:
        post_token(req, timeout=5)
    assert "cannot reach the token endpoint" in str(info.value)


def test_plain_http_token_endpoints_need_oauthlibs_switch(fake, monkeypatch):
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    fake.accept_refresh_token("rt-3")
    before = len(fake.token_requests)
    with pytest.raises(TokenError) as info:
        post_token(refresh(fake, "rt-3"))
    assert "https" in str(info.value) and "OAUTHLIB_INSECURE_TRANSPORT" in str(info.value)
    assert len(fake.token_requests) == before  # refused before anything was sent


def test_claude_token_requests_are_json_with_every_field():
    claude = FakeOAuth("claude")
    try:
        claude.accept_refresh_token("rt-claude")
        req = TokenRequest(f"{claude.url}/token", {
            "client_id": CLIENT_IDS["claude"], "grant_type": "refresh_token",
            "refresh_token": "rt-claude"}, as_json=True)
        doc = post_token(req)
        sent = claude.token_requests[-1]
        assert sent.content_type == "application/json"
        assert doc["access_token"] == claude.access_tokens[-1]
    finally:
        claude.stop()


def test_unsupported_grant_is_refused_locally():
    with pytest.raises(TokenError):
        post_token(TokenRequest("https://example.invalid/token", {"grant_type": "password"}))
