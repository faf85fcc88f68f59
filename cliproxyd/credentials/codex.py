"""ChatGPT (Codex) subscription logins: provider data, token requests and the auth-file fields.

Reference §7.2–7.4 (CLIProxyAPI ``internal/auth/codex``): authorize at auth.openai.com with
``prompt=login``, ``id_token_add_organizations=true``, ``codex_cli_simplified_flow=true``; the
code exchange and the refresh post a **form** (the refresh adds ``scope=openid profile email``);
the email, ChatGPT account id and plan come from the ``id_token`` claims (the account id and plan
under ``https://api.openai.com/auth``); files are ``codex-<email>[-<plan>].json`` (plan ``team``:
``codex-<sha256(account_id)[:8]>-<email>-team.json``) with ``type``, ``id_token``,
``access_token``, ``refresh_token``, ``account_id``, ``email``, ``expired``, ``last_refresh``;
tokens refresh 5 days before expiry.  Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
from types import MappingProxyType
from typing import Any

from cliproxyd.credentials.oauth import (
    ProviderSpec,
    TokenRequest,
    format_time,
    jwt_claims,
    safe_name_part,
)

__all__ = ["AUTH_CLAIM", "SPEC", "auth_fields", "code_request", "file_name", "refresh_request"]

AUTH_CLAIM = "https://api.openai.com/auth"

SPEC = ProviderSpec(
    name="codex", session="codex", aliases=("codex", "openai"),
    redirect_path="/auth/callback", scope="openid email profile offline_access",
    authorize_extra=MappingProxyType({"prompt": "login", "id_token_add_organizations": "true",
                                      "codex_cli_simplified_flow": "true"}),
    json_body=False, lead=5 * 86400.0, refresh_scope="openid profile email",
)


def code_request(endpoints: Any, code: str, verifier: str, redirect_uri: str,
                 state: str) -> TokenRequest:
    """The authorization-code exchange (form body)."""
    return TokenRequest(endpoints.token_url, {
        "grant_type": "authorization_code", "client_id": endpoints.client_id, "code": code,
        "redirect_uri": redirect_uri, "code_verifier": verifier})


def refresh_request(endpoints: Any, refresh_token: str) -> TokenRequest:
    """The refresh-token grant (form body, with scope)."""
    return TokenRequest(endpoints.token_url, {
        "client_id": endpoints.client_id, "grant_type": "refresh_token",
        "refresh_token": refresh_token, "scope": SPEC.refresh_scope})


def _identity(id_token: str) -> tuple[str, str, str]:
    """(email, account id, plan) from the id_token claims."""
    claims = jwt_claims(id_token)
    auth = claims.get(AUTH_CLAIM) if isinstance(claims.get(AUTH_CLAIM), dict) else {}

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    return (text(claims.get("email")), text(auth.get("chatgpt_account_id")),
            text(auth.get("chatgpt_plan_type")))


def _expires_in(doc: dict[str, Any]) -> float | None:
    value = doc.get("expires_in")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def auth_fields(doc: dict[str, Any], now: float, previous: dict[str, Any] | None = None) -> dict:
    """The auth file's token fields from a token answer (``previous`` fills what it lacks)."""
    old = previous or {}
    id_token = doc.get("id_token") if isinstance(doc.get("id_token"), str) else ""
    email, account_id, plan = _identity(id_token)
    fields = {
        "type": "codex", "id_token": id_token or old.get("id_token", ""),
        "access_token": doc["access_token"],
        "refresh_token": doc.get("refresh_token") or old.get("refresh_token", ""),
        "account_id": account_id or old.get("account_id", ""),
        "email": email or old.get("email", ""), "last_refresh": format_time(now),
    }
    expires_in = _expires_in(doc)
    if expires_in is not None:
        fields["expired"] = format_time(now + expires_in)
    if plan:
        fields["_plan"] = plan  # used for the file name only; removed before writing
    return fields


def file_name(fields: dict[str, Any]) -> str:
    """``codex-<email>.json``, ``codex-<email>-<plan>.json`` or the team form."""
    email = safe_name_part(fields.get("email") or "account")
    plan = re.sub(r"[^a-z0-9]+", "-", str(fields.get("_plan") or "").lower()).strip("-")
    if plan == "team":
        digest = hashlib.sha256(str(fields.get("account_id", "")).encode()).hexdigest()[:8]
        return f"codex-{digest}-{email}-team.json"
    return f"codex-{email}-{plan}.json" if plan else f"codex-{email}.json"
