"""A Tornado application served on 127.0.0.1:<free port> from its own thread and event loop, so
blocking tests (SDK calls, a daemon subprocess) can talk to it.  Used by every fake here."""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, Self

import tornado.httpserver
import tornado.netutil
import tornado.web


class BackgroundServer:
    """Starts at once; `stop` cancels what is still running and ends the thread."""

    def __init__(self, make_app: Callable[[], tornado.web.Application], name: str) -> None:
        self._make_app = make_app
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{name} did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]

        async def serve() -> None:
            self._server = tornado.httpserver.HTTPServer(self._make_app())
            self._server.add_sockets(sockets)

        loop.run_until_complete(serve())
        self._loop = loop
        self._ready.set()
        loop.run_forever()
        loop.close()

    def stop(self) -> None:
        """Stop serving and end the thread (handlers still running are cancelled)."""
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return

        def shutdown() -> None:
            if self._server is not None:
                self._server.stop()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_later(0.05, loop.stop)

        loop.call_soon_threadsafe(shutdown)
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
