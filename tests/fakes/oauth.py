"""A fake OAuth provider for tests: authorize, token and userinfo endpoints on 127.0.0.1.

`FakeOAuth(kind)` runs a Tornado app in its own thread (like `fakes.upstreams.FakeUpstream`) and
speaks the real providers' protocol as reference §7.2 describes it:

* ``GET /authorize`` checks ``response_type=code``, the client id, an absolute ``redirect_uri``,
  ``code_challenge`` with ``code_challenge_method=S256`` and a ``state``, then "consents" at once:
  302 to ``redirect_uri?code=...&state=...`` (or ``error=access_denied`` when ``deny`` is set).
* ``POST /token`` wants a JSON body for ``claude`` and a form for ``codex``.  The code grant
  checks the code (single use), client id, the repeated ``redirect_uri`` and that
  S256(``code_verifier``) equals the challenge; the refresh grant checks the refresh token.  It
  answers the provider's token JSON: Claude's carries ``account.email_address``; Codex's an
  ``id_token`` JWT with the email, ``chatgpt_account_id`` and ``chatgpt_plan_type`` claims.
  `mode` makes it fail: ``fail`` (400 invalid_grant), ``garbage`` (200, not JSON), ``500``.
* ``GET /userinfo`` answers ``{"email"}`` for a Bearer access token it issued.

Every token request is recorded (`token_requests`); issued tokens rotate (``...-1``, ``-2``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import tornado.web

from tests.fakes.server import BackgroundServer

__all__ = ["FakeOAuth", "TokenCall", "make_jwt"]

CLIENT_IDS = {"claude": "test-claude-client", "codex": "app_test_codex"}


def make_jwt(claims: dict[str, Any]) -> str:
    """An unsigned-looking JWT carrying ``claims`` (the proxy reads claims, never verifies)."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenCall:
    """One POST /token as received: its content type and fields."""

    content_type: str
    fields: dict[str, Any]


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    state: str


@dataclass
class _State:
    kind: str
    email: str = "alice@example.com"
    account_id: str = "acct-1234"
    plan: str = "plus"
    expires_in: int = 8 * 3600
    mode: str = "ok"
    deny: bool = False
    counter: int = 0
    grants: dict[str, _Grant] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: list[str] = field(default_factory=list)
    token_requests: list[TokenCall] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)


class _Authorize(tornado.web.RequestHandler):
    def initialize(self, state: _State) -> None:
        self.s = state

    def get(self) -> None:
        q = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        self.s.authorize_requests.append(q)
        problem = self._problem(q)
        if problem:
            self.set_status(400)
            self.finish({"error": "invalid_request", "error_description": problem})
            return
        if self.s.deny:
            self.redirect(q["redirect_uri"] + "?" + urlencode(
                {"error": "access_denied", "state": q["state"]}))
            return
        self.s.counter += 1
        code = f"code-{self.s.counter}"
        self.s.grants[code] = _Grant(q["client_id"], q["redirect_uri"], q["code_challenge"], q["state"])
        self.redirect(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))

    def _problem(self, q: dict[str, str]) -> str:
        if q.get("response_type") != "code":
            return "response_type must be code"
        if q.get("client_id") != CLIENT_IDS[self.s.kind]:
            return "unknown client_id"
        uri = urlsplit(q.get("redirect_uri", ""))
        if uri.scheme not in ("http", "https") or not uri.netloc:
            return "redirect_uri must be absolute"
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return "PKCE S256 required"
        return "" if q.get("state") else "state required"


class _Token(tornado.web.RequestHandler):
    def initialize(self, state: _State) -> None:
        self.s = state

    def _fields(self) -> dict[str, Any] | None:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip()
        self.s.token_requests.append(TokenCall(ctype, {}))
        try:
            if ctype == "application/json":
                fields = json.loads(self.request.body)
            else:
                fields = dict(parse_qsl(self.request.body.decode()))
        except ValueError:
            return None
        self.s.token_requests[-1] = TokenCall(ctype, fields)
        wanted = "application/json" if self.s.kind == "claude" else "application/x-www-form-urlencoded"
        return fields if ctype == wanted and isinstance(fields, dict) else None

    def post(self) -> None:
        fields = self._fields()
        if self.s.mode == "500":
            self.set_status(500)
            self.finish("<html>internal error</html>")
            return
        if self.s.mode == "garbage":
            self.finish("<html>this is not a token</html>")
            return
        if fields is None or self.s.mode == "fail" or fields.get("client_id") != CLIENT_IDS[self.s.kind]:
            self._invalid("invalid_grant" if self.s.mode == "fail" else "invalid_request")
            return
        ok = self._code_ok(fields) if fields.get("grant_type") == "authorization_code" \
            else self._refresh_ok(fields)
        if not ok:
            self._invalid("invalid_grant")
            return
        self.finish(self._tokens())

    def _invalid(self, error: str) -> None:
        self.set_status(400)
        self.finish({"error": error, "error_description": "rejected by the fake"})

    def _code_ok(self, f: dict[str, Any]) -> bool:
        grant = self.s.grants.pop(str(f.get("code")), None)
        if grant is None or f.get("redirect_uri") != grant.redirect_uri:
            return False
        if self.s.kind == "claude" and f.get("state") != grant.state:
            return False
        return _s256(str(f.get("code_verifier", ""))) == grant.challenge

    def _refresh_ok(self, f: dict[str, Any]) -> bool:
        if f.get("grant_type") != "refresh_token":
            return False
        if self.s.kind == "codex" and f.get("scope") != "openid profile email":
            return False
        token = str(f.get("refresh_token"))
        if token not in self.s.refresh_tokens:
            return False
        self.s.refresh_tokens.discard(token)  # refresh tokens rotate
        return True

    def _tokens(self) -> dict[str, Any]:
        self.s.counter += 1
        n = self.s.counter
        prefix = "sk-ant-oat01-fake" if self.s.kind == "claude" else "codex-access"
        access, refresh = f"{prefix}-{n}", f"refresh-{self.s.kind}-{n}"
        self.s.access_tokens.append(access)
        self.s.refresh_tokens.add(refresh)
        doc: dict[str, Any] = {"token_type": "Bearer", "access_token": access,
                               "refresh_token": refresh, "expires_in": self.s.expires_in}
        if self.s.kind == "claude":
            doc["account"] = {"uuid": "acc-uuid", "email_address": self.s.email}
            doc["organization"] = {"uuid": "org-uuid", "name": "Org"}
        else:
            doc["id_token"] = make_jwt({"email": self.s.email, "https://api.openai.com/auth": {
                "chatgpt_account_id": self.s.account_id, "chatgpt_plan_type": self.s.plan}})
        return doc


class _UserInfo(tornado.web.RequestHandler):
    def initialize(self, state: _State) -> None:
        self.s = state

    def get(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.s.access_tokens:
            self.set_status(401)
            self.finish({"error": "invalid_token"})
            return
        self.finish({"email": self.s.email})


class FakeOAuth(BackgroundServer):
    """The fake provider in its own thread; see the module docstring."""

    def __init__(self, kind: str) -> None:
        self.state = _State(kind)
        self.kind = kind
        args = {"state": self.state}
        super().__init__(lambda: tornado.web.Application([
            (r"/authorize", _Authorize, args), (r"/token", _Token, args),
            (r"/userinfo", _UserInfo, args)]), f"fake-oauth-{kind}")

    def config(self, api_base_url: str, redirect_port: int) -> dict[str, Any]:
        """The ``oauth.<kind>`` config block pointing at this fake."""
        return {"authorize-url": f"{self.url}/authorize", "token-url": f"{self.url}/token",
                "api-base-url": api_base_url, "redirect-port": redirect_port,
                "client-id": CLIENT_IDS[self.kind], "userinfo-url": f"{self.url}/userinfo"}

    @property
    def token_requests(self) -> list[TokenCall]:
        return list(self.state.token_requests)

    @property
    def access_tokens(self) -> list[str]:
        return list(self.state.access_tokens)

    def accept_refresh_token(self, token: str) -> None:
        """Let a refresh token written by hand be redeemed once."""
        self.state.refresh_tokens.add(token)
