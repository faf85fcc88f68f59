"""OAuth login routes (issue 7): management endpoints and the public callback routes.

Management (the management secret applies):

* ``GET /v0/management/anthropic-auth-url`` and ``/codex-auth-url`` → ``{"status":"ok","url",
  "state"}``; with ``is_webui`` (``1|true|yes|on``) a `listener.Forwarder` also listens on the
  provider's redirect port and sends the browser on to this server's callback route (500
  ``{"error":"failed to start callback server"}`` when the port is taken);
* ``GET /v0/management/get-auth-status?state=`` → ``{"status":"wait"}`` until the callback,
  ``{"status":"ok"}`` once the auth file is on disk, ``{"status":"error","error":...}`` for a
  failed login or a state never issued (or expired); 400 for a missing or malformed state;
* ``POST /v0/management/oauth-callback`` with ``{"provider", "redirect_url"}`` (the URL the
  browser could not load) or ``{"provider", "code", "state"}`` / ``"error"``.  Errors are
  ``{"status":"error","error":...}`` with 400, 404 (unknown or expired state), 409 (not pending)
  or 502 (the token endpoint failed).

Public, no key: ``GET /anthropic/callback``, ``/codex/callback``, and ``/google/callback``,
``/iflow/callback``, ``/antigravity/callback`` which answer "provider not enabled" until those
providers exist.  A callback for a state that is not pending makes no token request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from cliproxyd.credentials import PROVIDERS, provider_module
from cliproxyd.credentials.listener import Forwarder, send_result_page
from cliproxyd.credentials.oauth import FLOW_TTL, FlowError, parse_callback_url
from cliproxyd.handlers.base import BaseHandler
from cliproxyd.handlers.management import ManagementHandler

__all__ = ["AuthStatusHandler", "AuthURLHandler", "CallbackHandler", "OAuthCallbackHandler"]

log = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")


def _error(handler: BaseHandler, status: int, message: str) -> None:
    handler.write_json({"status": "error", "error": message}, status)


def _local_origin(handler: BaseHandler) -> str:
    """``scheme://host:port`` of the socket this request arrived on (the forwarder's target)."""
    sock = getattr(getattr(handler.request.connection, "stream", None), "socket", None)
    host, port = "127.0.0.1", handler.runtime.config.port
    if sock is not None:
        name = sock.getsockname()
        host, port = str(name[0]), int(name[1])
    host = f"[{host}]" if ":" in host else host
    return f"{handler.request.protocol}://{host}:{port}"


class AuthURLHandler(ManagementHandler):
    """``GET /v0/management/{anthropic,codex}-auth-url``."""

    def initialize(self, runtime_ref: Any, state: Any, route: str, provider: str) -> None:
        super().initialize(runtime_ref, state, route)
        self.provider = provider

    async def get(self) -> None:
        service = self.state.oauth
        flow, url = service.begin(self.provider)
        if self.get_query_argument("is_webui", "").strip().lower() in _TRUE:
            try:
                self._forward(flow.provider)
            except OSError as exc:
                log.error("cannot listen on the %s redirect port: %s", flow.provider,
                          exc.strerror or exc)
                service.flows.fail(flow, "failed to start callback server", service.clock())
                self.write_json({"error": "failed to start callback server"}, 500)
                return
        self.write_json({"status": "ok", "url": url, "state": flow.state})

    def _forward(self, provider: str) -> None:
        """Start (or keep) the provider's forwarder; it stops when no flow of it is pending."""
        service = self.state.oauth
        module = provider_module(provider)
        target = f"{_local_origin(self)}/{module.SPEC.session}/callback"
        current = service.forwarders.get(provider)
        if current is not None and current.running and current.target == target:
            return
        if current is not None:
            current.stop()
        port = getattr(self.runtime.config.oauth, provider).redirect_port
        forwarder = Forwarder(port, target)
        forwarder.start()
        service.forwarders[provider] = forwarder
        asyncio.get_running_loop().call_later(FLOW_TTL + 1, service.stop_idle_forwarders)


class AuthStatusHandler(ManagementHandler):
    """``GET /v0/management/get-auth-status?state=``."""

    async def get(self) -> None:
        service = self.state.oauth
        try:
            status, message = service.flows.status(self.get_query_argument("state", "").strip(),
                                                   service.clock())
        except FlowError as err:
            _error(self, err.status, err.message)
            return
        body = {"status": status}
        if status == "error":
            body["error"] = message
        self.write_json(body)


class OAuthCallbackHandler(ManagementHandler):
    """``POST /v0/management/oauth-callback`` (the redirect URL pasted by hand)."""

    async def post(self) -> None:
        try:
            provider, fields = self._fields()
            await self.state.oauth.complete(fields["state"], fields["code"], fields["error"],
                                            provider)
        except FlowError as err:
            _error(self, err.status, err.message)
            return
        finally:
            self.state.oauth.stop_idle_forwarders()
        self.write_json({"status": "ok"})

    def _fields(self) -> tuple[str, dict[str, str]]:
        try:
            body = json.loads(self.request.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError):
            raise FlowError(400, "invalid body") from None
        if not isinstance(body, dict):
            raise FlowError(400, "invalid body")
        provider = PROVIDERS.get(str(body.get("provider", "")).strip().lower())
        if provider is None:
            raise FlowError(400, "unsupported provider")
        url = body.get("redirect_url")
        if isinstance(url, str) and url.strip():
            fields = parse_callback_url(url)
        else:
            fields = {k: str(body.get(k) or "").strip() for k in ("code", "state", "error")}
        if not fields["state"]:
            raise FlowError(400, "state is required")
        if not fields["code"] and not fields["error"]:
            raise FlowError(400, "code or error is required")
        return provider, fields


class CallbackHandler(BaseHandler):
    """``GET /<provider>/callback`` on the main port: the browser lands here after consent."""

    access = "public"

    def initialize(self, runtime_ref: Any, state: Any, route: str,
                   provider: str | None) -> None:
        super().initialize(runtime_ref, state, route)
        self.provider = provider

    def _page(self, status: int, ok: bool, message: str = "") -> None:
        send_result_page(self, status, ok, message)

    async def get(self) -> None:
        if self.provider is None:
            self._page(404, False, "This provider is not enabled in cliproxyd yet.")
            return
        state = self.get_query_argument("state", "").strip()
        code = self.get_query_argument("code", "").strip()
        error = (self.get_query_argument("error", "")
                 or self.get_query_argument("error_description", "")).strip()
        try:
            await self.state.oauth.complete(state, code, error, self.provider)
        except FlowError as err:
            self._page(err.status, False, err.message)
            return
        finally:
            self.state.oauth.stop_idle_forwarders()
        self._page(200, True)
