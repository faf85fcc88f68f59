"""cliproxyd/providers/codex.py: the Responses endpoint, Bearer auth and OpenAI error bodies
(including the ChatGPT Codex backend's usage_limit_reached)."""

from __future__ import annotations

import json

import pytest

from cliproxyd.config import Config, ProviderKey
from cliproxyd.errors import ErrorKind
from cliproxyd.providers import provider_for
from cliproxyd.providers.codex import QUOTA_RETRY
from cliproxyd.routing.models import build_registry

P = provider_for("codex")


def cred(**kw):
    return build_registry(Config(codex_api_key=(ProviderKey("sk-proj-TESTKEY-1234", **kw),))).credentials[0]


BODY = {"model": "x", "input": [{"role": "user", "content": "hi"}], "instructions": "be brief",
        "stream": True}


def test_responses_url_bearer_and_body():
    w = P.build_request(BODY, cred(), "gpt-5-codex", stream=False)
    assert w.url == "https://api.openai.com/v1/responses"
    assert w.headers["Authorization"] == "Bearer sk-proj-TESTKEY-1234"
    assert w.headers["Accept"] == "application/json"
    sent = json.loads(w.body)
    assert sent["model"] == "gpt-5-codex" and "stream" not in sent
    assert sent["input"] == BODY["input"] and sent["instructions"] == "be brief"
    assert "TESTKEY" not in repr(w)


def test_streaming_and_custom_base_and_headers():
    w = P.build_request(BODY, cred(base_url="https://chatgpt.com/backend-api/codex/",
                                   headers={"Originator": "codex_cli_rs"}), "gpt-5", stream=True)
    assert w.url == "https://chatgpt.com/backend-api/codex/responses"
    assert json.loads(w.body)["stream"] is True
    assert w.headers["Accept"] == "text/event-stream"
    assert w.headers["Originator"] == "codex_cli_rs"


def test_no_count_endpoint():
    assert P.count_tokens_request(BODY, cred(), "gpt-5") is None


def _err(message, type_, code=None, param=None):
    return json.dumps({"error": {"message": message, "type": type_, "param": param,
                                 "code": code}}).encode()


@pytest.mark.parametrize("status,body,headers,kind,retry", [
    (401, _err("Incorrect API key provided: sk-proj-****1234. You can find your API key at "
               "https://platform.openai.com/account/api-keys.", "invalid_request_error",
               "invalid_api_key"), {}, ErrorKind.AUTHENTICATION, None),
    (429, _err("Rate limit reached for gpt-5 in organization org-x on tokens per min (TPM): "
               "Limit 30000, Used 29000, Requested 2000. Please try again in 2s.",
               "tokens", "rate_limit_exceeded"), {"retry-after-ms": "1500", "retry-after": "2"},
     ErrorKind.RATE_LIMITED, 1.5),
    (429, _err("You exceeded your current quota, please check your plan and billing details.",
               "insufficient_quota", "insufficient_quota"), {}, ErrorKind.RATE_LIMITED, QUOTA_RETRY),
    (400, _err("Unsupported parameter: 'temperature' is not supported with this model.",
               "invalid_request_error", "unsupported_parameter", "temperature"), {},
     ErrorKind.INVALID_REQUEST, None),
    (400, _err("Your input exceeds the context window of this model.", "invalid_request_error",
               "context_length_exceeded"), {}, ErrorKind.INVALID_REQUEST, None),
    (404, _err("The model `gpt-9` does not exist or you do not have access to it.",
               "invalid_request_error", "model_not_found"), {}, ErrorKind.NOT_FOUND, None),
    (500, _err("The server had an error while processing your request. Sorry about that!",
               "server_error"), {}, ErrorKind.UPSTREAM_ERROR, None),
    (503, _err("The engine is currently overloaded, please try again later", "server_error"), {},
     ErrorKind.UPSTREAM_UNAVAILABLE, None),
])
def test_classify_error_table(status, body, headers, kind, retry):
    e = P.classify_error(status, headers, body)
    assert e.status == status and e.kind is kind and e.retry_after == retry


def test_usage_limit_reached_uses_resets_in_seconds():
    body = json.dumps({"error": {"type": "usage_limit_reached",
                                 "message": "The usage limit has been reached", "plan_type": "plus",
                                 "resets_at": 1764300000, "resets_in_seconds": 3600}}).encode()
    e = P.classify_error(429, {}, body)
    assert e.kind is ErrorKind.RATE_LIMITED and e.retry_after == 3600.0


def test_detail_shaped_body_and_key_redaction():
    e = P.classify_error(403, {}, json.dumps({"detail": "Unauthorized"}).encode())
    assert e.kind is ErrorKind.PERMISSION and e.message == "Unauthorized"
    leak = P.classify_error(401, {}, _err("bad key sk-proj-abcdefghijklmnop", "invalid_request_error",
                                          "invalid_api_key"))
    assert "abcdefghijklmnop" not in leak.message
