"""cliproxyd/providers/claude.py and codex.py with OAuth subscription credentials (issue 7):
Bearer tokens, Claude's OAuth beta header, the ChatGPT Codex backend's URL, headers and body."""

from __future__ import annotations

import json

from cliproxyd.config import ClaudeOAuth, CodexOAuth, Config, OAuth, ProviderKey
from cliproxyd.providers import provider_for
from cliproxyd.routing.models import OAuthAccount, build_registry

CFG = Config(oauth=OAuth(claude=ClaudeOAuth(api_base_url="http://127.0.0.1:9"),
                         codex=CodexOAuth(api_base_url="http://127.0.0.1:9/backend-api/codex")))


def account(kind: str, **kw):
    acct = OAuthAccount(name=f"{kind}-a@x.json", kind=kind, access_token=f"{kind}-token-1234", **kw)
    return build_registry(CFG, [acct]).credentials[0]


def test_claude_oauth_uses_bearer_and_the_oauth_beta():
    cred = account("claude")
    w = provider_for("claude").build_request({"messages": []}, cred, "claude-sonnet-4-5", False)
    assert w.url == "http://127.0.0.1:9/v1/messages"
    assert w.headers["Authorization"] == "Bearer claude-token-1234"
    assert "oauth-2025-04-20" in w.headers["anthropic-beta"].split(",")
    assert w.headers["anthropic-version"] == "2023-06-01" and "x-api-key" not in w.headers
    count = provider_for("claude").count_tokens_request({"messages": []}, cred, "m")
    assert count.headers["Authorization"] == "Bearer claude-token-1234"
    assert "claude-token-1234" not in repr(w)


def test_claude_api_keys_are_unchanged():
    key = build_registry(Config(claude_api_key=(ProviderKey("sk-ant-api03-K"),))).credentials[0]
    w = provider_for("claude").build_request({"messages": []}, key, "m", False)
    assert w.headers["x-api-key"] == "sk-ant-api03-K" and "Authorization" not in w.headers
    assert "anthropic-beta" not in w.headers


def test_codex_oauth_calls_the_chatgpt_backend():
    cred = account("codex", account_id="acct-42")
    assert cred.stream_only and cred.auth == "oauth"
    body = {"input": "hi", "temperature": 0.2, "max_output_tokens": 5, "store": True}
    w = provider_for("codex").build_request(body, cred, "gpt-5", stream=True)
    assert w.url == "http://127.0.0.1:9/backend-api/codex/responses"
    assert w.headers["Authorization"] == "Bearer codex-token-1234"
    assert w.headers["Chatgpt-Account-Id"] == "acct-42"
    assert w.headers["Originator"] == "codex-tui" and w.headers["Accept"] == "text/event-stream"
    sent = json.loads(w.body)
    assert sent["store"] is False and sent["stream"] is True and sent["instructions"] == ""
    assert "temperature" not in sent and "max_output_tokens" not in sent
    assert sent["input"] == [{"type": "message", "role": "user",
                              "content": [{"type": "input_text", "text": "hi"}]}]


def test_codex_api_keys_are_unchanged():
    key = build_registry(Config(codex_api_key=(ProviderKey("sk-proj-K"),))).credentials[0]
    assert not key.stream_only
    w = provider_for("codex").build_request({"input": "hi", "temperature": 1}, key, "gpt-5", False)
    assert "Chatgpt-Account-Id" not in w.headers and json.loads(w.body)["temperature"] == 1


def test_claude_oauth_leads_the_system_prompt_with_claude_codes_identity():
    from cliproxyd.providers.claude import CLAUDE_CODE_IDENTITY

    cred = account("claude")
    p = provider_for("claude")

    def system(body):
        return json.loads(p.build_request(body, cred, "m", False).body)["system"]

    identity = {"type": "text", "text": CLAUDE_CODE_IDENTITY}
    assert system({"messages": []}) == [identity]
    assert system({"system": "be brief"}) == [identity, {"type": "text", "text": "be brief"}]
    blocks = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]
    assert system({"system": blocks}) == [identity, *blocks]
    assert system({"system": [identity, *blocks]}) == [identity, *blocks]
    key = build_registry(Config(claude_api_key=(ProviderKey("sk-ant-K"),))).credentials[0]
    assert json.loads(p.build_request({"system": "s"}, key, "m", False).body)["system"] == "s"
