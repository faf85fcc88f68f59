"""cliproxyd.handlers.proxy._ClientSink holds its handler weakly (a strong reference made every
request a reference cycle): a keep-alive tick that outlives its handler must stop quietly."""

from __future__ import annotations

import asyncio
import gc

from cliproxyd.handlers.proxy import _ClientSink


class _Handler:
    """What a keep-alive tick reads of a handler."""

    _finished = False

    def write(self, chunk: bytes) -> None:
        self.written = chunk

    def flush(self):
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_a_tick_after_the_handler_is_gone_stops_the_keepalive():
    async def run() -> None:
        handler = _Handler()
        sink = _ClientSink(handler, "sse", keepalive=0.01)
        sink._last_write = -1e9  # long quiet: a live handler would get a keep-alive comment
        sink._tick()
        assert handler.written.startswith(b":") and sink._timer is not None
        sink._stop_keepalive()
        del handler
        gc.collect()
        sink._tick()  # no ReferenceError, and no timer armed again
        assert sink._timer is None

    asyncio.run(run())
