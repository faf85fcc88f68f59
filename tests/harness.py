"""Reusable end-to-end fixtures: run the real daemon as a subprocess and talk to it.

`Daemon` writes a config file (mode 0600) into a work directory, starts
``python -m cliproxyd --config FILE`` on a free 127.0.0.1 port with ``NOTIFY_SOCKET`` pointing at
a unix datagram socket the test owns, and waits for ``READY=1``.  It exposes ``url``, ``pid``,
``notifications`` (every sd_notify message, in order), ``logs`` (stdout+stderr so far),
``reload()`` (SIGHUP, then wait for the next READY), ``stop()`` (SIGTERM, wait, exit code) and
``request()`` (one HTTP request with `http.client`).  Use the ``daemon`` fixture factory from
conftest.py so every daemon a test starts is stopped afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml

REPO = Path(__file__).resolve().parent.parent
# Bounds on waits, not assertions about speed: a healthy daemon is far quicker.
START_TIMEOUT = 30.0
WAIT_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Response:
    """An HTTP response read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class NotifySocket:
    """A unix datagram socket that records every sd_notify message sent to it."""

    def __init__(self) -> None:
        # AF_UNIX paths are limited to 108 bytes: keep it short, outside pytest's deep tmp dirs.
        self._dir = tempfile.mkdtemp(prefix="cpdn")
        self.path = os.path.join(self._dir, "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self.messages: list[str] = []
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            data = self._sock.recv(65536)
            if self._closing:
                return
            with self._cond:
                self.messages.append(data.decode("utf-8", "replace"))
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = WAIT_TIMEOUT,
                 alive: Callable[[], bool] = lambda: True) -> bool:
        """Wait until ``predicate(messages)`` holds; False on timeout or when ``alive()`` fails."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0 or not alive():
                    return predicate(self.messages)
                self._cond.wait(min(left, 0.2))
            return True

    def close(self) -> None:
        # The reader is woken by a datagram and gone before the socket is closed: closing it
        # under a blocked recv() frees the descriptor number, and a reader that re-enters recv()
        # on the reused number steals a message from the next daemon's socket (seen as a
        # missing READY=1 after a SIGHUP in the benchmark).
        if self._closing:
            return
        self._closing = True
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", self.path)
        self._thread.join(5)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def count(messages: list[str], field: str) -> int:
    """How many messages carry the sd_notify assignment ``field`` (e.g. "READY=1")."""
    return sum(1 for m in messages if field in m.split("\n"))


class Daemon:
    """One cliproxyd subprocess on a free port; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        config: Mapping[str, Any] | str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "config.yaml"
        self.log_path = self.workdir / "daemon.log"
        self.host = host
        self.port = port or free_port(host if host else "127.0.0.1")
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.notify: NotifySocket | None = None
        self.tls = False
        self.write_config(config if config is not None else {})

    # --- config -------------------------------------------------------------------------------

    def write_config(self, config: Mapping[str, Any] | str) -> None:
        """Write config.yaml (mode 0600).  A mapping gets this daemon's host/port unless it sets
        them; text is written as is."""
        self._mapping = None if isinstance(config, str) else dict(config)
        if isinstance(config, str):
            text = config
        else:
            data = {"host": self.host, "port": self.port, "auth-dir": str(self.workdir / "auth")}
            data.update(config)
            self.tls = bool((data.get("tls") or {}).get("enable"))
            text = yaml.safe_dump(data, sort_keys=False)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(self.config_path, 0o600)

    # --- process ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = self.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def notifications(self) -> list[str]:
        return list(self.notify.messages) if self.notify else []

    @property
    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("MANAGEMENT_PASSWORD", "CLIPROXYD_CONFIG", "WATCHDOG_USEC", "WATCHDOG_PID")}
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["NOTIFY_SOCKET"] = self.notify.path if self.notify else ""
        env.update(self.extra_env)
        return env

    def spawn(self, *args: str) -> subprocess.Popen:
        """Start the process without waiting for READY (for start-up failure tests)."""
        self._close_notify()  # a retried start's earlier socket
        self.notify = NotifySocket()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cliproxyd", "--config", str(self.config_path), *args],
                cwd=self.workdir, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
            )
        return self.proc

    def start(self) -> Self:
        """Start and wait for READY=1; raises with the logs if the daemon exits or never gets ready.

        The free port is picked before the daemon binds it, so another test's server may take it
        in between: then (exit code 1, "cannot listen") the start is retried on a new port.
        """
        for _attempt in range(3):
            self.spawn()
            assert self.notify is not None and self.proc is not None
            if self.notify.wait_for(lambda m: count(m, "READY=1") >= 1, START_TIMEOUT, self.alive):
                return self
            code = self.proc.poll()
            self.kill()
            if code != 1 or "cannot listen on" not in self.logs or self._mapping is None \
                    or "port" in self._mapping:
                break
            self.port = free_port(self.host or "127.0.0.1")
            self.write_config(self._mapping)
        raise RuntimeError(f"daemon not ready (exit code {code}); logs:\n{self.logs}")

    def reload(self, config: Mapping[str, Any] | str | None = None) -> str:
        """Optionally rewrite the config, send SIGHUP, wait for RELOADING=1 and the next READY=1;
        return that READY message (it carries the STATUS line)."""
        assert self.proc is not None and self.notify is not None
        if config is not None:
            self.write_config(config)
        before_ready = count(self.notifications, "READY=1")
        before_reloading = count(self.notifications, "RELOADING=1")
        self.proc.send_signal(signal.SIGHUP)
        ok = self.notify.wait_for(
            lambda m: count(m, "RELOADING=1") > before_reloading and count(m, "READY=1") > before_ready,
            WAIT_TIMEOUT, self.alive,
        )
        if not ok:
            raise RuntimeError(f"no READY after SIGHUP; logs:\n{self.logs}")
        return [m for m in self.notifications if "READY=1" in m.split("\n")][-1]

    def stop(self, timeout: float = WAIT_TIMEOUT) -> int:
        """SIGTERM and wait; returns the exit code (kills after ``timeout``)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        code = self.proc.returncode
        self._close_notify()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_notify()

    def _close_notify(self) -> None:
        if self.notify is not None:
            self.notify.close()

    # --- HTTP ---------------------------------------------------------------------------------

    def connection(self, timeout: float = WAIT_TIMEOUT,
                   ssl_context: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
        host = self.host or "127.0.0.1"
        if self.tls:
            return http.client.HTTPSConnection(host, self.port, timeout=timeout, context=ssl_context)
        return http.client.HTTPConnection(host, self.port, timeout=timeout)

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                body: bytes | str | None = None, json_body: Any = None,
                ssl_context: ssl.SSLContext | None = None) -> Response:
        """One request on a fresh connection, read whole."""
        hdrs = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        conn = self.connection(ssl_context=ssl_context)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
