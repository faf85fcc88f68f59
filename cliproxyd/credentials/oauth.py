"""OAuth login mechanics, pure: PKCE, states, authorize URLs, token requests and responses.

Owns (issue 7, reference/cliproxyapi-surface.md §7.1–7.4): the PKCE verifier/challenge (S256,
96 random bytes), state validation (≤128 chars of ``[A-Za-z0-9_.-]``, no ``..``), the table of
login flows with their 10-minute expiry, the authorize URL, the token request bodies (code
exchange and refresh) as data, JWT claim parsing (no signature check: the token came straight
from the token endpoint over TLS), RFC 3339 expiry fields and the refresh schedule.

Rules: no I/O, no Tornado, no clock reads (every time is a ``now`` argument, Unix seconds), no
module-level mutable state.  Randomness comes from `secrets`.  Provider specifics live in
`cliproxyd.credentials.claude` and `cliproxyd.credentials.codex` (`ProviderSpec` below).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "FLOW_TTL",
    "Flow",
    "FlowError",
    "Flows",
    "ProviderSpec",
    "TokenError",
    "TokenRequest",
    "authorize_url",
    "challenge_s256",
    "format_time",
    "jwt_claims",
    "new_state",
    "new_verifier",
    "parse_callback_url",
    "parse_time",
    "redirect_uri",
    "safe_name_part",
    "valid_state",
    "with_query",
]

FLOW_TTL = 600.0  # pending logins expire after 10 minutes (reference §7.1)
_STATE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_FRACTION = re.compile(r"(\.\d{6})\d+")


class TokenError(Exception):
    """The token endpoint failed or answered something unusable; the message is safe to show."""


class FlowError(Exception):
    """A callback or status query that cannot be served: ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- provider data ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ProviderSpec:
    """What one OAuth provider needs beyond its `config.OAuthProvider` endpoints.

    ``name`` is the auth-file ``type`` and the config key; ``session`` the name in management
    URLs and callback paths (``anthropic`` for Claude); ``aliases`` the provider names
    ``oauth-callback`` accepts.  ``lead`` is how long before expiry a token is refreshed.
    """

    name: str
    session: str
    aliases: tuple[str, ...]
    redirect_path: str
    scope: str
    authorize_extra: Mapping[str, str]
    json_body: bool
    lead: float
    refresh_scope: str = ""


def redirect_uri(spec: ProviderSpec, port: int) -> str:
    """The registered loopback redirect URI, e.g. ``http://localhost:54545/callback``."""
    return f"http://localhost:{port}{spec.redirect_path}"


def authorize_url(spec: ProviderSpec, endpoints: Any, flow: Flow) -> str:
    """The URL the user opens: ``response_type=code``, client id, absolute redirect URI, scope,
    S256 challenge, the flow's state, and the provider's extra parameters."""
    params = {"client_id": endpoints.client_id, "response_type": "code",
              "redirect_uri": flow.redirect_uri, "scope": spec.scope,
              "code_challenge": challenge_s256(flow.verifier), "code_challenge_method": "S256",
              "state": flow.state}
    params.update(spec.authorize_extra)
    return with_query(endpoints.authorize_url, params)


def safe_name_part(text: str) -> str:
    """``text`` made safe for an auth-file name (letters, digits, ``@+=,._-`` kept)."""
    cleaned = re.sub(r"[^A-Za-z0-9@+=,._-]", "_", text.strip())
    return cleaned.replace("..", "_")[:120]


# -- PKCE and state ---------------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """A PKCE code verifier: 96 random bytes, base64url without padding (128 characters)."""
    return _b64url(secrets.token_bytes(96))


def challenge_s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636 §4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state() -> str:
    """A fresh state value: 32 hex characters, as the original's Claude and Codex flows use."""
    return secrets.token_hex(16)


def valid_state(state: Any) -> bool:
    """Whether ``state`` may be used at all (it is echoed into logs and file names)."""
    return isinstance(state, str) and bool(_STATE.fullmatch(state)) and ".." not in state


# -- URLs -------------------------------------------------------------------------------------

def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query (existing parameters kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def parse_callback_url(url: str) -> dict[str, str]:
    """``code``, ``state`` and ``error`` from a redirect URL pasted by hand ("" when absent).

    The query wins; a fragment is read too (some pages put the answer there).  ``error`` falls
    back to ``error_description``.
    """
    parts = urlsplit(url.strip())
    if not parts.query and not parts.fragment:
        raise FlowError(400, "invalid redirect_url")
    found: dict[str, str] = {}
    for source in (parts.fragment, parts.query):
        found.update({k: v for k, v in parse_qsl(source, keep_blank_values=True)})
    error = found.get("error") or found.get("error_description", "")
    return {"code": found.get("code", ""), "state": found.get("state", ""), "error": error}


# -- token requests ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenRequest:
    """A POST to a token endpoint: ``fields`` go as a JSON object (``as_json``) or a form."""

    url: str
    fields: Mapping[str, str] = field(repr=False)
    as_json: bool = False

    def encoded(self) -> tuple[bytes, str]:
        """(body, content type)."""
        if self.as_json:
            return json.dumps(dict(self.fields)).encode(), "application/json"
        return urlencode(dict(self.fields)).encode(), "application/x-www-form-urlencoded"


def parse_token_json(status: int, body: bytes) -> dict[str, Any]:
    """A token endpoint's answer as a dict with an ``access_token``, else `TokenError`.

    Error messages carry the endpoint's ``error``/``error_description`` (never a token).
    """
    try:
        doc = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        doc = None
    if status < 200 or status >= 300:
        raise TokenError(f"token endpoint returned HTTP {status}{_error_text(doc)}")
    if not isinstance(doc, dict):
        raise TokenError("token endpoint returned a body that is not a JSON object")
    token = doc.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise TokenError("token endpoint answer has no access_token")
    return doc


def _error_text(doc: Any) -> str:
    if not isinstance(doc, dict):
        return ""
    err = doc.get("error")
    if isinstance(err, dict):  # {"error": {"type", "message"}} (Anthropic)
        err = err.get("type") or err.get("message")
    desc = doc.get("error_description")
    parts = [str(p)[:200] for p in (err, desc) if isinstance(p, str) and p]
    return f": {' - '.join(parts)}" if parts else ""


# -- JWT and time -----------------------------------------------------------------------------

def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT as a dict ({} when it is not a readable JWT)."""
    pieces = token.split(".") if isinstance(token, str) else []
    if len(pieces) != 3:
        return {}
    payload = pieces[1] + "=" * (-len(pieces[1]) % 4)
    try:
        value = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        return {}
    return value if isinstance(value, dict) else {}


def format_time(ts: float) -> str:
    """RFC 3339 with the local UTC offset, seconds precision (the original's ``expired``)."""
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def parse_time(value: Any) -> float | None:
    """Unix seconds from an RFC 3339 string (any fraction length, ``Z`` or offset) or a number
    (seconds, or milliseconds when it is that large); None when unreadable or absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def refresh_due_at(expires_at: float | None, last_refresh: float | None, lead: float,
                   interval: float | None = None) -> float | None:
    """When a token should be refreshed (reference §7.4), or None when never.

    ``interval`` (the file's ``refresh_interval_seconds``) overrides everything; else expiry
    minus the provider's lead time; with no expiry, ``lead`` after the last refresh.
    """
    if interval and interval > 0:
        return (last_refresh or 0.0) + interval
    if expires_at is not None:
        return expires_at - lead
    if last_refresh is not None:
        return last_refresh + lead
    return None


# -- login flows ------------------------------------------------------------------------------

@dataclass
class Flow:
    """One login in progress or finished: the state the provider echoes back and our secrets."""

    state: str
    provider: str  # "claude" | "codex"
    verifier: str = field(repr=False)
    redirect_uri: str
    expires: float
    status: str = "wait"  # wait | exchanging | ok | error
    error: str = ""
    file_name: str = ""


class Flows:
    """The table of login flows by state, each expiring `FLOW_TTL` after its last change.

    A finished flow stays (``ok`` or ``error``) until it expires, so `get-auth-status` can say
    how it ended; a state never issued (or expired) is an error, never ``ok``.
    """

    def __init__(self, ttl: float = FLOW_TTL) -> None:
        self.ttl = ttl
        self._flows: dict[str, Flow] = {}
        self._timed_out: dict[str, float] = {}  # state → until when "timeout" is reported

    def start(self, provider: str, redirect_uri: str, now: float) -> Flow:
        """Register a new pending flow with a fresh state and verifier."""
        self._prune(now)
        flow = Flow(new_state(), provider, new_verifier(), redirect_uri, now + self.ttl)
        self._flows[flow.state] = flow
        return flow

    def _prune(self, now: float) -> None:
        for state in [s for s, f in self._flows.items() if f.expires <= now]:
            if self._flows.pop(state).status == "wait":  # never called back: say so a while
                self._timed_out[state] = now + self.ttl
        for state in [s for s, until in self._timed_out.items() if until <= now]:
            del self._timed_out[state]

    def get(self, state: str, now: float) -> Flow | None:
        """The live flow for ``state`` (None when unknown or expired)."""
        self._prune(now)
        return self._flows.get(state)

    def pending(self, provider: str, now: float) -> bool:
        """Whether any flow of ``provider`` still waits for its callback."""
        self._prune(now)
        return any(f.provider == provider and f.status in ("wait", "exchanging")
                   for f in self._flows.values())

    def status(self, state: str, now: float) -> tuple[str, str]:
        """(``wait`` | ``ok`` | ``error``, message) for get-auth-status."""
        if not state:
            raise FlowError(400, "state is required")
        if not valid_state(state):
            raise FlowError(400, "invalid state")
        flow = self.get(state, now)
        if flow is None:
            if state in self._timed_out:
                return "error", "Timeout waiting for OAuth callback"
            return "error", "unknown or expired state"
        if flow.status in ("wait", "exchanging"):
            return "wait", ""
        return flow.status, flow.error

    def claim(self, state: str, provider: str | None, now: float) -> Flow:
        """Take a pending flow for its code exchange; `FlowError` when it is not pending.

        Only one callback can claim a flow: a second one (a replay) is refused.
        """
        if not state:
            raise FlowError(400, "state is required")
        if not valid_state(state):
            raise FlowError(400, "invalid state")
        flow = self.get(state, now)
        if flow is None:
            raise FlowError(404, "unknown or expired state")
        if provider is not None and flow.provider != provider:
            raise FlowError(400, "provider does not match state")
        if flow.status != "wait":
            raise FlowError(409, "oauth flow is not pending")
        flow.status = "exchanging"
        return flow

    def succeed(self, flow: Flow, file_name: str, now: float) -> None:
        flow.status, flow.error, flow.file_name = "ok", "", file_name
        flow.expires = now + self.ttl

    def fail(self, flow: Flow, message: str, now: float) -> None:
        """Mark the flow failed (renews its expiry so the error can be read)."""
        flow.status, flow.error = "error", message
        flow.expires = now + self.ttl
