"""Gemini API upstream (``gemini-api-key``): endpoints, auth and error classification.

``{base}/v1beta/models/{model}:generateContent`` / ``:streamGenerateContent?alt=sse`` /
``:countTokens``; the key goes in ``x-goog-api-key`` (never ``?key=``), reference §8.  The model
lives in the URL, so any ``model`` field is dropped from the body.  Pure: no I/O.

Google's error body: ``{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}, ...]}}``.
An invalid key is a 400 with ``ErrorInfo.reason == "API_KEY_INVALID"``: classified as
authentication (status kept) so the key is cooled down and the next one tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.providers.base import (
    WireRequest,
    base_headers,
    json_body,
    make_error,
    parse_duration,
    parse_json_error,
    retry_after_header,
)
from cliproxyd.routing.models import Credential

__all__ = ["GeminiProvider"]

_STATUS_KIND = {
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMITED,
    "UNAUTHENTICATED": ErrorKind.AUTHENTICATION,
    "PERMISSION_DENIED": ErrorKind.PERMISSION,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "INVALID_ARGUMENT": ErrorKind.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.INVALID_REQUEST,
    "UNAVAILABLE": ErrorKind.UPSTREAM_UNAVAILABLE,
    "DEADLINE_EXCEEDED": ErrorKind.UPSTREAM_TIMEOUT,
    "INTERNAL": ErrorKind.UPSTREAM_ERROR,
}
_AUTH_REASONS = ("API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED")
_TYPE_PREFIX = "type.googleapis.com/google.rpc."


class GeminiProvider:
    """The Gemini API (generativelanguage.googleapis.com or a compatible base URL)."""

    kind = "gemini"
    format = "gemini"
    stream_only = False

    def _url(self, credential: Credential, model: str, action: str) -> str:
        return f"{credential.base_url}/v1beta/models/{quote(model, safe='')}:{action}"

    def _headers(self, credential: Credential, stream: bool) -> dict[str, str]:
        return base_headers(credential, {"x-goog-api-key": credential.api_key}, stream)

    def build_request(self, body: Mapping[str, Any], credential: Credential,
                      upstream_model: str, stream: bool) -> WireRequest:
        """``:streamGenerateContent?alt=sse`` when streaming, ``:generateContent`` otherwise."""
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        payload = {k: v for k, v in body.items() if k != "model"}
        return WireRequest("POST", self._url(credential, upstream_model, action),
                           self._headers(credential, stream), json_body(payload))

    def count_tokens_request(self, body: Mapping[str, Any], credential: Credential,
                             upstream_model: str) -> WireRequest:
        """``:countTokens``.  Bare ``contents`` when that is all there is; otherwise the whole
        request inside ``generateContentRequest`` (the countTokens body has no top-level
        systemInstruction/tools fields).  A body that is already wrapped (what
        `formats.gemini.encode_count_tokens_request` returns) is sent as it is."""
        payload = {k: v for k, v in body.items() if k != "model"}
        if "generateContentRequest" in payload:
            count_body: dict[str, Any] = {"generateContentRequest": payload["generateContentRequest"]}
        elif set(payload) <= {"contents"}:
            count_body = {"contents": payload.get("contents", [])}
        else:
            inner = {k: v for k, v in payload.items() if k not in ("generationConfig", "safetySettings")}
            count_body = {"generateContentRequest": {"model": f"models/{upstream_model}", **inner}}
        return WireRequest("POST", self._url(credential, upstream_model, "countTokens"),
                           self._headers(credential, False), json_body(count_body))

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProxyError:
        """Status first, then Google's ``status`` name and ``details`` (RetryInfo, ErrorInfo)."""
        doc = parse_json_error(body)
        if isinstance(doc, list) and doc:  # streamGenerateContent without alt=sse wraps in [...]
            doc = doc[0]
        err = doc.get("error") if isinstance(doc, dict) else None
        err = err if isinstance(err, dict) else {}
        details = [d for d in err.get("details", []) if isinstance(d, dict)] \
            if isinstance(err.get("details"), list) else []
        kind = _kind(status, err.get("status"), details)
        retry = _retry_delay(details)
        if retry is None:
            retry = retry_after_header(headers)
        return make_error(status, err.get("message"), kind=kind, retry_after=retry,
                          provider="Gemini")


def _detail(details: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for d in details:
        if d.get("@type") == _TYPE_PREFIX + name:
            return d
    return None


def _kind(status: int, google_status: Any, details: list[dict[str, Any]]) -> ErrorKind | None:
    info = _detail(details, "ErrorInfo")
    if info and info.get("reason") in _AUTH_REASONS:
        return ErrorKind.AUTHENTICATION
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status >= 500 or status in (401, 403):
        return None  # the status says it best (5xx keeps its own kind, 401/403 too)
    return _STATUS_KIND.get(google_status) if isinstance(google_status, str) else None


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    retry = _detail(details, "RetryInfo")
    if retry is not None:
        return parse_duration(retry.get("retryDelay"))
    info = _detail(details, "ErrorInfo")
    metadata = info.get("metadata") if info else None
    if isinstance(metadata, dict):
        return parse_duration(metadata.get("quotaResetDelay"))
    return None
