"""Tests for cliproxyd/credentials/claude.py and codex.py (provider data, requests, auth files)
and the provider table in cliproxyd/credentials/__init__.py."""

from __future__ import annotations

import hashlib

import pytest

from cliproxyd.config import Config
from cliproxyd.credentials import PROVIDERS, claude, codex, provider_module
from cliproxyd.credentials.oauth import parse_time
from tests.fakes.oauth import make_jwt

NOW = 1_800_000_000.0
CLAUDE = Config().oauth.claude
CODEX = Config().oauth.codex


def test_provider_aliases():
    assert provider_module("anthropic") is claude and provider_module("Claude") is claude
    assert provider_module("openai") is codex and provider_module("codex") is codex
    assert set(PROVIDERS) == {"anthropic", "claude", "codex", "openai"}
    with pytest.raises(KeyError):
        provider_module("gemini")


def test_lead_times_are_the_originals():
    assert claude.SPEC.lead == 4 * 3600 and codex.SPEC.lead == 5 * 86400


def test_claude_code_exchange_is_json_and_splits_code_hash_state():
    req = claude.code_request(CLAUDE, "abc#st-2", "ver", "http://localhost:54545/callback", "st-1")
    assert req.as_json and req.url == "https://api.anthropic.com/v1/oauth/token"
    assert dict(req.fields) == {"code": "abc", "state": "st-2", "grant_type": "authorization_code",
                                "client_id": CLAUDE.client_id,
                                "redirect_uri": "http://localhost:54545/callback",
                                "code_verifier": "ver"}
    assert claude.code_request(CLAUDE, "abc", "v", "u", "st-1").fields["state"] == "st-1"


def test_claude_refresh_is_json():
    req = claude.refresh_request(CLAUDE, "rt")
    assert req.as_json and dict(req.fields) == {"client_id": CLAUDE.client_id,
                                                "grant_type": "refresh_token", "refresh_token": "rt"}


def test_claude_auth_fields_and_file_name():
    doc = {"access_token": "at", "refresh_token": "rt", "expires_in": 3600,
           "account": {"email_address": "bob@example.com"}}
    fields = claude.auth_fields(doc, NOW)
    assert fields["type"] == "claude" and fields["id_token"] == ""
    assert fields["email"] == "bob@example.com" and fields["access_token"] == "at"
    assert parse_time(fields["expired"]) == NOW + 3600 and parse_time(fields["last_refresh"]) == NOW
    assert claude.file_name(fields) == "claude-bob@example.com.json"
    # A refresh answer without account or refresh token keeps the old ones.
    again = claude.auth_fields({"access_token": "at2", "expires_in": 60}, NOW, fields)
    assert again["email"] == "bob@example.com" and again["refresh_token"] == "rt"


def test_codex_requests_are_forms_with_refresh_scope():
    req = codex.code_request(CODEX, "c", "v", "http://localhost:1455/auth/callback", "s")
    assert not req.as_json and req.url == "https://auth.openai.com/oauth/token"
    assert dict(req.fields) == {"grant_type": "authorization_code", "client_id": CODEX.client_id,
                                "code": "c", "redirect_uri": "http://localhost:1455/auth/callback",
                                "code_verifier": "v"}
    assert codex.refresh_request(CODEX, "rt").fields["scope"] == "openid profile email"


def _codex_doc(plan: str, account: str = "acct-9") -> dict:
    return {"access_token": "at", "refresh_token": "rt", "expires_in": 864000,
            "id_token": make_jwt({"email": "c@example.com", codex.AUTH_CLAIM: {
                "chatgpt_account_id": account, "chatgpt_plan_type": plan}})}


def test_codex_identity_comes_from_the_id_token():
    fields = codex.auth_fields(_codex_doc("plus"), NOW)
    assert fields["email"] == "c@example.com" and fields["account_id"] == "acct-9"
    assert fields["type"] == "codex" and parse_time(fields["expired"]) == NOW + 864000
    assert codex.file_name(fields) == "codex-c@example.com-plus.json"


@pytest.mark.parametrize("plan, name", [
    ("", "codex-c@example.com.json"),
    ("Pro Lite", "codex-c@example.com-pro-lite.json"),
    ("team", f"codex-{hashlib.sha256(b'acct-9').hexdigest()[:8]}-c@example.com-team.json"),
])
def test_codex_file_names(plan, name):
    assert codex.file_name(codex.auth_fields(_codex_doc(plan), NOW)) == name


def test_codex_refresh_without_id_token_keeps_identity():
    first = codex.auth_fields(_codex_doc("plus"), NOW)
    again = codex.auth_fields({"access_token": "at2"}, NOW + 5, first)
    assert again["account_id"] == "acct-9" and again["id_token"] == first["id_token"]
    assert again["refresh_token"] == "rt" and "expired" not in again
