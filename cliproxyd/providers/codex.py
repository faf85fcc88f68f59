"""OpenAI Responses upstream (``codex-api-key``): endpoint, auth and error classification.

``{base}/responses`` with ``Authorization: Bearer <key>``; default base
``https://api.openai.com/v1`` (issue 4).  There is no count endpoint: the pipeline estimates.
A ChatGPT subscription login (``auth == "oauth"``, issue 7) calls the ChatGPT Codex backend
(``oauth.codex.api-base-url``, default ``https://chatgpt.com/backend-api/codex``) with
``Chatgpt-Account-Id``, ``Originator`` and the Codex CLI's ``User-Agent``; that backend only
streams (the credential says ``stream_only``) and wants ``store: false`` and an
``instructions`` field, and refuses sampling and length fields (reference/
cliproxyapi-translation.md §4.11).  Pure: no I/O.

OpenAI's error body: ``{"error": {"message": "...", "type": "invalid_request_error", "param":
null, "code": "invalid_api_key"}}``; the ChatGPT Codex backend also answers
``{"error": {"type": "usage_limit_reached", "message": "...", "resets_in_seconds": 1234}}`` and
sometimes ``{"detail": "..."}``.  `classify_openai_error` is shared with `openai_compat`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

__all__ = ["QUOTA_RETRY", "CodexProvider", "classify_openai_error"]

QUOTA_RETRY = 30 * 60.0  # insufficient_quota does not clear in seconds: cool the key 30 min
_OAUTH_CLIENT = {"Originator": "codex-tui",
                 "User-Agent": "codex-tui/0.146.0 (Mac OS 26.5.0; arm64) iTerm.app/3.6.10 "
                               "(codex-tui; 0.146.0)"}
# Fields the ChatGPT Codex backend refuses (the original deletes them).
_OAUTH_DROP = ("max_output_tokens", "max_completion_tokens", "temperature", "top_p",
               "truncation", "user", "previous_response_id", "prompt_cache_retention",
               "safety_identifier", "stream_options")

_CODE_KIND = {
    "invalid_api_key": ErrorKind.AUTHENTICATION,
    "model_not_found": ErrorKind.NOT_FOUND,
    "context_length_exceeded": ErrorKind.INVALID_REQUEST,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "insufficient_quota": ErrorKind.RATE_LIMITED,
}


def bearer(credential: Credential) -> dict[str, str]:
    """``Authorization: Bearer <key>``, omitted for an empty key (keyless compat servers)."""
    return {"Authorization": f"Bearer {credential.api_key}"} if credential.api_key else {}


def classify_openai_error(status: int, headers: Mapping[str, str], body: bytes,
                          provider: str) -> ProxyError:
    """An OpenAI-shaped (or unshaped) error body as a `ProxyError`, status kept."""
    doc = parse_json_error(body)
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, str):  # some compatible servers send {"error": "text"}
        err = {"message": err}
    if not isinstance(err, dict):
        err = {"message": _loose_message(doc)}
    code = err.get("code") if isinstance(err.get("code"), str) else None
    err_type = err.get("type") if isinstance(err.get("type"), str) else None
    kind = _kind(status, code, err_type)
    retry = retry_after_header(headers)
    if err_type == "usage_limit_reached":
        retry = parse_duration(err.get("resets_in_seconds")) or retry
    elif "insufficient_quota" in (code, err_type) and retry is None:
        retry = QUOTA_RETRY
    return make_error(status, err.get("message"), kind=kind, retry_after=retry, provider=provider)


def _kind(status: int, code: str | None, err_type: str | None) -> ErrorKind | None:
    if status == 429 or err_type == "usage_limit_reached":
        return ErrorKind.RATE_LIMITED
    if status >= 500 or status in (401, 403):
        return None  # the status decides
    return _CODE_KIND.get(code or "")


def _loose_message(doc: Any) -> Any:
    """``{"detail": ...}`` (FastAPI-style servers, ChatGPT backend) or ``{"message": ...}``."""
    if isinstance(doc, dict):
        for key in ("detail", "message"):
            if isinstance(doc.get(key), str):
                return doc[key]
    return None


def _chatgpt_body(payload: dict[str, Any]) -> dict[str, Any]:
    """The body the ChatGPT Codex backend accepts: ``store: false``, ``instructions`` present,
    a string ``input`` wrapped as one user message, refused fields removed."""
    out = {k: v for k, v in payload.items() if k not in _OAUTH_DROP}
    out["store"] = False
    out.setdefault("instructions", "")
    if isinstance(out.get("input"), str):
        out["input"] = [{"type": "message", "role": "user",
                         "content": [{"type": "input_text", "text": out["input"]}]}]
    return out


class CodexProvider:
    """The OpenAI Responses API (api.openai.com/v1 or a compatible base URL)."""

    kind = "codex"
    format = "openai_responses"
    stream_only = False

    def build_request(self, body: Mapping[str, Any], credential: Credential,
                      upstream_model: str, stream: bool) -> WireRequest:
        """POST {base}/responses with the model and ``stream`` set."""
        payload = dict(body, model=upstream_model, stream=stream)
        if not stream:
            payload.pop("stream")
        auth = bearer(credential)
        if credential.auth == "oauth":
            payload = _chatgpt_body(payload)
            auth = {**auth, **_OAUTH_CLIENT}
            if credential.account_id:
                auth["Chatgpt-Account-Id"] = credential.account_id
        return WireRequest("POST", f"{credential.base_url}/responses",
                           base_headers(credential, auth, stream), json_body(payload))

    def count_tokens_request(self, body: Mapping[str, Any], credential: Credential,
                             upstream_model: str) -> None:
        """No count endpoint upstream: the pipeline estimates locally."""
        return

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProxyError:
        """See `classify_openai_error`."""
        return classify_openai_error(status, headers, body, "OpenAI")
