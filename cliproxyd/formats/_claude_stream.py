"""Anthropic Messages streams: wire events ↔ IR stream events (two small state machines).

Private helper of `cliproxyd.formats.claude`, which re-exports `StreamDecoder`,
`StreamEncoder` and the passthrough `StreamWatcher`.  Pure: no I/O, no clock, state lives in named instance fields.

The official sequence (issue 3 point 7): ``message_start``, then per block
``content_block_start`` / ``content_block_delta``* / ``content_block_stop``, then
``message_delta`` (stop reason + cumulative usage) and ``message_stop``; ``ping`` may appear
anywhere; ``error`` ends a stream.  Every frame is ``Event(event=<type>, data=<json>)``: the
official SDK ignores frames without an event name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError, anthropic_type_for
from cliproxyd.formats import ir
from cliproxyd.formats._claude_blocks import (
    compact_json,
    error_from_claude,
    safe_tool_id,
    stop_from_claude,
    stop_to_claude,
    usage_from_claude,
    usage_to_claude,
)
from cliproxyd.formats.sse import Event

__all__ = ["StreamDecoder", "StreamEncoder", "StreamWatcher"]

logger = logging.getLogger("cliproxyd.formats.claude")

_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
               "cache_creation_input_tokens", "output_tokens_details")


def _truncated() -> ir.StreamError:
    return ir.StreamError(ProxyError(ErrorKind.UPSTREAM_ERROR,
                                     "upstream stream ended before completion", status=502))


class StreamDecoder:
    """Upstream Messages SSE events → IR stream events.  ``message_stop`` and ``error`` are
    terminal; anything after them is ignored.  Blocks the IR does not model (server tool use and
    results) are skipped with their deltas, and the remaining blocks are renumbered from 0."""

    model_seen: str | None = None
    _parse: Callable[[str], Any] = staticmethod(jsontext.loads)

    def __init__(self) -> None:
        self._done = False
        self._ir_index: dict[int, int] = {}  # wire block index → IR block index
        self._next_index = 0
        self._usage: dict[str, Any] = {}  # Anthropic usage so far (cumulative fields)
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """One SSE event in, the IR events it means out."""
        if self._done or event.event == "ping":
            return []
        try:
            data = self._parse(event.data)
        except ValueError:
            return self._fail("upstream sent a stream event that is not JSON")
        if not isinstance(data, ir.MAPPING):
            return self._fail("upstream sent a stream event that is not an object")
        handler = self._handlers.get(event.event or str(data.get("type")))
        if handler is None:
            return []  # ping without a name, or a future event type
        try:
            return handler(self, data)
        except (KeyError, TypeError, ValueError, AttributeError):
            return self._fail(f"upstream sent a malformed {event.event or data.get('type')} event")

    def finish(self) -> list[ir.StreamEvent]:
        """End of upstream bytes: a stream without ``message_stop`` is an error."""
        if self._done:
            return []
        self._done = True
        return [_truncated()]

    def _fail(self, message: str) -> list[ir.StreamEvent]:
        self._done = True
        return [ir.StreamError(ProxyError(ErrorKind.UPSTREAM_ERROR, message, status=502))]

    def _merge_usage(self, usage: Any) -> bool:
        if not isinstance(usage, ir.MAPPING):
            return False
        self._usage.update({k: usage[k] for k in _USAGE_KEYS if usage.get(k) is not None})
        return True

    def _message_start(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        message = data["message"]
        self._merge_usage(message.get("usage"))
        usage = usage_from_claude(self._usage) if self._usage else None
        msg_id, model = message.get("id"), message.get("model")
        self.model_seen = model if isinstance(model, str) else None
        return [ir.MessageStart(id=msg_id if isinstance(msg_id, str) else None,
                                model=model if isinstance(model, str) else None, usage=usage)]

    def _block_start(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        wire, block = int(data["index"]), data["content_block"]
        btype = block["type"]
        if btype not in ("text", "thinking", "redacted_thinking", "tool_use"):
            return []  # server tool blocks: not part of the IR
        index = self._ir_index[wire] = self._next_index
        self._next_index += 1
        if btype == "tool_use":
            out: list[ir.StreamEvent] = [ir.ToolCallStart(index, str(block["id"]), str(block["name"]))]
            if block.get("input"):
                out.append(ir.ToolArgsDelta(index, compact_json(block["input"])))
            return out
        if btype == "redacted_thinking":
            return [ir.BlockStart(index, btype, data=str(block.get("data", "")))]
        out = [ir.BlockStart(index, btype)]
        if btype == "text" and block.get("text"):
            out.append(ir.TextDelta(index, str(block["text"])))
        if btype == "thinking" and (block.get("thinking") or block.get("signature")):
            out.append(ir.ThinkingDelta(index, str(block.get("thinking") or ""),
                                        block.get("signature") or None))
        return out

    def _block_delta(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        index = self._ir_index.get(int(data["index"]))
        delta = data["delta"]
        if index is None:
            return []
        dtype = delta["type"]
        if dtype == "text_delta":
            return [ir.TextDelta(index, str(delta["text"]))]
        if dtype == "thinking_delta":
            return [ir.ThinkingDelta(index, str(delta["thinking"]))]
        if dtype == "signature_delta":
            return [ir.ThinkingDelta(index, "", str(delta["signature"]))]
        if dtype == "input_json_delta":
            partial = str(delta["partial_json"])
            return [ir.ToolArgsDelta(index, partial)] if partial else []
        return []  # citations_delta and future delta types

    def _block_stop(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        index = self._ir_index.get(int(data["index"]))
        return [] if index is None else [ir.BlockStop(index)]

    def _message_delta(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        delta = data.get("delta")
        if isinstance(delta, ir.MAPPING):
            reason, sequence = delta.get("stop_reason"), delta.get("stop_sequence")
            self._stop_reason = reason if isinstance(reason, str) else self._stop_reason
            self._stop_sequence = sequence if isinstance(sequence, str) else self._stop_sequence
        if self._merge_usage(data.get("usage")):
            return [ir.UsageUpdate(usage_from_claude(self._usage))]
        return []

    def _message_stop(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        self._done = True
        return [ir.MessageStop(stop_from_claude(self._stop_reason), self._stop_sequence,
                               self._stop_reason)]

    def _error(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        self._done = True
        return [ir.StreamError(error_from_claude(data))]

    # Plain functions, called with the decoder: a per-instance table of bound methods would be
    # a reference cycle, left for the garbage collector after every stream.
    _handlers: Mapping[str, Callable[[Any, Mapping[str, Any]], list[ir.StreamEvent]]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "content_block_stop": _block_stop,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
        "error": _error,
    }


def _skip(decoder: StreamDecoder, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
    return []


class StreamWatcher(StreamDecoder):
    """Passthrough: a Messages stream forwarded to a Messages client as the upstream wrote it is
    watched, not decoded.  Block events are the client's to read (they are only checked to be
    JSON objects); the opening, usage, stop and errors are read exactly as `StreamDecoder` reads
    them, so the relay sees the same `MessageStart`, `UsageUpdate`, `MessageStop` and
    `StreamError` events."""

    usage_only = False  # Messages has no usage-only event for the relay to hold back
    _parse = staticmethod(jsontext.peek)  # events are forwarded as they came, only looked at

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """Watch one SSE event; ``model_seen`` is the model name it gave (``message_start``)."""
        self.model_seen = None
        return super().feed(event)

    _handlers = {**StreamDecoder._handlers, "content_block_start": _skip,
                 "content_block_delta": _skip, "content_block_stop": _skip}


def _frame(payload: dict[str, Any]) -> Event:
    return Event(event=payload["type"],
                 data=jsontext.dumps(payload))


_START_BLOCKS: Mapping[str, Callable[[str | None], dict[str, Any]]] = {
    "text": lambda _: {"type": "text", "text": ""},
    "thinking": lambda _: {"type": "thinking", "thinking": "", "signature": ""},
    "redacted_thinking": lambda data: {"type": "redacted_thinking", "data": data or ""},
}


class StreamEncoder:
    """IR stream events → the official Messages event sequence, whatever decoder produced them.

    Missing pieces are synthesised (``message_start`` before the first block, a block for a delta
    that arrives without one, stops for blocks left open), block indices are renumbered from 0,
    and ``message_delta`` is held back after `MessageStop` until the next `UsageUpdate` (or
    `finish`) so usage reported after the stop still reaches the client.  After ``error`` or
    ``message_stop`` nothing more is emitted.
    """

    def __init__(self, ctx: ir.EncodeContext) -> None:
        self._ctx = ctx
        self._started = False
        self._closed = False
        self._usage = ir.Usage()
        self._next_wire = 0
        self._open: tuple[int, str, int] | None = None  # (wire index, kind, IR index)
        self._saw_tool = False
        self._stop: ir.MessageStop | None = None  # received, message_delta not yet sent

    def feed(self, event: ir.StreamEvent) -> list[Event]:
        """One IR event in, wire events out."""
        if self._closed:
            return []
        if isinstance(event, ir.StreamError):
            self._closed = True
            return [_frame({"type": "error", "error": _error_object(event.error)})]
        if isinstance(event, ir.UsageUpdate):
            self._usage = self._usage.merged(event.usage)
            return self._end_message() if self._stop is not None else []
        if self._stop is not None:
            return []
        return self._dispatch(event)

    def finish(self) -> list[Event]:
        """End of the IR stream: close whatever is open and end the message."""
        if self._closed:
            return []
        out = self._start(None) + self._close_block()
        if self._stop is None:
            self._stop = ir.MessageStop()
        return out + self._end_message()

    def _dispatch(self, event: ir.StreamEvent) -> list[Event]:
        if isinstance(event, ir.MessageStart):
            if event.usage is not None:
                self._usage = self._usage.merged(event.usage)
            return self._start(event)
        if isinstance(event, ir.BlockStart):
            return self._open_block(event.index, event.kind, event.data)
        if isinstance(event, ir.ToolCallStart):
            return self._open_tool(event)
        if isinstance(event, ir.TextDelta):
            return self._text(event)
        if isinstance(event, ir.ThinkingDelta):
            return self._thinking(event)
        if isinstance(event, ir.ToolArgsDelta):
            return self._tool_args(event)
        if isinstance(event, ir.BlockStop):
            open_block = self._open
            return self._close_block() if open_block and open_block[2] == event.index else []
        if isinstance(event, ir.MessageStop):
            out = self._start(None) + self._close_block()
            self._stop = event
            return out
        return []

    def _start(self, event: ir.MessageStart | None) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message = {
            "id": (event.id if event and event.id else None) or self._ctx.response_id,
            "type": "message", "role": "assistant", "content": [], "model": self._ctx.model,
            "stop_reason": None, "stop_sequence": None, "usage": usage_to_claude(self._usage),
        }
        return [_frame({"type": "message_start", "message": message})]

    def _close_block(self) -> list[Event]:
        if self._open is None:
            return []
        wire, self._open = self._open[0], None
        return [_frame({"type": "content_block_stop", "index": wire})]

    def _begin(self, index: int, kind: str, block: dict[str, Any]) -> list[Event]:
        out = self._start(None) + self._close_block()
        self._open = (self._next_wire, kind, index)
        self._next_wire += 1
        return out + [_frame({"type": "content_block_start", "index": self._open[0],
                              "content_block": block})]

    def _open_block(self, index: int, kind: str, data: str | None = None) -> list[Event]:
        kind = kind if kind in _START_BLOCKS else "text"
        return self._begin(index, kind, _START_BLOCKS[kind](data))

    def _open_tool(self, event: ir.ToolCallStart) -> list[Event]:
        self._saw_tool = True
        tool_id = event.id or f"toolu_{self._ctx.response_id}_{self._next_wire}"
        block = {"type": "tool_use", "id": safe_tool_id(tool_id), "name": event.name, "input": {}}
        return self._begin(event.index, "tool_use", block)

    def _ensure(self, index: int, kind: str) -> list[Event]:
        if self._open is not None and self._open[1:] == (kind, index):
            return []
        return self._open_block(index, kind)

    def _delta(self, delta: dict[str, Any]) -> Event:
        assert self._open is not None
        return _frame({"type": "content_block_delta", "index": self._open[0], "delta": delta})

    def _text(self, event: ir.TextDelta) -> list[Event]:
        if not event.text:
            return []
        out = self._ensure(event.index, "text")
        return out + [self._delta({"type": "text_delta", "text": event.text})]

    def _thinking(self, event: ir.ThinkingDelta) -> list[Event]:
        if not event.text and not event.signature:
            return []
        out = self._ensure(event.index, "thinking")
        if event.text:
            out.append(self._delta({"type": "thinking_delta", "thinking": event.text}))
        if event.signature:
            out.append(self._delta({"type": "signature_delta", "signature": event.signature}))
        return out

    def _tool_args(self, event: ir.ToolArgsDelta) -> list[Event]:
        if self._open is None or self._open[1:] != ("tool_use", event.index):
            logger.debug("dropping tool arguments for a tool call that is not open")
            return []
        if not event.json:
            return []
        return [self._delta({"type": "input_json_delta", "partial_json": event.json})]

    def _end_message(self) -> list[Event]:
        stop = self._stop or ir.MessageStop()
        self._closed = True
        reason = stop_to_claude(stop.stop_reason, stop.native_stop_reason, self._saw_tool)
        delta = {"stop_reason": reason,
                 "stop_sequence": stop.stop_sequence if reason == "stop_sequence" else None}
        usage = usage_to_claude(self._usage, with_input=self._usage.input_tokens is not None)
        return [_frame({"type": "message_delta", "delta": delta, "usage": usage}),
                _frame({"type": "message_stop"})]


def _error_object(error: ProxyError) -> dict[str, Any]:
    return {"type": anthropic_type_for(error), "message": error.message}
