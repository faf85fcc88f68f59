"""OAuth accounts as the daemon tracks them: an auth file plus its refresh state.

Owns the rules that decide, at a given ``now``, what an auth file means for routing (issue 7,
reference §7.3–7.4):

* only files whose ``type`` is a supported provider (claude, codex) with an ``access_token``
  become accounts; ``disabled: true`` files are left out entirely;
* per-file ``prefix``, ``priority``, ``proxy_url``, ``headers`` and ``excluded_models`` (or
  ``excluded-models``) are honoured;
* the expiry is ``expired`` (or ``expire``, ``expires_at``, ``expiresAt``, ``expiry``,
  ``expires``, possibly nested under ``token``); an account whose token has expired is
  *unavailable* — listed, never used — with the reason (and the last refresh error) until a
  refresh succeeds;
* a refresh is due at expiry minus the provider's lead time (or ``refresh_interval_seconds``
  after the last refresh), not before ``next_try`` (the backoff after a failure).

Pure apart from holding mutable per-account state: no I/O, no clock (``now`` is passed in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cliproxyd.credentials import MODULES
from cliproxyd.credentials.oauth import parse_time, refresh_due_at
from cliproxyd.credentials.store import AuthRecord
from cliproxyd.routing.models import OAuthAccount

__all__ = ["BACKOFF_BASE", "BACKOFF_CAP", "AccountState", "backoff", "expiry"]

BACKOFF_BASE = 30.0
BACKOFF_CAP = 30 * 60.0
_EXPIRY_KEYS = ("expired", "expire", "expires_at", "expiresAt", "expiry", "expires")


def backoff(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failed refresh in a row (30 s doubling, ≤30 min)."""
    return min(BACKOFF_BASE * 2 ** max(0, failures - 1), BACKOFF_CAP)


def expiry(data: Mapping[str, Any]) -> float | None:
    """The token's expiry (Unix seconds) from any spelling the original accepts."""
    for source in (data, data.get("token") if isinstance(data.get("token"), dict) else {}):
        for key in _EXPIRY_KEYS:
            value = parse_time(source.get(key))
            if value is not None:
                return value
    return None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


def _headers(data: Mapping[str, Any]) -> Mapping[str, str]:
    raw = data.get("headers")
    if not isinstance(raw, dict):
        return MappingProxyType({})
    return MappingProxyType({k: v for k, v in raw.items() if isinstance(k, str)
                             and isinstance(v, str) and "\n" not in v and "\r" not in v})


def _globs(data: Mapping[str, Any]) -> tuple[str, ...]:
    raw = data.get("excluded_models", data.get("excluded-models"))
    return tuple(g.strip().lower() for g in raw if isinstance(g, str) and g.strip()) \
        if isinstance(raw, list) else ()


def _priority(data: Mapping[str, Any]) -> int:
    value = data.get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class AccountState:
    """One auth file and what the refresher knows about it."""

    record: AuthRecord
    failures: int = 0
    next_try: float = 0.0
    last_error: str = ""
    refreshing: bool = False

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def data(self) -> dict[str, Any]:
        return self.record.data

    @property
    def supported(self) -> bool:
        """A claude/codex OAuth file (whatever its state)."""
        return not self.record.problem and self.record.kind in MODULES

    @property
    def disabled(self) -> bool:
        return self.data.get("disabled") is True

    def unavailable(self, now: float) -> str:
        """Why the account cannot be used at ``now`` ("" when it can)."""
        if not _text(self.data, "access_token"):
            return "the auth file has no access_token"
        expires = expiry(self.data)
        if expires is None or expires > now:
            return ""
        reason = "access token expired"
        if self.last_error:
            return f"{reason}; refresh failed: {self.last_error}"
        return f"{reason}; refreshing" if _text(self.data, "refresh_token") else reason

    def view(self, now: float) -> OAuthAccount | None:
        """The registry's view of this account (None: not an account, or disabled)."""
        if not self.supported or self.disabled:
            return None
        return OAuthAccount(
            name=self.name, kind=self.record.kind, access_token=_text(self.data, "access_token"),
            account_id=_text(self.data, "account_id"), prefix=_text(self.data, "prefix").strip("/"),
            priority=_priority(self.data), headers=_headers(self.data),
            proxy_url=_text(self.data, "proxy_url"), excluded_models=_globs(self.data),
            unavailable=self.unavailable(now),
        )

    def due_at(self) -> float | None:
        """When the token should next be refreshed (None: never — no refresh token)."""
        if not self.supported or self.disabled or not _text(self.data, "refresh_token"):
            return None
        interval = self.data.get("refresh_interval_seconds")
        interval = float(interval) if isinstance(interval, (int, float)) \
            and not isinstance(interval, bool) else None
        lead = MODULES[self.record.kind].SPEC.lead
        return refresh_due_at(expiry(self.data), parse_time(self.data.get("last_refresh")),
                              lead, interval)

    def due(self, now: float) -> bool:
        """Whether a refresh should start at ``now``."""
        at = self.due_at()
        return at is not None and at <= now and now >= self.next_try and not self.refreshing

    def failed(self, message: str, now: float) -> None:
        self.failures += 1
        self.last_error = message
        self.next_try = now + backoff(self.failures)

    def refreshed(self, record: AuthRecord) -> None:
        self.record, self.failures, self.last_error, self.next_try = record, 0, "", 0.0

    def status(self, now: float) -> dict[str, Any]:
        """What management shows about this account (no token values)."""
        reason = "disabled" if self.disabled else self.unavailable(now) if self.supported else ""
        out: dict[str, Any] = {"unavailable": bool(reason) and not self.disabled,
                               "status_message": reason or self.last_error}
        if self.record.problem:
            out.update(unavailable=True, status_message=self.record.problem)
        return out
