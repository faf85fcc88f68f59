"""Anthropic Messages upstream (``claude-api-key``): endpoints, auth and error classification.

``{base}/v1/messages`` and ``{base}/v1/messages/count_tokens`` with ``x-api-key`` and
``anthropic-version: 2023-06-01`` (issue 4).  A Claude Code subscription login (a credential with
``auth == "oauth"``, issue 7) sends ``Authorization: Bearer <access token>`` instead, with the
``anthropic-beta`` list Claude Code sends (``oauth-2025-04-20`` among it) and its client headers
(reference/cliproxyapi-translation.md, the Claude row of the upstream table); the API only
accepts such tokens when the first system block is Claude Code's identity line, which is put in
front of the client's own system prompt (the smallest part of the original's "cloaking").
Pure: no I/O.

Anthropic's error body: ``{"type": "error", "error": {"type": "rate_limit_error", "message":
"..."}, "request_id": "req_..."}``; types invalid_request_error 400, authentication_error 401,
billing_error 402, permission_error 403, not_found_error 404, request_too_large 413,
rate_limit_error 429, api_error 500, overloaded_error 529.  A 429 whose
``error.details.error_code`` is ``enforced_spend_limit_reached`` will not clear by waiting
seconds: it gets a 30-minute ``retry_after``.
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
    parse_json_error,
    retry_after_header,
)
from cliproxyd.routing.models import Credential

__all__ = ["ANTHROPIC_VERSION", "CLAUDE_CODE_IDENTITY", "OAUTH_BETAS", "ClaudeProvider",
           "merge_betas"]

ANTHROPIC_VERSION = "2023-06-01"
# What Claude Code sends with a subscription token; the API refuses such tokens without
# oauth-2025-04-20.
OAUTH_BETAS = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14"
CLAUDE_CODE_IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
_OAUTH_CLIENT = {"anthropic-dangerous-direct-browser-access": "true", "x-app": "cli",
                 "User-Agent": "claude-cli/2.1.220 (external, cli)"}
SPEND_LIMIT_RETRY = 30 * 60.0
# Fields /v1/messages/count_tokens accepts (anthropic SDK MessageCountTokensParams); anything else
# is a 400 ("Extra inputs are not permitted"), so generation-only fields (max_tokens, stream,
# temperature, metadata) are dropped.
_COUNT_FIELDS = ("messages", "system", "tools", "tool_choice", "thinking", "cache_control",
                 "output_config")

_TYPE_KIND = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "billing_error": ErrorKind.PERMISSION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.PAYLOAD_TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.UPSTREAM_ERROR,
    "overloaded_error": ErrorKind.UPSTREAM_UNAVAILABLE,
    "timeout_error": ErrorKind.UPSTREAM_TIMEOUT,
}


class ClaudeProvider:
    """The Anthropic Messages API (api.anthropic.com or a compatible base URL)."""

    kind = "claude"
    format = "claude"
    stream_only = False

    def _headers(self, credential: Credential, stream: bool) -> dict[str, str]:
        if credential.auth == "oauth":
            auth = {"Authorization": f"Bearer {credential.api_key}",
                    "anthropic-version": ANTHROPIC_VERSION, "anthropic-beta": OAUTH_BETAS,
                    **_OAUTH_CLIENT}
        else:
            auth = {"x-api-key": credential.api_key, "anthropic-version": ANTHROPIC_VERSION}
        return base_headers(credential, auth, stream)

    def build_request(self, body: Mapping[str, Any], credential: Credential,
                      upstream_model: str, stream: bool) -> WireRequest:
        """POST /v1/messages with the model set and ``stream`` set or removed."""
        payload = dict(body, model=upstream_model)
        if stream:
            payload["stream"] = True
        else:
            payload.pop("stream", None)
        if credential.auth == "oauth":
            payload["system"] = _with_identity(payload.get("system"))
        return WireRequest("POST", f"{credential.base_url}/v1/messages",
                           self._headers(credential, stream), json_body(payload))

    def with_client_headers(self, wire: WireRequest,
                            client_headers: Mapping[str, str]) -> WireRequest:
        """``wire`` with the client's ``anthropic-beta`` features added: Claude Code turns on
        features it relies on (interleaved thinking, 1M context, ...) with that header."""
        client = _beta(client_headers)
        if not client:
            return wire
        # An entry's own `headers` may spell the name in any case: one header goes out.
        headers = {k: v for k, v in wire.headers.items() if k.lower() != "anthropic-beta"}
        headers["anthropic-beta"] = merge_betas(_beta(wire.headers), client)
        return WireRequest(wire.method, wire.url, headers, wire.body)

    def count_tokens_request(self, body: Mapping[str, Any], credential: Credential,
                             upstream_model: str) -> WireRequest:
        """POST /v1/messages/count_tokens with only the fields that endpoint accepts."""
        payload = {k: body[k] for k in _COUNT_FIELDS if k in body}
        payload["model"] = upstream_model
        return WireRequest("POST", f"{credential.base_url}/v1/messages/count_tokens",
                           self._headers(credential, False), json_body(payload))

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProxyError:
        """Status first, then ``error.type``; ``retry-after`` header for 429/529."""
        doc = parse_json_error(body)
        err = doc.get("error") if isinstance(doc, dict) else None
        err = err if isinstance(err, dict) else {}
        err_type = err.get("type") if isinstance(err.get("type"), str) else ""
        kind = _TYPE_KIND.get(err_type)
        if status == 429:
            kind = ErrorKind.RATE_LIMITED
        elif status >= 500 and kind not in (ErrorKind.UPSTREAM_UNAVAILABLE, ErrorKind.UPSTREAM_TIMEOUT):
            kind = ErrorKind.UPSTREAM_UNAVAILABLE if status == 529 else None
        retry = retry_after_header(headers)
        if status == 429 and _spend_limit(err):
            retry = SPEND_LIMIT_RETRY
        return make_error(status, err.get("message"), kind=kind, retry_after=retry,
                          provider="Anthropic")


def merge_betas(own: str, client: str) -> str:
    """The provider's comma-separated beta list followed by the client's, each once, in order."""
    names = [b.strip() for b in f"{own},{client}".split(",")]
    return ",".join(dict.fromkeys(b for b in names if b))


def _beta(headers: Mapping[str, str]) -> str:
    return next((v for k, v in headers.items() if k.lower() == "anthropic-beta"), "")


def _with_identity(system: Any) -> list[Any]:
    """``system`` as blocks, led by Claude Code's identity line (once)."""
    if isinstance(system, str):
        blocks: list[Any] = [{"type": "text", "text": system}] if system else []
    else:
        blocks = list(system) if isinstance(system, list) else []
    first = blocks[0] if blocks else None
    if isinstance(first, dict) and first.get("text") == CLAUDE_CODE_IDENTITY:
        return blocks
    return [{"type": "text", "text": CLAUDE_CODE_IDENTITY}, *blocks]


def _spend_limit(err: Mapping[str, Any]) -> bool:
    details = err.get("details")
    return isinstance(details, dict) and details.get("error_code") == "enforced_spend_limit_reached"
