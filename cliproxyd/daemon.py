"""The process lifecycle: start up, serve, reload on SIGHUP, drain and stop on SIGTERM/SIGINT.

Start-up is a linear list of named steps (build runtime → TLS → bind → serve → READY=1) and
shut-down runs in reverse (STOPPING=1 → stop accepting → drain in-flight requests and
WebSocket turns up to ``shutdown-timeout`` → close WebSockets with 1001 → close idle
connections).  systemd is told everything through
``NOTIFY_SOCKET`` (READY, RELOADING + MONOTONIC_USEC, STOPPING, STATUS, WATCHDOG).

Reload (SIGHUP, nginx semantics): read and validate config.yaml and the TLS files; on any
problem keep everything as it is, log every problem and say so in STATUS; on success log the
redacted diff and swap `RuntimeRef.current` in one assignment.  A changed host/port gets new
listening sockets (connections already accepted keep being served by the old server object);
if binding fails the old sockets are kept and the failure logged.  TLS files are re-read on
every reload so certificates rotate without a restart.

OAuth accounts (issue 7): the auth dir is read at start-up and on every reload, and
`credentials.service.OAuthService` (``state.oauth``) refreshes tokens and rescans in the
background; whenever its accounts change (a login, a refresh, an expiry, a hand edit) the runtime
is rebuilt with the same config and swapped, cooldowns carried over.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import signal
import ssl
import time
from dataclasses import dataclass

import sdnotify
from tornado import netutil
from tornado.http1connection import HTTP1ConnectionParameters
from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback

from cliproxyd.app import make_app
from cliproxyd.confdiff import diff
from cliproxyd.config import Config, ConfigError, load_config
from cliproxyd.credentials.service import OAuthService
from cliproxyd.handlers.base import server_body_limit
from cliproxyd.runtime import AppState, Runtime, RuntimeRef

__all__ = ["EXIT_CONFIG", "EXIT_LISTEN", "EXIT_OK", "Daemon", "StartupError", "build_ssl_context",
           "set_log_level"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_LISTEN = 1
EXIT_CONFIG = 78

MAX_HEADER_SIZE = 64 * 1024
# The client-side idle/header and body timeouts come from `timeouts.client-idle` and
# `timeouts.client-body` (Tornado's default lets a slow client hold a connection for an hour).
# After the drain, how long closing the remaining (idle) connections may take.
_CLOSE_GRACE = 5.0


class StartupError(Exception):
    """Start-up failed in a way the user must fix; ``exit_code`` is what the process returns."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def build_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context for ``config`` (None when TLS is off); reads the PEM files now.

    Raises `ConfigError` naming the file, key and line when the files cannot be used.
    """
    tls = config.tls
    if not tls.enable:
        return None
    if not tls.cert or not tls.key:
        raise ConfigError([f"{config.where('tls')}: tls.enable needs both tls.cert and tls.key"])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(
            [f"{config.where('tls.cert')}: cannot load certificate {tls.cert!r} with key {tls.key!r}: {reason}"]
        ) from None
    return ctx


def _conn_params(config: Config) -> HTTP1ConnectionParameters:
    """Per-connection HTTP limits for new connections (what HTTPServer derives from its kwargs)."""
    return HTTP1ConnectionParameters(
        max_header_size=MAX_HEADER_SIZE,
        header_timeout=config.timeouts.client_idle,
        max_body_size=server_body_limit(config.max_body_size),
        # No body_timeout here: `handlers.base._GuardedDelegate` applies client-body.
    )


# Libraries whose DEBUG output includes request headers or tokens: never below INFO.
_CHATTY_LOGGERS = ("requests_oauthlib", "oauthlib", "urllib3", "httpx", "httpcore", "websockets",
                   "hpack", "asyncio")


def set_log_level(debug: bool) -> None:
    """The ``debug`` setting: DEBUG for cliproxyd, never for libraries that would log secrets."""
    logging.getLogger().setLevel(logging.DEBUG if debug else logging.INFO)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _address_text(host: str, port: int) -> str:
    return f"{host or '*'}:{port}"


@dataclass
class _Listener:
    """One HTTPServer and the address its sockets are bound to."""

    server: HTTPServer
    host: str
    port: int


def raise_open_files_limit() -> None:
    """Soft open-files limit up to the hard one: every client connection and upstream transfer
    holds a descriptor, and the soft default (often 1024) is meant for programs that do not ask
    (Go's runtime raises it the same way; systemd's LimitNOFILE sets the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. macOS caps it below RLIM_INFINITY
            log.debug("open-files limit stays at %d: %s", soft, exc)


# Young-generation collections every 10,000 net allocations instead of 700.  A request leaves no
# reference cycles (tests/e2e/test_proxy_matrix.py checks it), so the collector finds nothing,
# but at 700 it still ran every few requests, walking the request's live JSON and IR objects:
# about 3 % of the daemon's CPU on the benchmark (issue 8).
GC_YOUNG_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """After start-up: what was built so far (modules, config, routing tables) lives as long as
    the process, so it is moved out of the collector's reach (`gc.freeze`) instead of being
    walked by every full collection; then the young generation's threshold is raised."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class Notifier:
    """sd_notify messages; silent when NOTIFY_SOCKET is unset (not under systemd).

    sdnotify swallows a failed send unless asked not to; a READY=1 that never reaches systemd
    gets the service killed at its start timeout, so a failure is logged instead."""

    def __init__(self) -> None:
        self._notifier: sdnotify.SystemdNotifier | None = None
        if os.environ.get("NOTIFY_SOCKET"):
            try:
                self._notifier = sdnotify.SystemdNotifier(debug=True)
            except OSError as exc:
                log.warning("cannot reach the systemd notify socket: %s", exc)

    def send(self, *lines: str) -> None:
        if self._notifier is not None:
            try:
                self._notifier.notify("\n".join(lines))
            except OSError as exc:
                log.warning("sd_notify %s failed: %s", lines[0], exc)


class Daemon:
    """One cliproxyd process serving the config file at ``config_path``."""

    def __init__(self, config_path: str, config: Config) -> None:
        self.config_path = config_path
        self.state = AppState.create()
        self.state.oauth = oauth = OAuthService(lambda: self.runtime_ref.current.config)
        accounts = oauth.rescan(config)
        self.runtime_ref = RuntimeRef(Runtime.build(config, accounts=accounts))
        oauth.mark_published(accounts)
        oauth.on_change = self._accounts_changed
        self.state.reload = self.reload  # management config edits apply exactly as SIGHUP does
        self.state.metrics.track_credentials(self._describe_credentials)
        self.app = make_app(self.runtime_ref, self.state)
        self.notifier = Notifier()
        self._listeners: list[_Listener] = []
        self._retired: list[HTTPServer] = []
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._watchdog: PeriodicCallback | None = None

    def _describe_credentials(self) -> dict:
        runtime = self.runtime_ref.current
        creds = runtime.registry.credentials
        counts = runtime.pool.describe([c for c in creds if not c.unavailable], time.monotonic())
        for cred in creds:
            if cred.unavailable:  # an OAuth account whose token expired and did not refresh
                row = counts.setdefault(cred.kind, {"available": 0, "cooling_down": 0})
                row["unavailable"] = row.get("unavailable", 0) + 1
        return counts

    def _accounts_changed(self, accounts: tuple) -> None:
        """The OAuth accounts changed: same config, new registry, one swap."""
        current = self.runtime_ref.current
        try:
            self.runtime_ref.current = Runtime.build(current.config, previous=current,
                                                     accounts=accounts)
        except Exception:  # never let a bad auth file take the daemon down
            log.exception("cannot apply the changed OAuth accounts; keeping the old ones")

    # --- start-up --------------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; return the exit code.  Raises `StartupError`."""
        raise_open_files_limit()
        config = self.runtime_ref.current.config
        try:
            ssl_ctx = build_ssl_context(config)
        except ConfigError as err:
            raise StartupError(str(err), EXIT_CONFIG) from None
        self._listeners = [self._listen(config, ssl_ctx)]
        self._install_signals()
        self._start_watchdog()
        self.state.oauth.start()
        self.notifier.send("READY=1", f"STATUS={self._serving_status()}")
        log.info("cliproxyd %s (pid %d)", self._serving_status(), os.getpid())
        settle_garbage_collector()  # after READY: its full collection takes some 10 ms
        await self._stop.wait()
        await self._shutdown()
        return EXIT_OK

    def _listen(self, config: Config, ssl_ctx: ssl.SSLContext | None,
                host: str | None = None, port: int | None = None) -> _Listener:
        """A new HTTPServer on ``host:port`` (default: the config's), with the config's limits."""
        host = config.host if host is None else host
        port = config.port if port is None else port
        try:
            sockets = netutil.bind_sockets(port, address=host or None)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {_address_text(host, port)}: {exc.strerror or exc}", EXIT_LISTEN
            ) from None
        server = HTTPServer(
            self.app,
            xheaders=False,  # the localhost rule must see the real socket peer
            ssl_options=ssl_ctx,
            max_header_size=MAX_HEADER_SIZE,
            idle_connection_timeout=config.timeouts.client_idle,
            max_body_size=server_body_limit(config.max_body_size),
        )
        server.add_sockets(sockets)
        return _Listener(server, host, sockets[0].getsockname()[1] if sockets else port)

    def _serving_status(self) -> str:
        config = self.runtime_ref.current.config
        scheme = "https" if config.tls.enable else "http"
        addrs = ", ".join(_address_text(ln.host, ln.port) for ln in self._listeners)
        return f"serving {scheme} on {addrs}"

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)

    def _start_watchdog(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
            return
        interval_ms = int(usec) / 2000.0
        self._watchdog = PeriodicCallback(lambda: self.notifier.send("WATCHDOG=1"), interval_ms)
        self._watchdog.start()

    # --- reload -----------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config file and apply it, or keep everything on any problem."""
        async with self._reload_lock:
            self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}")
            ok = self._reload_once()
            self.state.metrics.reload_done(ok)
            status = self._serving_status() if ok else self._failed_status
            self.notifier.send("READY=1", f"STATUS={status}")
            return ok

    def _reload_once(self) -> bool:
        old = self.runtime_ref.current.config
        try:
            new = load_config(self.config_path)
            ssl_ctx = build_ssl_context(new)
            accounts = self.state.oauth.rescan(new)  # hand edits of the auth dir apply on HUP
            runtime = Runtime.build(new, previous=self.runtime_ref.current, accounts=accounts)
        except ConfigError as err:
            for problem in err.problems:
                log.error("reload failed: %s", problem)
            self._failed_status = f"reload failed: {err.problems[0] if err.problems else err}"
            return False
        except Exception:  # a bug while building the runtime must not take the daemon down
            log.exception("reload failed: cannot build the new runtime; keeping the old one")
            self._failed_status = "reload failed: internal error (see the log)"
            return False
        for warning in new.warnings:
            log.warning("%s", warning)
        self._log_diff(old, new)
        self._apply_listeners(new, ssl_ctx)
        set_log_level(new.debug)
        self.runtime_ref.current = runtime  # the one atomic swap
        self.state.oauth.mark_published(accounts)
        log.info("configuration reloaded from %s", self.config_path)
        return True

    _failed_status = "reload failed"

    def _log_diff(self, old: Config, new: Config) -> None:
        for line in diff(old, new):
            log.info("config change: %s", line)

    def _apply_listeners(self, new: Config, ssl_ctx: ssl.SSLContext | None) -> None:
        """New TLS context and limits for new connections; new sockets if the address changed."""
        listener: _Listener | None = None
        if not self._listeners:  # an earlier re-bind lost every socket: try again
            try:
                listener = self._listen(new, ssl_ctx)
            except StartupError as err:
                log.critical("still not listening anywhere: %s", err)
        elif (new.host, new.port) != (self._listeners[0].host, self._listeners[0].port):
            listener = self._rebind(new, ssl_ctx, self._listeners[0])
        if listener is not None:
            self._listeners = [listener]
            log.info("now listening on %s", _address_text(listener.host, listener.port))
        for listener in self._listeners:
            listener.server.ssl_options = ssl_ctx
            listener.server.conn_params = _conn_params(new)

    def _rebind(self, new: Config, ssl_ctx: ssl.SSLContext | None, current: _Listener) -> _Listener | None:
        """Listen on the new address, then stop accepting on the old one (its accepted
        connections keep being served).  The same port on another host (127.0.0.1 → all
        interfaces) can only be bound once the old sockets are closed: then close first, and
        re-open the old address if the new one still fails.  None = the old sockets are kept."""
        try:
            listener = self._listen(new, ssl_ctx)
        except StartupError as err:
            if new.port != current.port:
                log.error("keeping %s: %s", _address_text(current.host, current.port), err)
                return None
            self._retire_listeners()
            try:
                return self._listen(new, ssl_ctx)
            except StartupError as again:
                log.error("keeping %s: %s", _address_text(current.host, current.port), again)
            try:
                return self._listen(new, ssl_ctx, current.host, current.port)
            except StartupError as lost:
                log.critical("not listening anywhere until the next reload: %s", lost)
                return None
        self._retire_listeners()
        return listener

    def _retire_listeners(self) -> None:
        for old in self._listeners:
            old.server.stop()  # stop accepting; accepted connections keep running
            self._retired.append(old.server)
        self._listeners = []

    # --- shut-down --------------------------------------------------------------------------

    def _request_stop(self, sig: int) -> None:
        if self._stop.is_set():
            log.info("%s again: already stopping", signal.Signals(sig).name)
            return
        log.info("%s: stopping", signal.Signals(sig).name)
        self._stop.set()

    async def _shutdown(self) -> None:
        timeout = self.runtime_ref.current.config.shutdown_timeout
        servers = [ln.server for ln in self._listeners] + self._retired
        for server in servers:
            server.stop()  # stop accepting first: STOPPING=1 means no new connections
        self.notifier.send("STOPPING=1", "STATUS=stopping: draining in-flight requests")
        self.app.websockets.drain()  # idle sockets close now (1001), busy ones after their turn
        await self.state.oauth.stop()  # refreshes in progress finish writing their files
        if not await self.state.inflight.wait_idle(timeout):
            log.warning("shutdown-timeout (%ss) reached with %d requests in flight", timeout,
                        len(self.state.inflight))
        await self.app.websockets.close_all(_CLOSE_GRACE)  # turns still running are cancelled
        if self._watchdog is not None:
            self._watchdog.stop()
        for server in servers:
            try:
                await asyncio.wait_for(server.close_all_connections(), _CLOSE_GRACE)
            except TimeoutError:
                log.warning("some connections did not close in time")
        # Flush usage statistics (the writer thread commits what is queued).
        await asyncio.get_running_loop().run_in_executor(None, self.state.usage.close)
        self.state.close()
        log.info("stopped")

