"""OpenAI-compatible Chat Completions upstream (``openai-compatibility``).

``{base}/chat/completions`` with ``Authorization: Bearer <key>`` per ``api-key-entries`` entry
(omitted when the key is empty).  A streaming request asks for
``stream_options.include_usage`` so usage can be counted (issue 4).  No count endpoint.  Errors
are OpenAI-shaped when the server is well behaved and anything at all otherwise; both go through
`codex.classify_openai_error`.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cliproxyd.errors import ProxyError
from cliproxyd.providers.base import WireRequest, base_headers, json_body
from cliproxyd.providers.codex import bearer, classify_openai_error
from cliproxyd.routing.models import Credential

__all__ = ["OpenAICompatProvider"]


class OpenAICompatProvider:
    """Any server speaking OpenAI Chat Completions."""

    kind = "openai_compat"
    format = "openai_chat"
    stream_only = False

    def build_request(self, body: Mapping[str, Any], credential: Credential,
                      upstream_model: str, stream: bool) -> WireRequest:
        """POST {base}/chat/completions; streaming adds ``stream_options.include_usage``."""
        payload = dict(body, model=upstream_model)
        if stream:
            payload["stream"] = True
            options = payload.get("stream_options")
            payload["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                         "include_usage": True}
        else:
            payload.pop("stream", None)
            payload.pop("stream_options", None)  # only allowed with stream: true
        headers = base_headers(credential, bearer(credential), stream)
        if stream:
            headers.setdefault("Cache-Control", "no-cache")
        return WireRequest("POST", f"{credential.base_url}/chat/completions", headers,
                           json_body(payload))

    def count_tokens_request(self, body: Mapping[str, Any], credential: Credential,
                             upstream_model: str) -> None:
        """No count endpoint: the pipeline estimates locally."""
        return

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProxyError:
        """See `codex.classify_openai_error`."""
        return classify_openai_error(status, headers, body, "upstream")
