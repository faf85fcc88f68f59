"""`OAuthService`: the process-lifetime owner of OAuth accounts, login flows and token refresh.

It lives in `runtime.AppState.oauth` and survives config reloads.  What it does:

* keeps the auth dir's accounts (`accounts.AccountState` by file name), re-read on `rescan`
  (the daemon calls it at start-up, on SIGHUP and every `RESCAN_EVERY` seconds);
* publishes the registry's view of them (`snapshot`, a tuple of `routing.models.OAuthAccount`)
  through ``on_change`` whenever it changes — a login, a refresh, a token that just expired, a
  file edited by hand — and the daemon rebuilds the runtime with it;
* runs the refresh loop (`start` / `stop`): every `TICK` seconds, each account whose refresh is
  due (lead time before expiry, backoff after failures) is refreshed in an executor and its file
  rewritten atomically; at most `MAX_CONCURRENT` refreshes run at once;
* runs login flows: `begin` (state + PKCE + authorize URL), `complete` (claim the state, exchange
  the code in an executor, write the auth file, mark the flow ``ok`` or ``error``).

Token values are never logged; an account is named by its file name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from cliproxyd.credentials import MODULES, provider_module, store
from cliproxyd.credentials.accounts import AccountState
from cliproxyd.credentials.oauth import (
    Flow,
    FlowError,
    Flows,
    TokenError,
    authorize_url,
    redirect_uri,
)
from cliproxyd.routing.models import OAuthAccount

__all__ = ["MAX_CONCURRENT", "RESCAN_EVERY", "TICK", "OAuthService", "exchange_and_save"]

log = logging.getLogger(__name__)

TICK = 5.0  # the original's refresh check interval
RESCAN_EVERY = 30.0
MAX_CONCURRENT = 16


def _endpoints(config: Any, provider: str) -> Any:
    return getattr(config.oauth, provider)


def post_token(request: Any, proxy_url: str) -> dict:
    """Blocking: `tokens.post_token`.  requests and requests-oauthlib are imported on the first
    token request, in the executor, not at start: they were an eighth of start-up time."""
    from cliproxyd.credentials import tokens

    return tokens.post_token(request, proxy_url)


def exchange_and_save(config: Any, flow: Flow, code: str, now: float) -> str:
    """Blocking: exchange ``code`` for tokens, write the auth file; returns its name.

    A file for the same account is updated in place: its own settings (prefix, priority,
    disabled, ...) are kept, the token fields replaced.  Raises `TokenError` or `OSError`.
    """
    module = MODULES[flow.provider]
    endpoints = _endpoints(config, flow.provider)
    request = module.code_request(endpoints, code, flow.verifier, flow.redirect_uri, flow.state)
    doc = post_token(request, config.proxy_url)
    fields = module.auth_fields(doc, now)
    name = module.file_name(fields)
    existing = store.read(config.auth_dir, name)
    old = existing.data if existing is not None else {}
    store.write(config.auth_dir, name, {**old, **fields})
    return name


class OAuthService:
    """See the module docstring.  ``config`` returns the live `Config`; ``clock`` is wall time."""

    def __init__(self, config: Callable[[], Any], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self.clock = clock
        self.flows = Flows()
        self.on_change: Callable[[tuple[OAuthAccount, ...]], None] | None = None
        self._states: dict[str, AccountState] = {}
        self._published: tuple[OAuthAccount, ...] | None = None
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._last_scan = 0.0
        self._dir = ""
        # provider → the loopback redirect-port forwarder of management logins (is_webui)
        self.forwarders: dict[str, Any] = {}

    # -- accounts -----------------------------------------------------------------------------

    def rescan(self, config: Any = None) -> tuple[OAuthAccount, ...]:
        """Re-read the auth dir now (blocking, small) and return the new snapshot.

        ``config`` (a reload's new config) names the auth dir; default the live one.  Refresh
        state (failures, backoff) is kept for files whose content did not change.
        """
        auth_dir = (config or self._config()).auth_dir
        records = store.scan(auth_dir)
        if auth_dir != self._dir:
            self._states, self._dir = {}, auth_dir
        fresh: dict[str, AccountState] = {}
        for record in records:
            old = self._states.get(record.name)
            if old is not None and old.record.mtime_ns == record.mtime_ns and not record.problem:
                fresh[record.name] = old
                continue
            if record.problem and (old is None or old.record.mtime_ns != record.mtime_ns):
                log.error("auth file %s is unusable: %s", record.name, record.problem)
            fresh[record.name] = AccountState(record)
        self._states = fresh
        self._last_scan = self.clock()
        return self.snapshot()

    def snapshot(self) -> tuple[OAuthAccount, ...]:
        """The registry's view of every usable-or-expired, enabled account, by file name."""
        now = self.clock()
        views = (s.view(now) for s in self._states.values())
        return tuple(v for v in views if v is not None)

    def status(self, name: str) -> dict[str, Any] | None:
        """Refresh status of one auth file for management listings (None: not tracked)."""
        state = self._states.get(name)
        return state.status(self.clock()) if state is not None else None

    def annotate(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add ``unavailable``/``status_message`` (and ``status: error``) to auth-file listing
        entries (`management.files.describe` dicts) for accounts that cannot be used."""
        for entry in entries:
            status = self.status(str(entry.get("name", "")))
            if status and status["unavailable"]:
                entry.update(status, status="error")
        return entries

    def publish(self) -> None:
        """Tell ``on_change`` about the snapshot if it differs from the last one published."""
        snap = self.snapshot()
        if snap != self._published:
            self._published = snap
            if self.on_change is not None:
                self.on_change(snap)

    def mark_published(self, snap: tuple[OAuthAccount, ...]) -> None:
        """Record that the runtime was built with ``snap`` (start-up, reload)."""
        self._published = snap

    # -- refresh loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the refresh loop on the running event loop (first check at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop_idle_forwarders(self) -> None:
        """Stop each redirect-port forwarder that no pending login needs any more."""
        now = self.clock()
        for provider, forwarder in list(self.forwarders.items()):
            if not self.flows.pending(provider, now):
                forwarder.stop()
                del self.forwarders[provider]

    async def stop(self) -> None:
        """Stop the loop, the forwarders, and wait for refreshes in progress (their files stay
        consistent)."""
        for forwarder in self.forwarders.values():
            forwarder.stop()
        self.forwarders.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a bug here must not end refreshing for good
                log.exception("OAuth refresh check failed")
            await asyncio.sleep(TICK)

    async def tick(self) -> None:
        """One pass: rescan when due, start due refreshes, publish what changed."""
        loop = asyncio.get_running_loop()
        if self.clock() - self._last_scan >= RESCAN_EVERY:
            await loop.run_in_executor(None, self.rescan)
        now = self.clock()
        for state in list(self._states.values()):
            if len(self._inflight) >= MAX_CONCURRENT:
                break
            if state.due(now):
                state.refreshing = True
                task = loop.create_task(self._refresh(state))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
        self.publish()

    async def refresh_now(self) -> None:
        """Run one pass and wait for the refreshes it started (tests, SIGHUP)."""
        await self.tick()
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        self.publish()

    async def _refresh(self, state: AccountState) -> None:
        config = self._config()
        module = MODULES[state.record.kind]
        request = module.refresh_request(_endpoints(config, module.SPEC.name),
                                         str(state.data.get("refresh_token", "")))
        loop = asyncio.get_running_loop()
        try:
            proxy = str(state.data.get("proxy_url") or "") or config.proxy_url  # the file's own
            doc = await loop.run_in_executor(None, post_token, request, proxy)
            data = {**state.data, **module.auth_fields(doc, self.clock(), state.data)}
            record = await loop.run_in_executor(None, _write_back, config.auth_dir, state.name,
                                                data)
        except (TokenError, OSError) as exc:
            state.failed(str(exc) if isinstance(exc, TokenError) else "cannot write the auth file",
                         self.clock())
            log.warning("refreshing %s failed (%d in a row, next try in %.0fs): %s", state.name,
                        state.failures, state.next_try - self.clock(), state.last_error)
        else:
            if record is not None:
                state.refreshed(record)
            log.info("refreshed the %s token of %s", module.SPEC.name, state.name)
        finally:
            state.refreshing = False
        self.publish()

    # -- login flows --------------------------------------------------------------------------

    def begin(self, provider: str, port: int | None = None) -> tuple[Flow, str]:
        """Start a login: (flow, authorize URL).  ``provider`` may be an alias."""
        module = provider_module(provider)
        endpoints = _endpoints(self._config(), module.SPEC.name)
        uri = redirect_uri(module.SPEC, port or endpoints.redirect_port)
        flow = self.flows.start(module.SPEC.name, uri, self.clock())
        return flow, authorize_url(module.SPEC, endpoints, flow)

    async def complete(self, state: str, code: str, error: str,
                       provider: str | None = None) -> Flow:
        """Finish the login ``state`` names; `FlowError` if it is not pending.

        A provider error or a failed exchange marks the flow ``error`` (and is raised as
        `FlowError` 400/502); success marks it ``ok`` once the auth file is on disk.
        """
        flow = self.flows.claim(state, provider, self.clock())
        if error:
            self.flows.fail(flow, f"provider returned an error: {error[:200]}", self.clock())
            raise FlowError(400, flow.error)
        if not code:
            self.flows.fail(flow, "the callback carried no code", self.clock())
            raise FlowError(400, flow.error)
        loop = asyncio.get_running_loop()
        config = self._config()
        try:
            name = await loop.run_in_executor(None, exchange_and_save, config, flow, code,
                                              self.clock())
        except (TokenError, OSError) as exc:
            message = str(exc) if isinstance(exc, TokenError) else "cannot write the auth file"
            self.flows.fail(flow, message, self.clock())
            log.warning("%s login failed: %s", flow.provider, message)
            raise FlowError(502, message) from None
        self.flows.succeed(flow, name, self.clock())
        log.info("%s login saved as %s", flow.provider, name)
        await loop.run_in_executor(None, self.rescan)
        self.publish()
        return flow


def _write_back(auth_dir: str, name: str, data: dict[str, Any]) -> store.AuthRecord | None:
    """Rewrite a refreshed account's file, unless it was deleted meanwhile (then None)."""
    if store.read(auth_dir, name) is None:
        log.info("%s was removed while its token was refreshed; not writing it back", name)
        return None
    store.write(auth_dir, name, data)
    return store.read(auth_dir, name)
