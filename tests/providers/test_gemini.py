"""cliproxyd/providers/gemini.py: URLs, headers, body rewriting, countTokens and error
classification with Google's real error bodies."""

from __future__ import annotations

import json

import pytest

from cliproxyd.config import Config, ProviderKey
from cliproxyd.errors import ErrorKind
from cliproxyd.providers import provider_for
from cliproxyd.routing.models import build_registry

P = provider_for("gemini")


def cred(**kw):
    return build_registry(Config(gemini_api_key=(ProviderKey("AIzaTESTKEY-0001", **kw),))).credentials[0]


BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 10}, "model": "ignored"}


def test_generate_url_headers_and_body():
    w = P.build_request(BODY, cred(), "gemini-2.5-pro", stream=False)
    assert w.method == "POST"
    assert w.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"
    assert w.headers["x-goog-api-key"] == "AIzaTESTKEY-0001"
    assert w.headers["Content-Type"] == "application/json"
    assert w.headers["Accept"] == "application/json"
    assert "key=" not in w.url
    sent = json.loads(w.body)
    assert "model" not in sent and sent["contents"] == BODY["contents"]
    assert "AIzaTESTKEY" not in repr(w)


def test_stream_url_and_accept():
    w = P.build_request(BODY, cred(base_url="http://127.0.0.1:9/"), "gemini-2.5-flash", stream=True)
    assert w.url == "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert w.headers["Accept"] == "text/event-stream"


def test_entry_headers_are_added():
    w = P.build_request(BODY, cred(headers={"X-Goog-User-Project": "p1"}), "gemini-2.5-pro", False)
    assert w.headers["X-Goog-User-Project"] == "p1"
    assert w.headers["x-goog-api-key"] == "AIzaTESTKEY-0001"


def test_count_tokens_wraps_full_request():
    w = P.count_tokens_request(BODY, cred(), "gemini-2.5-pro")
    assert w.url.endswith("/v1beta/models/gemini-2.5-pro:countTokens")
    sent = json.loads(w.body)
    inner = sent["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-pro"
    assert inner["systemInstruction"] == BODY["systemInstruction"]
    assert "generationConfig" not in inner and "contents" not in sent


def test_count_tokens_bare_contents():
    w = P.count_tokens_request({"contents": BODY["contents"]}, cred(), "gemini-2.5-pro")
    assert json.loads(w.body) == {"contents": BODY["contents"]}


def test_count_tokens_body_from_the_codec_is_not_wrapped_twice():
    from cliproxyd.formats import gemini as codec
    request = codec.decode_request(BODY, model="gemini-2.5-pro")
    encoded = codec.encode_count_tokens_request(request, model="gemini-2.5-pro")
    sent = json.loads(P.count_tokens_request(encoded, cred(), "gemini-2.5-pro").body)
    assert set(sent) == {"generateContentRequest"}
    inner = sent["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-pro" and "generateContentRequest" not in inner
    assert inner["systemInstruction"] == BODY["systemInstruction"] and inner["contents"]


def _err(code, status, message, details=()):
    return json.dumps({"error": {"code": code, "message": message, "status": status,
                                 "details": list(details)}}).encode()


QUOTA_429 = _err(429, "RESOURCE_EXHAUSTED",
                 "You exceeded your current quota, please check your plan and billing details.", [
                     {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                         {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                          "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                     {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                         {"description": "Learn more", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                     {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "57.238747106s"},
                 ])
KEY_INVALID = _err(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
     "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])
BAD_ARG = _err(400, "INVALID_ARGUMENT",
               "* GenerateContentRequest.contents: contents is not specified\n")
NOT_FOUND = _err(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta, or is "
                 "not supported for generateContent.")
DENIED = _err(403, "PERMISSION_DENIED", "Your API key was reported as leaked.")
OVERLOADED = _err(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
INTERNAL = _err(500, "INTERNAL", "An internal error has occurred.")


@pytest.mark.parametrize("status,body,headers,kind,retry", [
    (429, QUOTA_429, {}, ErrorKind.RATE_LIMITED, 57.238747106),
    (429, _err(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
     {"retry-after": "9"}, ErrorKind.RATE_LIMITED, 9.0),
    (429, _err(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
     {}, ErrorKind.RATE_LIMITED, None),
    (400, KEY_INVALID, {}, ErrorKind.AUTHENTICATION, None),
    (400, BAD_ARG, {}, ErrorKind.INVALID_REQUEST, None),
    (404, NOT_FOUND, {}, ErrorKind.NOT_FOUND, None),
    (403, DENIED, {}, ErrorKind.PERMISSION, None),
    (503, OVERLOADED, {}, ErrorKind.UPSTREAM_UNAVAILABLE, None),
    (500, INTERNAL, {}, ErrorKind.UPSTREAM_ERROR, None),
    (502, b"<html><body>Bad Gateway</body></html>", {}, ErrorKind.UPSTREAM_ERROR, None),
])
def test_classify_error_table(status, body, headers, kind, retry):
    e = P.classify_error(status, headers, body)
    assert e.status == status and e.kind is kind
    assert e.retry_after == (pytest.approx(retry) if retry is not None else None)


def test_classify_keeps_message_never_the_body():
    e = P.classify_error(429, {}, QUOTA_429)
    assert e.message.startswith("You exceeded your current quota")
    assert "@type" not in e.message and "QuotaFailure" not in e.message
    html = P.classify_error(502, {}, b"<html><body>Bad Gateway</body></html>")
    assert "<html>" not in html.message and "502" in html.message


def test_classify_array_wrapped_error_and_quota_reset_delay():
    wrapped = b"[" + KEY_INVALID + b"]"
    assert P.classify_error(400, {}, wrapped).kind is ErrorKind.AUTHENTICATION
    body = _err(429, "RESOURCE_EXHAUSTED", "quota", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
         "metadata": {"quotaResetDelay": "1m30s"}}])
    assert P.classify_error(429, {}, body).retry_after == 90.0


def test_classify_redacts_keys_and_caps_length():
    body = _err(400, "INVALID_ARGUMENT", "bad key AIzaSyA1234567890abcdefghij " + "x" * 2000)
    e = P.classify_error(400, {}, body)
    assert "AIzaSyA1234567890" not in e.message and "[redacted]" in e.message
    assert len(e.message) <= 500
