"""The one blocking HTTP call of the OAuth code: a `TokenRequest` sent to a token endpoint.

Runs in an executor, never on the IOLoop (DESIGN.md principle 7).  The exchange goes through
requests-oauthlib's `OAuth2Session` (``fetch_token`` for the authorization code with its PKCE
verifier, ``refresh_token`` for refreshes), so the grant bodies are built and the answers checked
by oauthlib.  Two provider facts are layered on top:

* Anthropic's token endpoint takes a JSON body, not a form: `_TokenSession` sends the fields
  oauthlib prepared as JSON when the request says so.
* Extra fields the provider wants (Claude's ``state``, Codex's refresh ``scope``) are added to
  the prepared body by compliance hooks, so oauthlib's own scope bookkeeping stays out of it.

oauthlib refuses plain-HTTP token endpoints; a local one (a test server, an air-gapped mirror) is
allowed with oauthlib's own switch, ``OAUTHLIB_INSECURE_TRANSPORT=1`` in the environment.  Every
failure — refused connection, timeout, HTTP error, a body that is not a token answer — becomes
`oauth.TokenError` with a message that never contains a token; requests-oauthlib's own DEBUG
logging (which prints token bodies) is kept quiet by the daemon (``daemon._CHATTY_LOGGERS``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import requests
from oauthlib.oauth2 import InsecureTransportError, OAuth2Error
from requests_oauthlib import OAuth2Session

from cliproxyd.credentials.oauth import TokenError, TokenRequest, parse_token_json

__all__ = ["TIMEOUT", "post_token"]

TIMEOUT = 30.0
_MAX_BODY = 1024 * 1024
# Fields oauthlib puts in the body itself for each grant; the rest are added by a hook.
_PREPARED = {
    "authorization_code": {"grant_type", "code", "redirect_uri", "client_id", "code_verifier"},
    "refresh_token": {"grant_type", "refresh_token", "client_id"},
}


class _TokenSession(OAuth2Session):
    """An `OAuth2Session` that can send the token request's fields as a JSON object."""

    def __init__(self, client_id: str, redirect_uri: str | None, as_json: bool) -> None:
        super().__init__(client_id=client_id, redirect_uri=redirect_uri)
        self._as_json = as_json
        self.answer: dict[str, Any] | None = None

    def request(self, method: str, url: str, data: Any = None, headers: Any = None,
                withhold_token: bool = False, **kwargs: Any) -> requests.Response:
        if self._as_json and isinstance(data, dict):
            kwargs.pop("json", None)  # requests' post() passes json=None along
            headers = {**(headers or {}), "Content-Type": "application/json"}
            return super().request(method, url, json=data, headers=headers,
                                   withhold_token=True, **kwargs)
        return super().request(method, url, data=data, headers=headers,
                               withhold_token=withhold_token, **kwargs)


def _proxies(proxy_url: str) -> dict[str, str] | None:
    if not proxy_url or proxy_url in ("direct", "none"):
        return {"http": "", "https": ""} if proxy_url else None
    return {"http": proxy_url, "https": proxy_url}


def _session(request: TokenRequest, grant: str) -> _TokenSession:
    fields = dict(request.fields)
    session = _TokenSession(fields.get("client_id", ""), fields.get("redirect_uri"),
                            request.as_json)
    extra = {k: v for k, v in fields.items() if k not in _PREPARED[grant]}

    def add_extra_fields(url: str, headers: dict, body: Any) -> tuple[str, dict, Any]:
        if isinstance(body, dict):  # fetch_token hands over {"data": {...}}
            body["data"] = {**body["data"], **extra}
        elif extra:  # refresh_token hands over the urlencoded body
            body = f"{body}&{urlencode(extra)}" if body else urlencode(extra)
        return url, headers, body

    def check_answer(response: requests.Response) -> requests.Response:
        # Before oauthlib parses it: our messages for HTTP errors and garbage, never a token.
        if len(response.content) > _MAX_BODY:
            raise TokenError("token endpoint answer is too large")
        session.answer = parse_token_json(response.status_code, response.content)
        return response

    session.register_compliance_hook("access_token_request", add_extra_fields)
    session.register_compliance_hook("refresh_token_request", add_extra_fields)
    session.register_compliance_hook("access_token_response", check_answer)
    session.register_compliance_hook("refresh_token_response", check_answer)
    return session


def post_token(request: TokenRequest, proxy_url: str = "", timeout: float = TIMEOUT) -> dict[str, Any]:
    """The token endpoint's JSON answer (it has an ``access_token``), or `TokenError`."""
    fields = dict(request.fields)
    grant = fields.get("grant_type", "")
    if grant not in _PREPARED:
        raise TokenError(f"unsupported grant type {grant!r}")
    session = _session(request, grant)
    options: dict[str, Any] = dict(timeout=timeout, proxies=_proxies(proxy_url))
    try:
        if grant == "authorization_code":
            session.fetch_token(request.url, code=fields["code"], include_client_id=True,
                                code_verifier=fields.get("code_verifier"), **options)
        else:
            session.refresh_token(request.url, refresh_token=fields["refresh_token"],
                                  client_id=fields.get("client_id"), **options)
    except TokenError:
        raise
    except InsecureTransportError:
        raise TokenError("the token endpoint must use https (set OAUTHLIB_INSECURE_TRANSPORT=1 "
                         "to allow plain HTTP, e.g. for a local test server)") from None
    except requests.Timeout:
        raise TokenError("token endpoint timed out") from None
    except (requests.RequestException, OSError) as exc:
        raise TokenError(f"cannot reach the token endpoint: {type(exc).__name__}") from None
    except (OAuth2Error, ValueError, Warning) as exc:  # oauthlib's verdict on the answer
        raise TokenError(f"token endpoint answer refused: {type(exc).__name__}") from None
    finally:
        session.close()
    assert session.answer is not None  # set by check_answer before oauthlib accepted it
    return session.answer
