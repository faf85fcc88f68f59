"""Chat Completions streaming: upstream ``chat.completion.chunk`` events <-> IR stream events.

`StreamDecoder` turns an OpenAI-compatible SSE stream into IR events; `StreamEncoder` writes IR
events as the official chunk sequence (role chunk, content / reasoning_content / tool_calls
deltas, finish chunk, usage chunk when the client asked ``stream_options.include_usage``,
``[DONE]``).  Both are small state machines with named state.  Pure: no I/O, no clock.

Decoder rules (documented choices):

* The terminal event is ``data: [DONE]``.  `MessageStop` is emitted there, after the usage chunk
  that OpenAI sends between the finish chunk and ``[DONE]``, so consumers usually see the usage
  first.  A stream that ends after a ``finish_reason`` but without ``[DONE]`` is complete (the
  model said it finished; at worst the trailing usage chunk is missing).  A stream with neither
  is truncated: `finish` returns a `StreamError` (upstream_error, 502).
* IR allows one open block at a time.  Parallel tool calls arrive keyed by ``index``: a call
  whose arguments start while another call is open closes that call.  A call announced (id and
  name) while the open call has no arguments yet waits until its own arguments start, so
  providers that announce all calls first and then stream each call's arguments decode
  correctly.  Arguments for a call that was already closed cannot be represented and end the
  stream with a `StreamError`.
* Tool calls with ``finish_reason`` ``stop`` (or none) are reported as `StopReason.TOOL_USE`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir
from cliproxyd.formats._openai_chat_common import (
    error_from_wire,
    finish_from_stop,
    render_error,
    stop_reason_from_finish,
    usage_from_wire,
    usage_to_wire,
)
from cliproxyd.formats.sse import Event

logger = logging.getLogger(__name__)

DONE = "[DONE]"
TRUNCATED = "upstream stream ended before completion"


def stop_reason_for(finish: str | None, had_tool_calls: bool) -> ir.StopReason:
    """IR stop reason of a Chat answer, upgraded to tool_use when calls were made."""
    reason = stop_reason_from_finish(finish)
    if had_tool_calls and reason is ir.StopReason.END_TURN:
        return ir.StopReason.TOOL_USE
    return reason


def wants_usage(request: ir.Request | None) -> bool:
    """Did the client ask for the trailing usage chunk (``stream_options.include_usage``)?"""
    options = request.extras.get("stream_options") if request is not None else None
    return isinstance(options, ir.MAPPING) and options.get("include_usage") is True


# =============================================================================================
# decoder


def _read_chunk(event: Event, parse: Callable[[str], Any] = jsontext.loads
                ) -> dict | str | ProxyError | None:
    """One upstream SSE event: its chunk object, `DONE`, the error it is or carries, or None
    (an empty event).  ``parse``: `jsontext.peek` where the chunk is only looked at."""
    data = event.data.strip()
    if data == DONE:
        return DONE
    if not data:
        return None
    try:
        chunk = parse(data)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        return ProxyError(ErrorKind.UPSTREAM_ERROR, "malformed chunk in upstream stream")
    if chunk.get("error") or event.event == "error":
        return error_from_wire(chunk.get("error", chunk))
    if chunk.get("object") == "error":  # vLLM-style bare error object
        return error_from_wire(chunk)
    return chunk


@dataclass
class _Call:
    """One streamed tool call, keyed by its Chat ``index``."""

    id: str
    name: str
    block: int | None = None  # IR block index once opened
    has_args: bool = False
    closed: bool = False


@dataclass
class _Open:
    kind: str  # "text", "thinking" or "tool"
    index: int
    call: _Call | None = None


class _ChunkFeed:
    """What the decoder and the passthrough watcher share: each SSE event read as a chunk,
    ``[DONE]`` or an error, and nothing after the end.  Subclasses handle ``_chunk`` and
    ``_terminal``."""

    _done = False
    _finish: str | None = None  # the finish_reason seen, if any
    _parse: Callable[[str], Any] = staticmethod(jsontext.loads)

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """One SSE event in, the IR events it means out."""
        if self._done:
            return []
        chunk = _read_chunk(event, self._parse)
        if chunk is None:
            return []
        if chunk is DONE:
            return self._terminal()
        if isinstance(chunk, ProxyError):
            return self._fail(chunk)
        return self._chunk(chunk)

    def finish(self) -> list[ir.StreamEvent]:
        """End of upstream bytes: complete after a ``finish_reason``, else truncated."""
        if self._done:
            return []
        if self._finish is not None:
            return self._terminal()
        return self._fail(ProxyError(ErrorKind.UPSTREAM_ERROR, TRUNCATED))

    def _chunk(self, chunk: dict) -> list[ir.StreamEvent]:
        raise NotImplementedError

    def _terminal(self) -> list[ir.StreamEvent]:
        raise NotImplementedError

    def _fail(self, error: ProxyError) -> list[ir.StreamEvent]:
        self._done = True
        return [ir.StreamError(error)]


class StreamDecoder(_ChunkFeed):
    """Upstream Chat SSE events → IR stream events (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._open: _Open | None = None
        self._next_block = 0
        self._calls: dict[int, _Call] = {}
        self._last_call: int | None = None
        self._finish: str | None = None

    # -- chunk handling ------------------------------------------------------------------------

    def _chunk(self, chunk: Mapping[str, Any]) -> list[ir.StreamEvent]:
        out = self._start(chunk)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, ir.MAPPING) and choice.get("index") in (0, None):
                out += self._choice(choice)
                if self._done:
                    return out
        usage = usage_from_wire(chunk.get("usage"))
        if usage is not None:
            out.append(ir.UsageUpdate(usage))
        return out

    def _start(self, chunk: Mapping[str, Any]) -> list[ir.StreamEvent]:
        if self._started:
            return []
        self._started = True
        cid, model = chunk.get("id"), chunk.get("model")
        return [ir.MessageStart(id=cid if isinstance(cid, str) else None,
                                model=model if isinstance(model, str) else None)]

    def _choice(self, choice: Mapping[str, Any]) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        delta = choice.get("delta")
        if isinstance(delta, ir.MAPPING):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._text("thinking", reasoning)
            for key in ("content", "refusal"):
                if isinstance(delta.get(key), str) and delta[key]:
                    out += self._text("text", delta[key])
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, ir.MAPPING):
                    out += self._tool_delta(call)
                    if self._done:
                        return out
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            out += self._close_open() + self._flush_pending()
            self._finish = finish
        return out

    def _text(self, kind: str, text: str) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if self._open is None or self._open.kind != kind:
            out += self._close_open() + self._flush_pending()
            self._open = _Open(kind, self._new_block())
            out.append(ir.BlockStart(self._open.index, kind))
        index = self._open.index
        out.append(ir.TextDelta(index, text) if kind == "text" else ir.ThinkingDelta(index, text))
        return out

    def _tool_delta(self, delta: Mapping[str, Any]) -> list[ir.StreamEvent]:
        key = self._call_key(delta)
        fn = delta.get("function") if isinstance(delta.get("function"), ir.MAPPING) else {}
        args = fn.get("arguments") if isinstance(fn.get("arguments"), str) else ""
        out: list[ir.StreamEvent] = []
        call = self._calls.get(key)
        if call is None:
            cid, name = delta.get("id"), fn.get("name")
            call = _Call(id=cid if isinstance(cid, str) and cid else f"call_{key}",
                         name=name if isinstance(name, str) else "")
            self._calls[key] = call
            if not self._open_call_waits():
                out += self._open_call(call)
        if args:
            if call.closed:
                return out + self._fail(ProxyError(
                    ErrorKind.UPSTREAM_ERROR, "upstream interleaved parallel tool call arguments"))
            if call.block is None:
                out += self._open_call(call)
            call.has_args = True
            out.append(ir.ToolArgsDelta(call.block, args))
        return out

    def _call_key(self, delta: Mapping[str, Any]) -> int:
        key = delta.get("index")
        if not isinstance(key, int) or isinstance(key, bool):
            # Some providers omit index: a new id starts a new call, else it continues the last.
            cid = delta.get("id")
            new = self._last_call is None or (
                isinstance(cid, str) and all(c.id != cid for c in self._calls.values()))
            key = len(self._calls) if new else self._last_call
        self._last_call = key
        return key

    def _open_call_waits(self) -> bool:
        """True when the open block is a tool call still waiting for its first arguments."""
        return self._open is not None and self._open.kind == "tool" and not self._open.call.has_args

    def _open_call(self, call: _Call) -> list[ir.StreamEvent]:
        out = self._close_open()
        call.block = self._new_block()
        self._open = _Open("tool", call.block, call)
        return out + [ir.ToolCallStart(call.block, call.id, call.name)]

    def _close_open(self) -> list[ir.StreamEvent]:
        if self._open is None:
            return []
        index, call = self._open.index, self._open.call
        if call is not None:
            call.closed = True
        self._open = None
        return [ir.BlockStop(index)]

    def _flush_pending(self) -> list[ir.StreamEvent]:
        """Announced calls that never got arguments: start and stop them, in index order."""
        out: list[ir.StreamEvent] = []
        for key in sorted(self._calls):
            call = self._calls[key]
            if call.block is None:
                out += self._open_call(call) + self._close_open()
        return out

    def _new_block(self) -> int:
        self._next_block += 1
        return self._next_block - 1

    def _terminal(self) -> list[ir.StreamEvent]:
        out = self._start({}) + self._close_open() + self._flush_pending()
        self._done = True
        reason = stop_reason_for(self._finish, bool(self._calls))
        return out + [ir.MessageStop(stop_reason=reason, native_stop_reason=self._finish)]



class StreamWatcher(_ChunkFeed):
    """Passthrough: a Chat stream forwarded to a Chat client as the upstream wrote it is watched,
    not decoded.  The relay needs its opening, its usage, an in-stream error and whether it
    ended; the content is the client's to read (so a shape IR cannot hold, such as interleaved
    parallel tool-call arguments, is no error here).

    Emits only `MessageStart`, `UsageUpdate`, `StreamError` and `MessageStop`, where and as
    `StreamDecoder` would; ends and truncation follow the same rules.  ``usage_only`` says
    whether the last event fed carried usage and nothing else (the chunk ``include_usage``
    adds); ``model_seen`` is the model name the last event's chunk gave, if any (the relay
    puts the client's name in its place)."""

    _parse = staticmethod(jsontext.peek)  # chunks are forwarded as they came, only looked at

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._finish: str | None = None
        self._tools = False
        self.usage_only = False
        self.model_seen: str | None = None

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """Watch one SSE event."""
        self.usage_only = False
        self.model_seen = None
        return super().feed(event)

    def _chunk(self, chunk: dict) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        model = chunk.get("model")
        self.model_seen = model if isinstance(model, str) else None
        busy = not self._started
        if busy:
            out = self._start(chunk)
        # Parsed JSON holds plain dicts: `dict` checks, not the Mapping ABC's slower ones (this
        # runs for every event of every passthrough stream).
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index") in (0, None):
                busy = self._choice(choice) or busy
        if "usage" in chunk:
            usage = usage_from_wire(chunk["usage"])
            if usage is not None:
                out.append(ir.UsageUpdate(usage))
                self.usage_only = not busy
        return out

    def _start(self, chunk: Mapping[str, Any]) -> list[ir.StreamEvent]:
        self._started = True
        cid, model = chunk.get("id"), chunk.get("model")
        return [ir.MessageStart(id=cid if isinstance(cid, str) else None,
                                model=model if isinstance(model, str) else None)]

    def _choice(self, choice: Mapping[str, Any]) -> bool:
        """Notes the choice's finish and tool calls; whether it carried anything."""
        busy = False
        delta = choice.get("delta")
        if isinstance(delta, dict) and delta:
            get = delta.get  # the content keys spelled out, not any() over a tuple: per event
            calls = get("tool_calls")
            busy = bool(get("content") or calls or get("refusal") or get("reasoning_content")
                        or get("reasoning"))
            self._tools = self._tools or bool(calls)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self._finish, busy = finish, True
        return busy

    def _terminal(self) -> list[ir.StreamEvent]:
        out = [] if self._started else self._start({})
        self._done = True
        reason = stop_reason_for(self._finish, self._tools)
        return out + [ir.MessageStop(stop_reason=reason, native_stop_reason=self._finish)]


# =============================================================================================
# encoder


class ChunkStream:
    """IR stream events → the sequence of chunk payloads; subclasses shape each chunk.

    Holds the state both the Chat encoder and the legacy completions encoder need: whether the
    first chunk went out, the tool call counter, usage so far, whether the finish chunk and the
    terminator were written.
    """

    def __init__(self, ctx: ir.EncodeContext) -> None:
        self._ctx = ctx
        self._id: str | None = None
        self._include_usage = wants_usage(ctx.request)
        self._tools: dict[int, int] = {}  # IR block index → 0-based tool call counter
        self._usage = ir.Usage()
        self._stopped = False
        self._closed = False

    def feed(self, event: ir.StreamEvent) -> list[Event]:
        """Encode one IR event."""
        if self._closed:
            return []
        if isinstance(event, ir.StreamError):
            self._closed = True
            return [Event(data=jsontext.dumps(render_error(event.error)))]
        if isinstance(event, ir.UsageUpdate):
            self._usage = self._usage.merged(event.usage)
            return []
        if isinstance(event, ir.MessageStart):
            return self._begin(event.id)
        if self._stopped:
            return []  # nothing may follow the finish chunk but usage and [DONE]
        if isinstance(event, ir.MessageStop):
            return self._stop(event.stop_reason)
        delta = self._delta(event)
        return [] if delta is None else self._begin(None) + [self._emit(delta, None)]

    def finish(self) -> list[Event]:
        """End of the IR stream: finish chunk if missing, usage chunk if asked, ``[DONE]``."""
        if self._closed:
            return []
        out = [] if self._stopped else self._stop(ir.StopReason.END_TURN)
        self._closed = True
        if self._include_usage:
            out.append(self._usage_event())
        return out + [Event(data=DONE)]

    # -- hooks -----------------------------------------------------------------------------------

    def _delta(self, event: ir.StreamEvent) -> dict[str, Any] | None:
        raise NotImplementedError

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def _first_delta(self) -> dict[str, Any] | None:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------

    def _begin(self, source_id: str | None) -> list[Event]:
        if self._id is not None:
            return []
        self._id = source_id or self._ctx.response_id
        first = self._first_delta()
        return [] if first is None else [self._emit(first, None)]

    def _stop(self, reason: ir.StopReason) -> list[Event]:
        out = self._begin(None)
        self._stopped = True
        return out + [self._emit({}, self._finish_reason(reason))]

    def _finish_reason(self, reason: ir.StopReason) -> str:
        return finish_from_stop(reason, had_tool_calls=bool(self._tools))

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self._id or self._ctx.response_id, "object": obj,
                "created": self._ctx.created, "model": self._ctx.model}

    def _emit(self, delta: dict[str, Any], finish: str | None) -> Event:
        chunk = self._chunk(delta, finish)
        if self._include_usage:
            chunk["usage"] = None  # as OpenAI does: every chunk but the last says usage null
        return Event(data=jsontext.dumps(chunk))

    def _usage_event(self) -> Event:
        chunk = self._chunk({}, None)
        chunk["choices"] = []
        chunk["usage"] = usage_to_wire(self._usage)
        return Event(data=jsontext.dumps(chunk))


class StreamEncoder(ChunkStream):
    """IR stream events → ``chat.completion.chunk`` SSE events for a Chat client."""

    def _first_delta(self) -> dict[str, Any]:
        return {"role": "assistant", "content": ""}

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**self._envelope("chat.completion.chunk"), "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _delta(self, event: ir.StreamEvent) -> dict[str, Any] | None:
        if isinstance(event, ir.TextDelta):
            return {"content": event.text} if event.text else None
        if isinstance(event, ir.ThinkingDelta):
            return {"reasoning_content": event.text} if event.text else None
        if isinstance(event, ir.ToolCallStart):
            number = self._tools.setdefault(event.index, len(self._tools))
            return {"tool_calls": [{"index": number, "id": event.id, "type": "function",
                                    "function": {"name": event.name, "arguments": ""}}]}
        if isinstance(event, ir.ToolArgsDelta):
            number = self._tools.get(event.index)
            if number is None or not event.json:
                return None
            return {"tool_calls": [{"index": number, "function": {"arguments": event.json}}]}
        if isinstance(event, ir.BlockStart) and event.kind == "redacted_thinking":
            logger.debug("redacted thinking has no Chat Completions form; dropped")
        return None
