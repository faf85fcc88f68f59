"""The one blocking HTTP call of the OAuth code: POST a `TokenRequest` to a token endpoint.

Runs in an executor, never on the IOLoop (DESIGN.md principle 7).  Uses ``requests`` with an
explicit timeout and no redirects; an optional proxy URL (``proxy-url`` of the config) applies.
Every failure — refused connection, timeout, HTTP error, a body that is not a token answer —
becomes `oauth.TokenError` with a message that never contains a token.
"""

from __future__ import annotations

from typing import Any

import requests

from cliproxyd.credentials.oauth import TokenError, TokenRequest, parse_token_json

__all__ = ["TIMEOUT", "post_token"]

TIMEOUT = 30.0
_MAX_BODY = 1024 * 1024


def _proxies(proxy_url: str) -> dict[str, str] | None:
    if not proxy_url or proxy_url in ("direct", "none"):
        return {"http": "", "https": ""} if proxy_url else None
    return {"http": proxy_url, "https": proxy_url}


def post_token(request: TokenRequest, proxy_url: str = "", timeout: float = TIMEOUT) -> dict[str, Any]:
    """The token endpoint's JSON answer (it has an ``access_token``), or `TokenError`."""
    body, content_type = request.encoded()
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    try:
        response = requests.post(request.url, data=body, headers=headers, timeout=timeout,
                                 allow_redirects=False, proxies=_proxies(proxy_url), stream=True)
        raw = response.raw.read(_MAX_BODY + 1, decode_content=True)
    except requests.Timeout:
        raise TokenError("token endpoint timed out") from None
    except (requests.RequestException, OSError) as exc:
        raise TokenError(f"cannot reach the token endpoint: {type(exc).__name__}") from None
    if len(raw) > _MAX_BODY:
        raise TokenError("token endpoint answer is too large")
    return parse_token_json(response.status_code, raw)
