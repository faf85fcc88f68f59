"""Credential selection and cooldown: a pure state machine that takes `now` on every call.

Owns: the round-robin cursors, the per-(credential, upstream model) cooldown table, the cooldown
durations and the retry policy.  No I/O, no clock reads, no globals; a `Pool` instance lives in a
`Runtime` and `Pool.carry_over` moves its state into the next one on reload.

Selection (reference §9.4): drop candidates already tried for this request and those cooling down
for their model; keep the highest `priority` tier; then ``round-robin`` (a cursor per requested
model, advancing on every pick) or ``fill-first`` (the first in candidate order).

Cooldown (issue 4, reference §9.5), by the `ProxyError` an attempt ended with:

=============================================== ===================================================
outcome                                         effect on (credential, model)
=============================================== ===================================================
success (``report(..., None, now)``)            cleared; the 429 backoff ladder restarts at 1 s
429 with ``retry_after``                        cooling for exactly that long
429 without                                     1 s, 2 s, 4 s ... doubling per 429, capped at 30 min
401, 402, 403 (or kind authentication/permission) 30 min
5xx from the upstream                           60 s
connection failed (code ``upstream_connect_failed``) 5 s: the host is down for every key behind it;
                                                a short pause stops a retry round hammering it
408, watchdog timeout, stream broken mid-way,   none: a slow or interrupted answer says nothing
client cancelled                                about the credential
400, 404, 413, 422, other 4xx                   none: the request is at fault
=============================================== ===================================================

Retry policy (`should_retry`): another credential is tried after 408, 429, 5xx, connection errors
and timeouts, and after 401/402/403 (a bad or unfunded key must not sink the request when another
key works, as CLIProxyAPI fails over on them).  400, 404, 413, 422 and other 4xx go straight back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.routing.models import Credential

__all__ = [
    "AUTH_COOLDOWN",
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "CODE_CANCELLED",
    "CODE_CONNECT_FAILED",
    "CODE_STREAM_BROKEN",
    "CODE_TIMEOUT",
    "CONNECT_COOLDOWN",
    "SERVER_ERROR_COOLDOWN",
    "STRATEGIES",
    "Pool",
    "cooldown_for",
    "should_retry",
]

STRATEGIES = ("round-robin", "fill-first")
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30 * 60.0
SERVER_ERROR_COOLDOWN = 60.0
AUTH_COOLDOWN = 30 * 60.0
CONNECT_COOLDOWN = 5.0
_MAX_CURSORS = 4096  # cap on round-robin cursors, as CLIProxyAPI does
_MAX_STATES = 4096  # past this many (credential, model) entries, expired ones are dropped

# ProxyError.code values the transport sets; they tell a transport failure from an upstream status.
CODE_CONNECT_FAILED = "upstream_connect_failed"
CODE_TIMEOUT = "upstream_timeout"
CODE_STREAM_BROKEN = "upstream_connection_lost"
CODE_CANCELLED = "client_cancelled"

_NO_COOLDOWN_CODES = (CODE_TIMEOUT, CODE_STREAM_BROKEN, CODE_CANCELLED)


def should_retry(error: ProxyError) -> bool:
    """Whether the pipeline should try another credential after ``error``."""
    if error.code == CODE_CANCELLED:
        return False
    if error.code in (CODE_CONNECT_FAILED, CODE_TIMEOUT, CODE_STREAM_BROKEN):
        return True
    status = error.status
    if status in (401, 402, 403, 408, 429) or status >= 500:
        return True
    return error.kind in (ErrorKind.AUTHENTICATION, ErrorKind.PERMISSION, ErrorKind.RATE_LIMITED)


def cooldown_for(error: ProxyError, backoff_step: int) -> float:
    """Seconds of cooldown ``error`` earns; ``backoff_step`` counts earlier 429s without a hint."""
    if error.code in _NO_COOLDOWN_CODES:
        return 0.0
    if error.code == CODE_CONNECT_FAILED:
        return CONNECT_COOLDOWN
    if error.status == 429 or error.kind is ErrorKind.RATE_LIMITED:
        if error.retry_after is not None and error.retry_after > 0:
            return float(error.retry_after)
        return min(BACKOFF_BASE * (2 ** min(backoff_step, 32)), BACKOFF_CAP)
    if error.status in (401, 402, 403) or error.kind in (ErrorKind.AUTHENTICATION,
                                                         ErrorKind.PERMISSION):
        return AUTH_COOLDOWN
    if error.status >= 500:
        return SERVER_ERROR_COOLDOWN
    return 0.0


@dataclass
class _State:
    until: float = 0.0
    backoff_step: int = 0


Candidate = tuple[Credential, str]


class Pool:
    """Selection and cooldown over credentials; every method takes `now` (monotonic seconds)."""

    def __init__(self, strategy: str = "round-robin"):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown routing strategy {strategy!r}")
        self.strategy = strategy
        self._cursors: dict[str, int] = {}
        self._states: dict[tuple[str, str], _State] = {}

    # -- selection ------------------------------------------------------------------------------

    def pick(self, model: str, candidates: Sequence[Candidate], now: float,
             exclude: Iterable[str] = ()) -> Candidate | None:
        """Choose a candidate for ``model`` (the client-visible id) from `ModelRegistry.resolve`.

        ``exclude`` holds credential ids already tried for this request.  Returns None when every
        candidate was tried; raises `ProxyError` RATE_LIMITED (429, ``retry_after`` = seconds to
        the soonest recovery) when every untried candidate is cooling down.
        """
        skip = set(exclude)
        untried = [c for c in candidates if c[0].id not in skip]
        if not untried:
            return None
        ready = [c for c in untried if self.available_at(c[0], c[1], now) <= now]
        if not ready:
            raise self._all_cooling(model, untried, now)
        top = max(c[0].priority for c in ready)
        tier = [c for c in ready if c[0].priority == top]
        if self.strategy == "fill-first":
            return tier[0]
        return tier[self._advance(model) % len(tier)]

    def _advance(self, model: str) -> int:
        cursor = self._cursors.pop(model, 0)
        if len(self._cursors) >= _MAX_CURSORS:
            self._cursors.pop(next(iter(self._cursors)))
        self._cursors[model] = cursor + 1  # re-inserted last: the dict stays in LRU order
        return cursor

    def _all_cooling(self, model: str, untried: Sequence[Candidate], now: float) -> ProxyError:
        wait = min(self.available_at(c, m, now) for c, m in untried) - now
        seconds = max(1, math.ceil(wait))
        return ProxyError(ErrorKind.RATE_LIMITED,
                          f"All credentials for model {model} are cooling down; retry in "
                          f"{seconds}s.", code="model_cooldown", retry_after=float(seconds))

    def available_at(self, credential: Credential, model: str, now: float) -> float:
        """When (credential, model) can be used again (``now`` or earlier if it can already)."""
        state = self._states.get((credential.id, model))
        return state.until if state and state.until > now else now

    # -- outcomes -------------------------------------------------------------------------------

    def report(self, credential: Credential, model: str, error: ProxyError | None,
               now: float) -> float:
        """Record how an attempt on (credential, upstream ``model``) ended; None = success.

        Returns the cooldown applied in seconds (0 = none).  Do not report a stream that broke
        after output started, or a client cancel, unless with their transport error codes.
        """
        key = (credential.id, model)
        if error is None:
            self._states.pop(key, None)
            return 0.0
        state = self._states.get(key) or _State()
        seconds = cooldown_for(error, state.backoff_step)
        if seconds <= 0:
            return 0.0
        is_backoff = (error.status == 429 or error.kind is ErrorKind.RATE_LIMITED) and not (
            error.retry_after and error.retry_after > 0)
        state.backoff_step = state.backoff_step + 1 if is_backoff else state.backoff_step
        state.until = max(state.until, now + seconds)
        self._states[key] = state
        if len(self._states) > _MAX_STATES:
            self.prune(now)
        return seconds

    # -- reload and metrics ---------------------------------------------------------------------

    def carry_over(self, old: Pool) -> None:
        """Take cooldown state and cursors from the previous runtime's pool (credential ids are
        stable, so state for keys still configured applies; state for removed keys is inert)."""
        self._states = {k: _State(s.until, s.backoff_step) for k, s in old._states.items()}
        self._cursors = dict(old._cursors)

    def prune(self, now: float) -> None:
        """Forget expired cooldowns that carry no backoff history (keeps the table small)."""
        for key in [k for k, s in self._states.items() if s.until <= now and not s.backoff_step]:
            del self._states[key]

    def describe(self, credentials: Iterable[Credential], now: float) -> dict[str, dict[str, int]]:
        """Per provider kind: how many credentials are ``available`` and ``cooling_down``
        (a credential counts as cooling when any of its models is)."""
        out: dict[str, dict[str, int]] = {}
        cooling_ids = {cid for (cid, _), s in self._states.items() if s.until > now}
        for cred in credentials:
            row = out.setdefault(cred.kind, {"available": 0, "cooling_down": 0})
            row["cooling_down" if cred.id in cooling_ids else "available"] += 1
        return out

    def cooldowns(self, now: float) -> dict[tuple[str, str], float]:
        """Remaining cooldown seconds per (credential id, model), for management views."""
        return {k: s.until - now for k, s in self._states.items() if s.until > now}
