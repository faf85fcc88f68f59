"""Gemini streaming: ``streamGenerateContent?alt=sse`` events ↔ IR stream events.

Each SSE ``data:`` event of a Gemini stream is a whole ``GenerateContentResponse``; there is no
start or end event.  The chunk that carries ``finishReason`` ends the message and (normally) the
final ``usageMetadata``; the stream then just ends.

* `StreamDecoder` (upstream → IR): text parts accumulate into one text block and thought parts
  into one thinking block (a ``thoughtSignature`` on a part is attached to the open thinking
  block, or dropped: IR text/tool blocks carry none); each ``functionCall`` becomes ToolCallStart
  + one ToolArgsDelta with the whole JSON + BlockStop; the finishing chunk closes the open block
  and yields UsageUpdate then MessageStop.  ``{"error": {...}}`` mid-stream becomes StreamError.
  Inline images cannot be streamed through the IR and are dropped (logged).
* `StreamEncoder` (IR → client): every text/thinking delta becomes a chunk
  ``{"candidates": [{"content": {"role": "model", "parts": [...]}, "index": 0}], "modelVersion",
  "responseId"}``; a tool call is emitted whole when its block stops (Gemini never splits
  ``args``).  The final chunk, carrying ``finishReason`` and ``usageMetadata``, is written by
  `finish()` so that usage arriving after MessageStop is still included.  A StreamError is
  written as ``data: {"error": {"code", "message", "status"}}`` and ends the stream.

Pure state machines: no I/O, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError, kind_for_status
from cliproxyd.formats import ir
from cliproxyd.formats._gemini_common import (
    CallIds,
    answer_call_ids,
    decode_part,
    encode_call,
    finish_reason_for,
    get,
    render_error,
    stop_reason_from_gemini,
    usage_from_gemini,
    usage_to_gemini,
)
from cliproxyd.formats.sse import Event

__all__ = ["StreamDecoder", "StreamEncoder"]

logger = logging.getLogger("cliproxyd.formats.gemini")


def _incomplete() -> ir.StreamError:
    return ir.StreamError(ProxyError(ErrorKind.UPSTREAM_ERROR,
                                     "upstream stream ended before completion", status=502))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_event(payload: Any) -> ir.StreamError:
    err = payload if isinstance(payload, ir.MAPPING) else {}
    code = err.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 502
    message = err.get("message") if isinstance(err.get("message"), str) else "upstream error"
    return ir.StreamError(ProxyError(kind_for_status(status), message, status=status))


class StreamDecoder:
    """Gemini SSE events (one GenerateContentResponse each) → IR stream events.

    ``tool_names`` maps sanitised function names back to the client's (see `tool_name_map`).
    """

    model_key = "modelVersion"  # where a chunk names the model (see `feed`)
    _parse: Callable[[str], Any] = staticmethod(jsontext.loads)

    def __init__(self, tool_names: Mapping[str, str] | None = None) -> None:
        self.model_seen: str | None = None
        self._names = dict(tool_names or {})
        self._ids = CallIds()
        self._started = False
        self._open: tuple[int, str] | None = None  # (index, "text" | "thinking")
        self._next_index = 0
        self._saw_call = False
        self._stopped = False
        self._failed = False

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """IR events for one upstream chunk.  ``model_seen`` is then the chunk's
        ``modelVersion``, if any (a relay passing the stream through puts the client's model
        name in its place)."""
        chunk = self._read(event)
        if not isinstance(chunk, ir.MAPPING):
            return chunk
        out = self._start(chunk)
        candidates = get(chunk, "candidates") or []
        cand = candidates[0] if isinstance(candidates, list) and candidates else {}
        out += self._content(cand)
        if self._failed:
            return out
        return out + self._ending(chunk, candidates, cand)

    def _content(self, cand: Any) -> list[ir.StreamEvent]:
        """The candidate's parts as IR events (the watcher only looks for a function call)."""
        parts = get(get(cand, "content"), "parts") or []
        if self._stopped:
            parts = []  # nothing may follow MessageStop but usage
        out: list[ir.StreamEvent] = []
        for i, part in enumerate(parts if isinstance(parts, list) else []):
            out += self._part(part, i)
            if self._failed:
                break
        return out

    def _read(self, event: Event) -> Mapping[str, Any] | list[ir.StreamEvent]:
        """The event's chunk, or what to answer instead (nothing, or the error it is)."""
        self.model_seen = None
        if self._failed or not event.data.strip() or event.data.strip() == "[DONE]":
            return []
        try:
            chunk = self._parse(event.data)
        except ValueError:
            return self._fail(_error_event({"message": "upstream sent invalid JSON"}))
        if not isinstance(chunk, ir.MAPPING):
            return self._fail(_error_event({"message": "upstream sent a non-object chunk"}))
        version = chunk.get("modelVersion")
        self.model_seen = version if isinstance(version, str) else None
        if "error" in chunk:
            return self._fail(_error_event(chunk["error"]))
        return chunk

    def _ending(self, chunk: Mapping[str, Any], candidates: Any,
                cand: Any) -> list[ir.StreamEvent]:
        """The stop (a finish reason or a blocked prompt) with its usage, or late usage."""
        finish = _text(get(cand, "finishReason"))
        feedback = get(chunk, "promptFeedback") if not candidates else None
        blocked = _text(get(feedback, "blockReason"))
        usage = get(chunk, "usageMetadata")
        out: list[ir.StreamEvent] = []
        if (finish or blocked) and not self._stopped:
            out += self._close()
            out.append(ir.UsageUpdate(usage_from_gemini(usage)))
            self._stopped = True
            stop = (ir.StopReason.CONTENT_FILTER if blocked
                    else stop_reason_from_gemini(finish, self._saw_call))
            out.append(ir.MessageStop(stop_reason=stop, native_stop_reason=finish or blocked))
        elif self._stopped and usage is not None:
            out.append(ir.UsageUpdate(usage_from_gemini(usage)))  # late usage is still usage
        return out

    def finish(self) -> list[ir.StreamEvent]:
        if self._stopped or self._failed:
            return []
        return self._fail(_incomplete())

    # -- internals ------------------------------------------------------------------------------

    def _fail(self, error: ir.StreamError) -> list[ir.StreamEvent]:
        self._failed = True
        return [error]

    def _start(self, chunk: Mapping[str, Any]) -> list[ir.StreamEvent]:
        if self._started:
            return []
        self._started = True
        rid, model = get(chunk, "responseId"), get(chunk, "modelVersion")
        self._ids = answer_call_ids(rid)
        return [ir.MessageStart(id=rid if isinstance(rid, str) else None,
                                model=model if isinstance(model, str) else None)]

    def _part(self, raw: Any, i: int) -> list[ir.StreamEvent]:
        try:
            part = decode_part(raw, self._ids, f"parts[{i}]", names=self._names,
                               err=lambda m, _w: ProxyError(ErrorKind.UPSTREAM_ERROR, m))
        except ProxyError as exc:
            return self._fail(ir.StreamError(exc))
        if isinstance(part, ir.ThinkingPart):
            out = self._ensure("thinking")
            return out + [ir.ThinkingDelta(self._open[0], part.text, part.signature)]
        signature = part.extras.get("thoughtSignature") if part is not None else None
        out: list[ir.StreamEvent] = []
        if signature and self._open and self._open[1] == "thinking":
            out.append(ir.ThinkingDelta(self._open[0], "", signature))
        if isinstance(part, ir.TextPart):
            if not part.text:
                return out
            out += self._ensure("text")
            return out + [ir.TextDelta(self._open[0], part.text)]
        if isinstance(part, ir.ToolCallPart):
            self._saw_call = True
            out += self._close()
            index = self._take_index()
            return out + [ir.ToolCallStart(index, part.id, part.name),
                          ir.ToolArgsDelta(index, part.arguments), ir.BlockStop(index)]
        if part is not None:
            logger.debug("gemini: %s cannot be streamed through the IR, dropped",
                         type(part).__name__)
        return out

    def _ensure(self, kind: str) -> list[ir.StreamEvent]:
        if self._open and self._open[1] == kind:
            return []
        out = self._close()
        self._open = (self._take_index(), kind)
        return out + [ir.BlockStart(self._open[0], kind)]

    def _close(self) -> list[ir.StreamEvent]:
        if self._open is None:
            return []
        index, self._open = self._open[0], None
        return [ir.BlockStop(index)]

    def _take_index(self) -> int:
        self._next_index += 1
        return self._next_index - 1


class StreamWatcher(StreamDecoder):
    """Passthrough: a Gemini stream forwarded to a Gemini client as the upstream wrote it is
    watched, not decoded.  Parts are the client's to read (a part the decoder would call
    malformed goes through as it came); they are only looked at for a function call, which makes
    the stop a tool call.  The opening, usage, stop and errors are read exactly as
    `StreamDecoder` reads them."""

    usage_only = False  # Gemini has no usage-only chunk for the relay to hold back
    _parse = staticmethod(jsontext.peek)  # chunks are forwarded as they came, only looked at

    def _content(self, cand: Any) -> list[ir.StreamEvent]:
        if not self._stopped and not self._saw_call:
            parts = get(get(cand, "content"), "parts")
            self._saw_call = isinstance(parts, list) and any(
                isinstance(part, dict) and "functionCall" in part for part in parts)
        return []


class StreamEncoder:
    """IR stream events → Gemini ``GenerateContentResponse`` SSE chunks for a client."""

    def __init__(self, ctx: ir.EncodeContext) -> None:
        self._ctx = ctx
        self._response_id = ctx.response_id
        self._usage = ir.Usage()
        self._stop: ir.MessageStop | None = None
        self._calls: dict[int, list[str]] = {}  # index → [id, name, args so far]
        self._done = False

    def feed(self, event: ir.StreamEvent) -> list[Event]:
        if self._done:
            return []
        if isinstance(event, ir.MessageStart):
            self._response_id = event.id or self._response_id
            if event.usage is not None:
                self._usage = self._usage.merged(event.usage)
        elif isinstance(event, ir.TextDelta) and event.text:
            return [self._chunk([{"text": event.text}])]
        elif isinstance(event, ir.ThinkingDelta) and (event.text or event.signature):
            part: dict[str, Any] = {"text": event.text, "thought": True}
            if event.signature:
                part["thoughtSignature"] = event.signature
            return [self._chunk([part])]
        elif isinstance(event, ir.ToolCallStart):
            self._calls[event.index] = [event.id, event.name, ""]
        elif isinstance(event, ir.ToolArgsDelta) and event.index in self._calls:
            self._calls[event.index][2] += event.json
        elif isinstance(event, ir.BlockStop) and event.index in self._calls:
            return [self._chunk([self._call_part(*self._calls.pop(event.index))])]
        elif isinstance(event, ir.UsageUpdate):
            self._usage = self._usage.merged(event.usage)
        elif isinstance(event, ir.MessageStop):
            self._stop = event
        elif isinstance(event, ir.StreamError):
            self._done = True
            return [Event(data=jsontext.dumps(render_error(event.error)))]
        return []

    def finish(self) -> list[Event]:
        if self._done:
            return []
        self._done = True
        out = [self._chunk([self._call_part(*call)]) for call in self._calls.values()]
        stop = self._stop or ir.MessageStop()
        candidate = {"content": {"role": "model", "parts": [{"text": ""}]},
                     "finishReason": finish_reason_for(stop.stop_reason, stop.native_stop_reason),
                     "index": 0}
        out.append(self._event({"candidates": [candidate],
                                "usageMetadata": usage_to_gemini(self._usage)}))
        return out

    def _call_part(self, call_id: str, name: str, args: str) -> dict[str, Any]:
        return encode_call(ir.ToolCallPart(id=call_id, name=name, arguments=args or "{}"),
                           upstream=False)

    def _chunk(self, parts: list[dict[str, Any]]) -> Event:
        return self._event({"candidates": [{"content": {"role": "model", "parts": parts},
                                            "index": 0}]})

    def _event(self, body: dict[str, Any]) -> Event:
        body["modelVersion"] = self._ctx.model
        body["responseId"] = self._response_id
        return Event(data=jsontext.dumps(body))

