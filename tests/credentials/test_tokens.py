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
    req = TokenRequest(f"http://127.0.0.1:{free_port()}/token", {"a": "b"})
    with pytest.raises(TokenError) as info:
        post_token(req, timeout=5)
    assert "cannot reach the token endpoint" in str(info.value)
