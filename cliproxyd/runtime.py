"""The swappable bundle every request reads: the config and what is built from it.

`Runtime.build(config, previous)` is the single place that turns a `Config` into ready-to-use
state: the config, the model registry (credentials and the models they serve, OAuth accounts
from the auth dir included) and the credential pool, whose cooldown state is carried over from
the previous runtime on reload.  `RuntimeRef.current` is replaced
in one assignment on reload; a handler reads it once per request, so a request in flight keeps
the snapshot it started with.  No I/O happens here beyond what `build` documents.

`AppState` is the other half: state that lives as long as the process (metrics registry,
management lockout table, in-flight request tracking, the upstream HTTP transport, the OAuth
service) and is *not* replaced on reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cliproxyd.access import Lockout
from cliproxyd.config import Config
from cliproxyd.metrics import Metrics
from cliproxyd.providers.transport import Transport
from cliproxyd.routing.models import ModelRegistry, OAuthAccount, build_registry
from cliproxyd.routing.pool import Pool
from cliproxyd.usage_store import UsageRecorder

__all__ = ["AppState", "InFlight", "Runtime", "RuntimeRef"]


@dataclass(frozen=True)
class Runtime:
    """Everything derived from one config file; immutable once built."""

    config: Config
    registry: ModelRegistry
    pool: Pool
    accounts: tuple[OAuthAccount, ...] = ()

    @classmethod
    def build(cls, config: Config, previous: Runtime | None = None,
              accounts: tuple[OAuthAccount, ...] | None = None) -> Runtime:
        """Build the runtime for ``config``; raises on anything the config alone cannot catch.

        With ``previous`` (a reload), credentials still configured keep their cooldowns.
        ``accounts`` are the auth dir's OAuth accounts (`OAuthService.snapshot`); None keeps
        the previous runtime's (a config edit does not touch the auth dir).
        """
        pool = Pool(config.routing.strategy)
        if previous is not None:
            pool.carry_over(previous.pool)
        if accounts is None:
            accounts = previous.accounts if previous is not None else ()
        return cls(config=config, registry=build_registry(config, accounts), pool=pool,
                   accounts=tuple(accounts))


class RuntimeRef:
    """A holder whose `current` attribute is the live `Runtime` (swapped by the daemon)."""

    def __init__(self, runtime: Runtime) -> None:
        self.current = runtime


class InFlight:
    """Requests in progress, from their first header byte to their last response byte.

    The daemon waits on `wait_idle` during shutdown so in-flight requests and streams can finish.
    Tokens are any hashable object (a handler, a connection delegate); `leave` is idempotent.
    """

    def __init__(self) -> None:
        self._tokens: set[int] = set()
        self._idle: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._tokens)

    def enter(self, token: object) -> None:
        self._tokens.add(id(token))

    def leave(self, token: object) -> None:
        self._tokens.discard(id(token))
        if not self._tokens and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight or ``timeout`` seconds pass; True if idle."""
        if not self._tokens:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._idle = None


@dataclass
class AppState:
    """Process-lifetime state shared by every handler; it survives config reloads."""

    metrics: Metrics
    lockout: Lockout
    inflight: InFlight
    _transport: Transport | None = None
    # Usage statistics (issue 5): the SQLite store of the live config's usage-db.
    usage: UsageRecorder = field(default_factory=UsageRecorder)
    # Re-read config.yaml and apply it as SIGHUP does (set by the daemon; management edits).
    reload: Callable[[], Awaitable[bool]] | None = None
    # Serialises management edits of config.yaml and the auth dir (read-modify-write-reload).
    edit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # OAuth accounts, login flows and token refresh (`credentials.service.OAuthService`, issue 7;
    # set by the daemon).
    oauth: Any = None

    @property
    def transport(self) -> Transport:
        """The upstream HTTP client, created on first use (it binds to the running loop)."""
        if self._transport is None:
            self._transport = Transport()
        return self._transport

    def close(self) -> None:
        """Release process-lifetime resources (the daemon's last shutdown step)."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @classmethod
    def create(cls) -> AppState:
        state = cls(metrics=Metrics(), lockout=Lockout(), inflight=InFlight())
        state.metrics.track_in_flight(lambda: len(state.inflight))
        return state
