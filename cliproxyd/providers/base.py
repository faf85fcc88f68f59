"""The Provider interface and the helpers every upstream kind shares.

A provider turns an already-encoded upstream body (the pipeline ran the codec) into a
`WireRequest` for one credential, and turns an upstream error response into a `ProxyError`.  It
owns endpoints, auth headers and error classification for one upstream kind; it does no I/O,
reads no clock and never imports Tornado (`providers.transport` sends the bytes).

Error classification order (STYLE.md §6.2.5): HTTP status, then the provider's structured error
fields, substrings last.  The upstream body is never passed through: only a cleaned message
(secrets redacted, length capped) and the status survive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError, kind_for_status
from cliproxyd.routing.models import Credential

__all__ = [
    "MAX_MESSAGE",
    "Provider",
    "WireRequest",
    "base_headers",
    "clean_message",
    "json_body",
    "make_error",
    "parse_duration",
    "parse_json_error",
    "retry_after_header",
]

MAX_MESSAGE = 500
_EMPTY: Mapping[str, str] = MappingProxyType({})
_AUTH_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
# Key-shaped strings that an upstream may echo (OpenAI masks, others may not).
_SECRET = re.compile(r"\b(?:sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{10,}|Bearer\s+\S+)")


@dataclass(frozen=True)
class WireRequest:
    """One upstream HTTP request, ready to send.  ``repr`` hides the auth headers."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    body: bytes = b""

    def __repr__(self) -> str:
        shown = {k: ("***" if k.lower() in _AUTH_HEADERS else v) for k, v in self.headers.items()}
        return f"WireRequest({self.method} {self.url}, headers={shown}, {len(self.body)} bytes)"


class Provider(Protocol):
    """What `pipeline` needs from an upstream kind (see gemini.py, claude.py, codex.py,
    openai_compat.py)."""

    kind: str  # gemini | claude | codex | openai_compat (= Credential.kind)
    format: str  # codec name: gemini | claude | openai_responses | openai_chat
    stream_only: bool  # the upstream can only stream (the pipeline aggregates for plain clients)

    def build_request(self, body: Mapping[str, Any], credential: Credential,
                      upstream_model: str, stream: bool) -> WireRequest:
        """The generation request for an encoded body; sets the model and streaming fields."""
        ...

    def count_tokens_request(self, body: Mapping[str, Any], credential: Credential,
                             upstream_model: str) -> WireRequest | None:
        """The upstream's token-count request, or None if it has no count endpoint."""
        ...

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProxyError:
        """A non-2xx upstream answer as a `ProxyError` (status kept).  ``headers`` keys are
        lower-case."""
        ...


def json_body(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as upstreams expect it."""
    return jsontext.dumps_bytes(obj)


def base_headers(credential: Credential, auth: Mapping[str, str], stream: bool) -> dict[str, str]:
    """Content negotiation, then the auth header(s), then the entry's own `headers`."""
    headers = {"Content-Type": "application/json",
               "Accept": "text/event-stream" if stream else "application/json"}
    headers.update(auth)
    headers.update(credential.headers)
    return headers


def parse_json_error(body: bytes) -> Any:
    """The error body as JSON, or None when it is not JSON (HTML error pages, empty bodies)."""
    try:
        return json.loads(body.decode("utf-8", errors="replace")) if body else None
    except ValueError:
        return None


def parse_duration(text: Any) -> float | None:
    """Seconds from ``"34s"``, ``"1.5s"``, ``"250ms"``, ``"6m0s"``, ``"1h2m"`` or a bare number."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) if text >= 0 else None
    if not isinstance(text, str) or not text.strip():
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text.strip())
    if parts and "".join(n + u for n, u in parts) == text.strip():
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` or ``retry-after`` (delta-seconds form; an HTTP-date is ignored because
    this code has no clock)."""
    ms = parse_duration(headers.get("retry-after-ms", ""))
    if ms is not None:
        return ms / 1000.0
    value = headers.get("retry-after", "").strip()
    return float(value) if value.replace(".", "", 1).isdigit() else None


def clean_message(message: Any, fallback: str) -> str:
    """A message safe to show the client: text only, secrets redacted, capped in length."""
    if not isinstance(message, str) or not message.strip():
        return fallback
    text = _SECRET.sub("[redacted]", message.strip())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def make_error(status: int, message: str, *, kind: ErrorKind | None = None,
               retry_after: float | None = None, code: str | None = None,
               provider: str = "upstream") -> ProxyError:
    """The `ProxyError` for an upstream error, keeping the upstream status."""
    return ProxyError(kind or kind_for_status(status), clean_message(message, _default(status, provider)),
                      status=status, code=code, retry_after=retry_after)


def _default(status: int, provider: str) -> str:
    return f"{provider} returned HTTP {status}"
