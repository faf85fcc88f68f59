"""cliproxyd/routing/models.py with OAuth accounts from the auth dir (issue 7)."""

from __future__ import annotations

import pytest

from cliproxyd.config import Config, ProviderKey
from cliproxyd.errors import ProxyError
from cliproxyd.routing.models import OAuthAccount, build_registry

MODEL = "claude-sonnet-4-5-20250929"


def acct(name="claude-a@x.json", kind="claude", **kw) -> OAuthAccount:
    return OAuthAccount(name=name, kind=kind, access_token="tok", **kw)


def test_oauth_accounts_alone_serve_the_builtin_catalogue():
    reg = build_registry(Config(), [acct(), acct("codex-b@x.json", "codex", account_id="a1")])
    ids = [m.id for m in reg.listing()]
    assert MODEL in ids and "gpt-5" in ids
    (cred, upstream), = reg.resolve(MODEL)
    assert cred.id == "claude-a@x.json" and cred.auth == "oauth" and upstream == MODEL
    assert cred.base_url == "https://api.anthropic.com"
    codex, = [c for c in reg.credentials if c.kind == "codex"]
    assert codex.base_url == "https://chatgpt.com/backend-api/codex" and codex.account_id == "a1"


def test_accounts_come_after_config_keys_and_honour_file_settings():
    cfg = Config(claude_api_key=(ProviderKey("sk-ant-1"),), proxy_url="http://proxy:1")
    reg = build_registry(cfg, [acct(prefix="team", priority=5, excluded_models=("claude-opus-*",))])
    key, oauth = reg.credentials
    assert key.auth == "api_key" and oauth.auth == "oauth"
    assert oauth.prefix == "team" and oauth.priority == 5 and oauth.proxy_url == "http://proxy:1"
    assert not any(m.alias.startswith("claude-opus") for m in oauth.models)
    assert [c.id for c, _ in reg.resolve(f"team/{MODEL}")] == ["claude-a@x.json"]


def test_unavailable_accounts_are_listed_but_never_resolved():
    reg = build_registry(Config(), [acct(unavailable="access token expired; refresh failed: x")])
    assert MODEL in [m.id for m in reg.listing()]
    with pytest.raises(ProxyError) as info:
        reg.resolve(MODEL)
    assert info.value.status == 503 and "refresh failed: x" in info.value.message
    with pytest.raises(ProxyError) as info:
        reg.resolve("no-such-model")
    assert info.value.status == 404


def test_an_unavailable_account_does_not_hide_a_usable_one():
    reg = build_registry(Config(), [acct("claude-a.json", unavailable="expired"),
                                    acct("claude-b.json")])
    assert [c.id for c, _ in reg.resolve(MODEL)] == ["claude-b.json"]


def test_prefixed_unavailable_account_gives_503():
    reg = build_registry(Config(), [acct(prefix="team", unavailable="expired")])
    with pytest.raises(ProxyError) as info:
        reg.resolve(f"team/{MODEL}")
    assert info.value.status == 503
