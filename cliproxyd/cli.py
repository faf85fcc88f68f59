"""The command line: run the daemon, check a config, hash a management secret.

::

    cliproxyd [--config FILE]                 run in the foreground
    cliproxyd --check-config [--config FILE]  validate, print every problem
    cliproxyd --version
    cliproxyd hash-secret                     read a secret on stdin, print its bcrypt hash
    cliproxyd [--config FILE] login claude|codex [--no-browser]
                                              subscription login: prints the URL, waits for
                                              the redirect, writes the auth file

The config file is ``--config``, else ``$CLIPROXYD_CONFIG``, else ``./config.yaml``, else
``/etc/cliproxyd/config.yaml``.  The daemon runs on uvloop when it is installed;
``CLIPROXYD_EVENT_LOOP=asyncio`` runs it on the standard library's loop instead.
Exit codes: 0 ok, 1 cannot listen (or login failed), 64 usage, 78 bad config.
Every failure is one clear message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cliproxyd import __version__

__all__ = ["EXIT_USAGE", "find_config", "main"]

EXIT_USAGE = 64
EXIT_CONFIG = 78
_DEFAULT_PLACES = ("./config.yaml", "/etc/cliproxyd/config.yaml")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors with exit code 64 (EX_USAGE) instead of 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cliproxyd", description="Self-hosted LLM API proxy.")
    parser.add_argument("--config", metavar="FILE", help="config file (default: see README)")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.add_parser("hash-secret", help="read a secret on stdin and print a bcrypt hash")
    login = commands.add_parser("login", help="log in to a Claude Code or ChatGPT subscription")
    login.add_argument("provider", choices=("claude", "codex"), help="which subscription")
    login.add_argument("--no-browser", action="store_true",
                       help="only print the URL (do not try to open a browser)")
    return parser


def find_config(explicit: str | None, env: dict[str, str] | os._Environ = os.environ) -> str | None:
    """The config path to use: --config, $CLIPROXYD_CONFIG, ./config.yaml, /etc/cliproxyd/config.yaml."""
    if explicit:
        return explicit
    if env.get("CLIPROXYD_CONFIG"):
        return env["CLIPROXYD_CONFIG"]
    for place in _DEFAULT_PLACES:
        if os.path.exists(place):
            return place
    return None


def _err(message: str) -> None:
    print(f"cliproxyd: {message}", file=sys.stderr)


def _hash_secret() -> int:
    from cliproxyd.secrets import hash_secret

    if sys.stdin.isatty():  # typed by hand: don't echo it
        secret = getpass.getpass("secret: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_secret(secret))
    except ValueError as exc:
        _err(f"hash-secret: {exc}")
        return EXIT_USAGE
    return 0


def _load(path: str | None):
    """The validated Config, or None after printing every problem."""
    from cliproxyd.config import ConfigError, load_config
    from cliproxyd.daemon import build_ssl_context

    if path is None:
        _err("no config file: pass --config FILE or set CLIPROXYD_CONFIG (looked for "
             + " and ".join(_DEFAULT_PLACES) + ")")
        return None
    try:
        config = load_config(path)
        build_ssl_context(config)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return None
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return config


class _LogFormatter(logging.Formatter):
    """The daemon's line format.  The date and time text is made once per second, not per line:
    the access log writes a line for every request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second: int | None = None
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime(self.default_time_format, self.converter(second))
        return self.default_msec_format % (self._text, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # The format string spelled out: Formatter.format looks for "%(asctime)" in it and
        # fills it from the record's __dict__ on every line.
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"


class _BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes the lines one event-loop iteration logged in one go.

    The access log writes a line for every request, and a write system call per line (a
    wake-up of journald, under systemd) showed on the benchmark.  Lines logged on the running
    loop are written together at the end of the iteration (call_soon); a WARNING or worse is
    written at once, with everything before it, and so is a line logged off the loop (start-up,
    other threads) or after the loop stopped.  ``logging.shutdown`` (at exit) writes the rest.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # set while a write is scheduled

    def emit(self, record: logging.LogRecord) -> None:
        try:  # Handler.handle holds self.lock: emit and flush never interleave
            self._pending.append(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
            elif self._loop is not None and self._loop.is_running():
                return  # written at the end of this iteration, with the rest
            elif (loop := asyncio._get_running_loop()) is not None:
                self._loop = loop
                loop.call_soon(self.flush)
            else:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._loop = None
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                self.stream.write(text)
            super().flush()


def _setup_logging(debug: bool) -> None:
    from cliproxyd.daemon import set_log_level

    handler = _BatchedStreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter())
    logging.basicConfig(handlers=[handler])
    # Fields the format never shows, not collected for every record (the access log writes one
    # per request); the logging HOWTO's "Optimization" section names these switches.
    logging._srcfile = None  # type: ignore[attr-defined]  # caller's file and line: a frame walk
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    set_log_level(debug)


def event_loop_factory(env: Mapping[str, str] = os.environ) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop the daemon runs on, and its name for the start-up log line.

    uvloop when it is installed: its timers and callbacks cost a fraction of asyncio's, and a
    proxy arms a timer or two per request (streams gained about 20 % on the benchmark, issue 8).
    ``CLIPROXYD_EVENT_LOOP=asyncio`` is the way back to the standard loop should uvloop ever
    misbehave somewhere."""
    wanted = env.get("CLIPROXYD_EVENT_LOOP", "")
    if wanted not in ("", "uvloop", "asyncio"):
        raise _UsageError(f"CLIPROXYD_EVENT_LOOP must be uvloop or asyncio, not {wanted!r}")
    if wanted != "asyncio":
        try:
            import uvloop
        except ImportError:
            if wanted:
                raise _UsageError("CLIPROXYD_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        else:
            return f"uvloop {uvloop.__version__}", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def _serve(path: str, config) -> int:
    from cliproxyd.daemon import Daemon, StartupError

    try:
        loop_name, loop_factory = event_loop_factory()
    except _UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    _setup_logging(config.debug)
    logging.getLogger("cliproxyd").info("event loop: %s", loop_name)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(Daemon(os.path.abspath(path), config).run())
    except StartupError as err:
        _err(str(err))
        return err.exit_code
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers are installed
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cliproxyd`` console script; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        _parser().print_usage(sys.stderr)
        _err(str(exc))
        return EXIT_USAGE
    if args.version:
        print(f"cliproxyd {__version__}")
        return 0
    if args.command == "hash-secret":
        return _hash_secret()
    path = find_config(args.config)
    config = _load(path)
    if config is None:
        return EXIT_CONFIG
    if args.check_config:
        print(f"{os.path.abspath(path)}: configuration ok")
        return 0
    if args.command == "login":
        from cliproxyd.credentials.login import run_login

        return run_login(config, args.provider, open_browser=not args.no_browser)
    return _serve(path, config)
