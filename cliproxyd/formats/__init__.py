"""The codec interface and the registry of API formats.

Each format module (`openai_chat`, `openai_responses`, `claude`, `gemini`) exports the names
declared by `Codec`; `FORMATS` maps a format name to its module.  Nothing else lives here.
Modules in this package do no I/O, read no clock and never import Tornado.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol

from cliproxyd.errors import ProxyError
from cliproxyd.formats.ir import EncodeContext, Request, Response, StreamEvent
from cliproxyd.formats.sse import Event

__all__ = ["Codec", "StreamDecoderProto", "StreamEncoderProto", "FORMAT_NAMES", "codec"]

FORMAT_NAMES = ("openai_chat", "openai_responses", "claude", "gemini")


class StreamDecoderProto(Protocol):
    """Wire stream events (already split by `sse.Parser`) in, IR stream events out."""

    def feed(self, event: Event) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]:
        """End of upstream bytes: a stream that never reached its terminal event yields a
        `StreamError` here (never a silent, truncated success)."""
        ...


class StreamEncoderProto(Protocol):
    """IR stream events in, wire events out (framed as SSE, a JSON array or WebSocket frames by
    the caller)."""

    def feed(self, event: StreamEvent) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


class Codec(Protocol):
    """What every format module provides (checked by tests/formats/test_protocol.py)."""

    def decode_request(self, body: Mapping[str, Any], *, model: str | None = None) -> Request:
        """Client body → IR.  ``model`` overrides the body's (Gemini carries it in the URL).
        Raises `ProxyError` (invalid_request) for a body the format does not allow."""
        ...

    def decode_request_head(self, body: Mapping[str, Any], *,
                            model: str | None = None) -> tuple[str, bool]:
        """(model, stream) of a client body, with `decode_request`'s checks of those two: what
        a request passed through to an upstream of the same format needs (the rest of the body
        is then the upstream's to judge, and is decoded only if the IR is needed after all)."""
        ...

    def encode_request(self, request: Request, *, model: str) -> dict[str, Any]:
        """IR → upstream body, asking for ``model`` (the upstream's name for it)."""
        ...

    def decode_response(self, body: Mapping[str, Any]) -> Response: ...

    def encode_response(self, response: Response, ctx: EncodeContext) -> dict[str, Any]: ...

    def render_error(self, error: ProxyError) -> dict[str, Any]:
        """The JSON body this format's clients expect for ``error`` (status is ``error.status``)."""
        ...

    StreamDecoder: type[StreamDecoderProto]
    StreamEncoder: type[StreamEncoderProto]  # constructed as StreamEncoder(ctx: EncodeContext)
    # Optional: ``StreamWatcher()``, a `StreamDecoderProto` for streams passed through to a client
    # of the same format.  It emits only MessageStart, UsageUpdate, StreamError and MessageStop,
    # and sets ``usage_only`` on an event that carried usage and nothing else.  Optional too:
    # ``watch_response(body) -> Usage``, the same for a whole answer (raises as decode_response).


@functools.cache
def codec(name: str) -> ModuleType:
    """The codec module for a format name (one of `FORMAT_NAMES`).  Cached: the pipeline asks
    for one per upstream attempt, and import_module takes the import lock every time."""
    if name not in FORMAT_NAMES:
        raise KeyError(name)
    return importlib.import_module(f"cliproxyd.formats.{name}")
