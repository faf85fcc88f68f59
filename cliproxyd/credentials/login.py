"""``cliproxyd login claude|codex``: a subscription login from the command line (issue 7).

Prints the authorize URL (and opens a browser unless told not to), listens on the provider's
redirect port (``oauth.<provider>.redirect-port``, on localhost only) for the browser's
redirect, exchanges the code (in an executor), writes the auth file into ``auth-dir`` and
returns 0.  A callback with a state this login did not issue is refused and the wait goes on; a
provider error or a failed exchange ends the login with 1, as does no callback within
`LOGIN_TIMEOUT` seconds.  A running daemon picks the new file up on its next rescan or SIGHUP.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import webbrowser
from typing import Any, TextIO

from tornado import web

from cliproxyd.credentials import provider_module
from cliproxyd.credentials.listener import LoopbackServer, send_result_page
from cliproxyd.credentials.oauth import (
    FlowError,
    Flows,
    TokenError,
    authorize_url,
    redirect_uri,
)
from cliproxyd.credentials.service import exchange_and_save

__all__ = ["LOGIN_TIMEOUT", "run_login"]

LOGIN_TIMEOUT = 300.0


class _Callback(web.RequestHandler):
    """The redirect URI's handler: one successful (or failed) callback ends the login."""

    def initialize(self, login: _Login) -> None:
        self.login = login

    def _page(self, status: int, ok: bool, message: str = "") -> None:
        send_result_page(self, status, ok, message)

    async def get(self) -> None:
        state = self.get_query_argument("state", "").strip()
        code = self.get_query_argument("code", "").strip()
        error = (self.get_query_argument("error", "")
                 or self.get_query_argument("error_description", "")).strip()
        try:
            name = await self.login.complete(state, code, error)
        except FlowError as err:
            self._page(err.status, False, err.message)
            return
        self._page(200, True, f"Saved {name}. You can close this window.")


class _Login:
    """One command-line login: its flow table, the result future and the exchange."""

    def __init__(self, config: Any, provider: str) -> None:
        self.config = config
        self.module = provider_module(provider)
        self.endpoints = getattr(config.oauth, self.module.SPEC.name)
        self.flows = Flows()
        self.flow = self.flows.start(self.module.SPEC.name,
                                     redirect_uri(self.module.SPEC, self.endpoints.redirect_port),
                                     time.time())
        self.url = authorize_url(self.module.SPEC, self.endpoints, self.flow)
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def complete(self, state: str, code: str, error: str) -> str:
        """Claim the flow (forged states are refused without a token request), exchange, save."""
        flow = self.flows.claim(state, self.module.SPEC.name, time.time())
        try:
            if error:
                raise TokenError(f"the provider returned an error: {error[:200]}")
            if not code:
                raise TokenError("the callback carried no code")
            name = await asyncio.get_running_loop().run_in_executor(
                None, exchange_and_save, self.config, flow, code, time.time())
        except (TokenError, OSError) as exc:
            message = str(exc) if isinstance(exc, TokenError) else "cannot write the auth file"
            self.flows.fail(flow, message, time.time())
            if not self.done.done():
                self.done.set_exception(TokenError(message))
            raise FlowError(502 if not error else 400, message) from None
        self.flows.succeed(flow, name, time.time())
        if not self.done.done():
            self.done.set_result(name)
        return name


async def _run(config: Any, provider: str, open_browser: bool, out: TextIO,
               timeout: float) -> int:
    login = _Login(config, provider)
    path = re.escape(login.module.SPEC.redirect_path)
    server = LoopbackServer(login.endpoints.redirect_port, [(path, _Callback, {"login": login})])
    try:
        server.start()
    except OSError as exc:
        print(f"cliproxyd: login: cannot listen on localhost:{login.endpoints.redirect_port} "
              f"(the redirect port): {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        print(f"Open this URL in a browser to log in to {login.module.SPEC.name}:\n{login.url}",
              file=out, flush=True)
        if open_browser:
            await asyncio.get_running_loop().run_in_executor(None, webbrowser.open, login.url)
        print(f"Waiting for the redirect on {login.flow.redirect_uri} ...", file=out, flush=True)
        name = await asyncio.wait_for(login.done, timeout)
    except TimeoutError:
        print("cliproxyd: login: no callback arrived in time", file=sys.stderr)
        return 1
    except TokenError as exc:
        print(f"cliproxyd: login failed: {exc}", file=sys.stderr)
        return 1
    finally:
        await asyncio.sleep(0.2)  # let the browser receive its page before the server stops
        server.stop()
    print(f"Saved {os.path.join(config.auth_dir, name)}", file=out, flush=True)
    return 0


def run_login(config: Any, provider: str, *, open_browser: bool = True,
              out: TextIO = sys.stdout, timeout: float = LOGIN_TIMEOUT) -> int:
    """Run one login for ``provider`` (claude, codex or an alias); returns the exit code."""
    return asyncio.run(_run(config, provider, open_browser, out, timeout))
