"""Access rules: client API keys, the management secret, the localhost rule and the lockout.

This module owns the *decisions* of the contract (``/work/shared/spec/authentication.md``):

* Client keys guard every path under ``/v1`` and ``/v1beta``.  A key may arrive as
  ``Authorization: Bearer``, ``x-api-key``, ``x-goog-api-key`` or ``?key=``, so the official
  OpenAI, Anthropic and Google SDKs work unchanged.  An empty key list means open access.
* The management secret guards ``/v0/management/*``: no secret → 404, a peer that is not loopback
  while ``allow-remote`` is false → 403, a locked-out address → 403 with ``Retry-After``, a wrong
  or missing secret → 401 ``invalid password`` (and one more failure on the address's count).
* Five failures from one address lock that address out of management for 30 minutes; a success
  resets its count.  The lockout never concerns client API keys.

Rules: no I/O, no Tornado, no clock reads (callers pass ``now``), no module-level mutable state.
Secrets are compared with `hmac.compare_digest` and never logged or put in an error message.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cliproxyd.errors import ErrorKind, ProxyError

__all__ = [
    "AUTH_FAILED_MESSAGE",
    "LOCKOUT_SECONDS",
    "MAX_FAILURES",
    "Lockout",
    "check_client",
    "check_management_precondition",
    "client_key_candidates",
    "is_loopback",
    "management_key",
    "match_client_key",
]

MAX_FAILURES = 5
LOCKOUT_SECONDS = 30 * 60.0
# How long an address's failure count is remembered without new failures (bounds the table).
_FORGET_AFTER = 2 * 3600.0
# The contract's 401 body says "invalid password" for every authentication failure.
AUTH_FAILED_MESSAGE = "invalid password"


def _bearer(value: str) -> str:
    """The credential in an Authorization value: the part after ``Bearer ``, else the whole value
    (a bare key in Authorization is accepted, as CLIProxyAPI does)."""
    scheme, _, rest = value.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip()
    return value.strip()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's first value, by case-insensitive name (works for plain dicts in tests too)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


_KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


def client_key_candidates(headers: Mapping[str, str], query_key: str | None) -> list[str]:
    """Every client key the request presents, in the order the sources are consulted."""
    values: dict[str, str] = {}
    for key, value in headers.items():  # one pass for the three names (every request runs this)
        lowered = key.lower()
        if lowered in _KEY_HEADERS and lowered not in values:
            values[lowered] = value
    found = []
    auth = values.get("authorization")
    if auth:
        found.append(_bearer(auth))
    for name in _KEY_HEADERS[1:]:
        value = values.get(name)
        if value:
            found.append(value.strip())
    if query_key:
        found.append(query_key.strip())
    return [key for key in found if key]


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def match_client_key(api_keys: Iterable[str], candidates: Iterable[str]) -> str | None:
    """The configured key that a presented key equals, else None.

    Every pair is compared (no early exit) so the time taken does not reveal which key matched.
    """
    matched = None
    keys = [k for k in api_keys if k]
    for candidate in candidates:
        for key in keys:
            if _equal(candidate, key) and matched is None:
                matched = key
    return matched


def check_client(api_keys: Iterable[str], candidates: Iterable[str]) -> ProxyError | None:
    """None when the request may pass; otherwise the 401 to answer.  No keys = open."""
    keys = [k for k in api_keys if k]
    if not keys or match_client_key(keys, candidates) is not None:
        return None
    return ProxyError(ErrorKind.AUTHENTICATION, AUTH_FAILED_MESSAGE)


def management_key(headers: Mapping[str, str]) -> str:
    """The management secret presented: ``Authorization: Bearer`` first, then ``X-Management-Key``."""
    auth = _header(headers, "Authorization")
    if auth and _bearer(auth):
        return _bearer(auth)
    return (_header(headers, "X-Management-Key") or "").strip()


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.0.0.0/104 (the socket peer address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_loopback


@dataclass
class _Entry:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


@dataclass
class Lockout:
    """Failed management attempts per address: a small state machine driven by ``now``.

    `retry_after(addr, now)` says whether the address is locked (seconds left, else None);
    `failure` counts one failure and locks the address at the fifth; `success` forgets it.
    """

    max_failures: int = MAX_FAILURES
    lock_seconds: float = LOCKOUT_SECONDS
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def retry_after(self, address: str, now: float) -> float | None:
        entry = self._entries.get(address)
        if entry is None or entry.locked_until <= now:
            return None
        return entry.locked_until - now

    def failure(self, address: str, now: float) -> None:
        self._forget_idle(now)
        entry = self._entries.setdefault(address, _Entry())
        if entry.locked_until and entry.locked_until <= now:
            entry.failures, entry.locked_until = 0, 0.0  # a served lockout starts a fresh count
        entry.failures += 1
        entry.last_failure = now
        if entry.failures >= self.max_failures:
            entry.locked_until = now + self.lock_seconds

    def success(self, address: str) -> None:
        self._entries.pop(address, None)

    def _forget_idle(self, now: float) -> None:
        idle = [
            addr
            for addr, e in self._entries.items()
            if e.locked_until <= now and now - e.last_failure > _FORGET_AFTER
        ]
        for addr in idle:
            del self._entries[addr]


def check_management_precondition(
    secret: str, allow_remote: bool, peer: str, lockout: Lockout, now: float
) -> ProxyError | None:
    """The checks that come before the secret itself, in the contract's order.

    No secret → 404; a non-loopback peer without ``allow-remote`` → 403 (not counted as a
    failure); a locked-out address → 403 with ``retry_after``.  None = go on and verify the secret.
    """
    if not secret:
        return ProxyError(ErrorKind.NOT_FOUND, "Not Found")
    if not allow_remote and not is_loopback(peer):
        return ProxyError(ErrorKind.PERMISSION, "remote management disabled")
    left = lockout.retry_after(peer, now)
    if left is not None:
        return ProxyError(
            ErrorKind.PERMISSION,
            "too many failed attempts; management is locked for this address",
            retry_after=float(int(left) + (left > int(left))),
        )
    return None
