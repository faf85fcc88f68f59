"""cliproxyd/providers/openai_compat.py: chat/completions, Bearer per key entry, usage in
streams, extra headers and loosely shaped error bodies."""

from __future__ import annotations

import json

import pytest

from cliproxyd.config import APIKeyEntry, Config, ModelAlias, OpenAICompat
from cliproxyd.errors import ErrorKind
from cliproxyd.providers import provider_for
from cliproxyd.routing.models import build_registry

P = provider_for("openai_compat")


def creds(keys=("or-key-0001",), headers=None):
    compat = OpenAICompat(name="openrouter", base_url="https://openrouter.ai/api/v1/",
                          headers=headers or {}, api_key_entries=tuple(APIKeyEntry(k) for k in keys),
                          models=(ModelAlias("moonshotai/kimi-k2", "kimi"),))
    return build_registry(Config(openai_compatibility=(compat,))).credentials


BODY = {"model": "kimi", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_obfuscation": False}}


def test_url_bearer_per_key_and_model():
    a, b = creds(("or-key-0001", "or-key-0002"))
    wa = P.build_request(BODY, a, "moonshotai/kimi-k2", stream=False)
    wb = P.build_request(BODY, b, "moonshotai/kimi-k2", stream=False)
    assert wa.url == "https://openrouter.ai/api/v1/chat/completions"
    assert wa.headers["Authorization"] == "Bearer or-key-0001"
    assert wb.headers["Authorization"] == "Bearer or-key-0002"
    sent = json.loads(wa.body)
    assert sent["model"] == "moonshotai/kimi-k2"
    assert "stream" not in sent and "stream_options" not in sent


def test_stream_asks_for_usage_and_keeps_other_options():
    (c,) = creds()
    w = P.build_request(BODY, c, "moonshotai/kimi-k2", stream=True)
    sent = json.loads(w.body)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert w.headers["Accept"] == "text/event-stream"
    assert w.headers["Cache-Control"] == "no-cache"


def test_keyless_entry_sends_no_authorization_and_headers_are_added():
    (c,) = creds(keys=(), headers={"HTTP-Referer": "https://example.org", "X-Title": "cliproxyd"})
    w = P.build_request(BODY, c, "m", stream=False)
    assert "Authorization" not in w.headers
    assert w.headers["HTTP-Referer"] == "https://example.org" and w.headers["X-Title"] == "cliproxyd"


def test_no_count_endpoint():
    (c,) = creds()
    assert P.count_tokens_request(BODY, c, "m") is None


@pytest.mark.parametrize("status,body,headers,kind,retry,message", [
    (401, {"error": {"message": "No auth credentials found", "code": 401}}, {},
     ErrorKind.AUTHENTICATION, None, "No auth credentials found"),
    (429, {"error": {"message": "Rate limit exceeded: free-models-per-min.", "code": 429}},
     {"retry-after": "30"}, ErrorKind.RATE_LIMITED, 30.0, "Rate limit exceeded: free-models-per-min."),
    (400, {"error": "model 'x' not found, try pulling it first"}, {}, ErrorKind.INVALID_REQUEST,
     None, "model 'x' not found, try pulling it first"),
    (422, {"detail": "Field required"}, {}, ErrorKind.INVALID_REQUEST, None, "Field required"),
    (404, {"error": {"message": "The model `m` does not exist.", "type": "invalid_request_error",
                     "code": "model_not_found"}}, {}, ErrorKind.NOT_FOUND, None,
     "The model `m` does not exist."),
    (502, "<html>bad gateway</html>", {}, ErrorKind.UPSTREAM_ERROR, None, "upstream returned HTTP 502"),
    (503, {"message": "Service Unavailable"}, {}, ErrorKind.UPSTREAM_UNAVAILABLE, None,
     "Service Unavailable"),
])
def test_classify_error_table(status, body, headers, kind, retry, message):
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    e = P.classify_error(status, headers, raw)
    assert (e.status, e.kind, e.retry_after, e.message) == (status, kind, retry, message)
