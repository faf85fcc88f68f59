"""cliproxyd/providers/claude.py: URLs, headers, body rewriting, count_tokens and error
classification with Anthropic's real error bodies."""

from __future__ import annotations

import json

import pytest

from cliproxyd.config import Config, ProviderKey
from cliproxyd.errors import ErrorKind
from cliproxyd.providers import provider_for
from cliproxyd.providers.claude import SPEND_LIMIT_RETRY, merge_betas

P = provider_for("claude")


def cred(**kw):
    from cliproxyd.routing.models import build_registry
    return build_registry(Config(claude_api_key=(ProviderKey("sk-ant-api03-TESTKEY", **kw),))).credentials[0]


BODY = {"model": "client-name", "max_tokens": 64, "stream": True, "temperature": 0.2,
        "system": "be brief", "metadata": {"user_id": "u1"},
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}]}


def test_messages_url_auth_and_version_headers():
    w = P.build_request(BODY, cred(), "claude-sonnet-4-5-20250929", stream=False)
    assert w.url == "https://api.anthropic.com/v1/messages"
    assert w.headers["x-api-key"] == "sk-ant-api03-TESTKEY"
    assert w.headers["anthropic-version"] == "2023-06-01"
    assert w.headers["Accept"] == "application/json"
    assert "Authorization" not in w.headers
    sent = json.loads(w.body)
    assert sent["model"] == "claude-sonnet-4-5-20250929" and "stream" not in sent
    assert sent["messages"] == BODY["messages"]
    assert BODY["model"] == "client-name"  # the caller's dict is not mutated


def test_streaming_sets_stream_and_accept():
    w = P.build_request({k: v for k, v in BODY.items() if k != "stream"}, cred(), "m", stream=True)
    assert json.loads(w.body)["stream"] is True
    assert w.headers["Accept"] == "text/event-stream"


def test_base_url_and_entry_headers():
    w = P.build_request(BODY, cred(base_url="http://127.0.0.1:7/", headers={"anthropic-beta": "x-1"}),
                        "m", stream=False)
    assert w.url == "http://127.0.0.1:7/v1/messages"
    assert w.headers["anthropic-beta"] == "x-1"


@pytest.mark.parametrize("own, client, merged", [
    ("", "interleaved-thinking-2025-05-14", "interleaved-thinking-2025-05-14"),
    ("oauth-2025-04-20,claude-code-20250219", " claude-code-20250219 , context-1m-2025-08-07",
     "oauth-2025-04-20,claude-code-20250219,context-1m-2025-08-07"),
    ("x-1", "", "x-1"),
    ("", ",,", ""),
])
def test_merge_betas_keeps_each_once_provider_first(own, client, merged):
    assert merge_betas(own, client) == merged


def test_client_beta_is_forwarded_and_merged_with_the_entry_one():
    w = P.build_request(BODY, cred(headers={"Anthropic-Beta": "x-1"}), "m", stream=True)
    out = P.with_client_headers(w, {"Anthropic-Beta": "x-1,fine-grained-tool-streaming-2025-05-14",
                                    "Authorization": "Bearer client-key"})
    betas = [v for k, v in out.headers.items() if k.lower() == "anthropic-beta"]
    assert betas == ["x-1,fine-grained-tool-streaming-2025-05-14"]
    assert "Authorization" not in out.headers and out.body == w.body  # nothing else travels
    assert P.with_client_headers(w, {"User-Agent": "claude-cli/2"}) is w


def test_count_tokens_keeps_only_accepted_fields():
    w = P.count_tokens_request(BODY, cred(), "claude-haiku-4-5-20251001")
    assert w.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert w.headers["x-api-key"] == "sk-ant-api03-TESTKEY"
    sent = json.loads(w.body)
    assert set(sent) == {"model", "messages", "system", "tools"}
    assert sent["model"] == "claude-haiku-4-5-20251001"


def _err(type_, message):
    return json.dumps({"type": "error", "error": {"type": type_, "message": message},
                       "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}).encode()


@pytest.mark.parametrize("status,body,headers,kind,retry", [
    (400, _err("invalid_request_error", "messages: field required"), {}, ErrorKind.INVALID_REQUEST, None),
    (401, _err("authentication_error", "invalid x-api-key"), {}, ErrorKind.AUTHENTICATION, None),
    (402, _err("billing_error", "Your credit balance is too low to access the Anthropic API."), {},
     ErrorKind.PERMISSION, None),
    (403, _err("permission_error", "Your API key does not have permission to use the specified resource."),
     {}, ErrorKind.PERMISSION, None),
    (404, _err("not_found_error", "model: claude-9"), {}, ErrorKind.NOT_FOUND, None),
    (413, _err("request_too_large", "Request exceeds the maximum allowed number of bytes."), {},
     ErrorKind.PAYLOAD_TOO_LARGE, None),
    (429, _err("rate_limit_error", "This request would exceed the rate limit for your organization "
                                   "of 50,000 input tokens per minute."),
     {"retry-after": "17"}, ErrorKind.RATE_LIMITED, 17.0),
    (500, _err("api_error", "Internal server error"), {}, ErrorKind.UPSTREAM_ERROR, None),
    (529, _err("overloaded_error", "Overloaded"), {}, ErrorKind.UPSTREAM_UNAVAILABLE, None),
    (504, b"<html>Gateway Timeout</html>", {}, ErrorKind.UPSTREAM_TIMEOUT, None),
])
def test_classify_error_table(status, body, headers, kind, retry):
    e = P.classify_error(status, headers, body)
    assert e.status == status and e.kind is kind and e.retry_after == retry


def test_spend_limit_429_gets_a_long_retry():
    body = json.dumps({"type": "error", "error": {
        "type": "rate_limit_error", "message": "You have reached your specified API usage limits.",
        "details": {"error_code": "enforced_spend_limit_reached"}}}).encode()
    assert P.classify_error(429, {}, body).retry_after == SPEND_LIMIT_RETRY


def test_message_extracted_not_body():
    e = P.classify_error(529, {}, _err("overloaded_error", "Overloaded"))
    assert e.message == "Overloaded"
    assert P.classify_error(500, {}, b"").message == "Anthropic returned HTTP 500"
