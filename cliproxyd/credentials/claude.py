"""Claude Code subscription logins: provider data, token requests and the auth-file fields.

Reference §7.2–7.4 (CLIProxyAPI ``internal/auth/claude``): authorize at claude.ai with
``code=true``; the code exchange and the refresh post a **JSON** body; a callback code may end
in ``#<state>`` (the part after ``#`` is sent as ``state``); the email is
``account.email_address`` of the token answer; files are ``claude-<email>.json`` with ``type``,
``access_token``, ``refresh_token``, ``id_token`` (empty), ``email``, ``expired``,
``last_refresh``; tokens refresh 4 hours before expiry.  Pure: no I/O, no clock.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from cliproxyd.credentials.oauth import (
    ProviderSpec,
    TokenRequest,
    format_time,
    safe_name_part,
)

__all__ = ["SPEC", "auth_fields", "code_request", "file_name", "refresh_request"]

SPEC = ProviderSpec(
    name="claude", session="anthropic", aliases=("anthropic", "claude"),
    redirect_path="/callback",
    scope="user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload",
    authorize_extra=MappingProxyType({"code": "true"}), json_body=True, lead=4 * 3600.0,
)


def code_request(endpoints: Any, code: str, verifier: str, redirect_uri: str,
                 state: str) -> TokenRequest:
    """The authorization-code exchange (JSON body)."""
    code, sep, tail = code.partition("#")
    return TokenRequest(endpoints.token_url, {
        "code": code, "state": tail if sep and tail else state,
        "grant_type": "authorization_code", "client_id": endpoints.client_id,
        "redirect_uri": redirect_uri, "code_verifier": verifier,
    }, as_json=True)


def refresh_request(endpoints: Any, refresh_token: str) -> TokenRequest:
    """The refresh-token grant (JSON body)."""
    return TokenRequest(endpoints.token_url, {
        "client_id": endpoints.client_id, "grant_type": "refresh_token",
        "refresh_token": refresh_token}, as_json=True)


def auth_fields(doc: dict[str, Any], now: float, previous: dict[str, Any] | None = None) -> dict:
    """The auth file's token fields from a token answer (``previous`` fills what it lacks)."""
    old = previous or {}
    account = doc.get("account") if isinstance(doc.get("account"), dict) else {}
    email = account.get("email_address") if isinstance(account.get("email_address"), str) else ""
    fields = {
        "type": "claude", "access_token": doc["access_token"],
        "refresh_token": doc.get("refresh_token") or old.get("refresh_token", ""),
        "id_token": "", "email": email or old.get("email", ""),
        "last_refresh": format_time(now),
    }
    expires_in = doc.get("expires_in")
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        fields["expired"] = format_time(now + expires_in)
    return fields


def file_name(fields: dict[str, Any]) -> str:
    """``claude-<email>.json``."""
    return f"claude-{safe_name_part(fields.get('email') or 'account')}.json"
