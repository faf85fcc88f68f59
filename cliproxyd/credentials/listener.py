"""Temporary loopback listeners on a provider's redirect port (issue 7).

The real providers only redirect to their registered URI (``http://localhost:54545/callback``
for Claude, ``http://localhost:1455/auth/callback`` for Codex), so a login needs something on
that port for a moment:

* `Forwarder` (the management flow with ``is_webui``, as the original does): answers any request
  with a 302 to the daemon's own ``/<provider>/callback`` plus the original query, with
  ``Cache-Control: no-store``;
* `LoopbackServer` with a handler of your own (``cliproxyd login``): serves the callback itself.

Both bind ``localhost`` (IPv4 and IPv6 loopback where available) and never another address.
`result_page` is the small HTML page a browser sees at the end of a login.
"""

from __future__ import annotations

import html
import logging
import socket
from typing import Any

from tornado import netutil, web
from tornado.httpserver import HTTPServer

__all__ = ["Forwarder", "LoopbackServer", "result_page", "send_result_page"]

log = logging.getLogger(__name__)


def result_page(ok: bool, message: str = "") -> str:
    """The HTML a browser shows when the callback is done (closes itself after 5 s on success)."""
    title = "Authentication successful!" if ok else "Authentication failed"
    detail = html.escape(message or ("You can close this window and return to cliproxyd."
                                     if ok else "Please try again."))
    close = "<script>setTimeout(function(){window.close();},5000);</script>" if ok else ""
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{detail}</p>{close}</body></html>")


def send_result_page(handler: web.RequestHandler, status: int, ok: bool, message: str = "") -> None:
    """Finish a callback request with `result_page` (never cached: it follows a one-time code)."""
    handler.set_status(status)
    handler.set_header("Content-Type", "text/html; charset=utf-8")
    handler.set_header("Cache-Control", "no-store")
    handler.finish(result_page(ok, message))


def _log_path(handler: web.RequestHandler) -> None:
    """Access log without the query: it carries the authorization code."""
    log.info("%d %s %s (redirect port)", handler.get_status(), handler.request.method,
             handler.request.path)


def _bind(port: int) -> list[socket.socket]:
    """Sockets on localhost:port (both loopback families when possible, else IPv4 only)."""
    try:
        return netutil.bind_sockets(port, address="localhost")
    except OSError:
        return netutil.bind_sockets(port, address="127.0.0.1")


class LoopbackServer:
    """An HTTP server on ``localhost:port`` serving ``routes`` until `stop`."""

    def __init__(self, port: int, routes: list[Any]) -> None:
        self.port = port
        self._server = HTTPServer(web.Application(routes, log_function=_log_path), xheaders=False,
                                  idle_connection_timeout=30.0, body_timeout=30.0,
                                  max_body_size=64 * 1024)
        self._started = False

    def start(self) -> None:
        """Bind and serve; OSError when the port is taken."""
        self._server.add_sockets(_bind(self.port))
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False

    @property
    def running(self) -> bool:
        return self._started


class _Redirect(web.RequestHandler):
    def initialize(self, target: str) -> None:
        self.target = target

    def get(self, *_: Any) -> None:
        query = self.request.query
        self.set_header("Cache-Control", "no-store")
        self.redirect(self.target + ("?" + query if query else ""), status=302)


class Forwarder(LoopbackServer):
    """Redirects every GET on the redirect port to ``target`` (the daemon's callback route)."""

    def __init__(self, port: int, target: str) -> None:
        super().__init__(port, [(r"/.*", _Redirect, {"target": target})])
        self.target = target
