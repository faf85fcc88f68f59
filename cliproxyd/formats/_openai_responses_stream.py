"""Streaming for the OpenAI Responses codec: upstream (Codex) SSE events → IR stream events, and
IR stream events → the official Responses event sequence.  `StreamWatcher` reads only the
lifecycle of a stream passed through to a Responses client as it came.

Encoder sequence (``sequence_number`` from 0, as the API numbers them): ``response.created``,
``response.in_progress``; per output item ``response.output_item.added`` → (message:
``content_part.added``, ``output_text.delta``*, ``output_text.done``, ``content_part.done``)
(function call: ``function_call_arguments.delta``*, ``.done``) (reasoning:
``reasoning_summary_part.added``, ``reasoning_summary_text.delta``*, ``.done``,
``reasoning_summary_part.done``) → ``response.output_item.done``; finally ``response.completed``
/ ``response.incomplete`` / ``response.failed`` with the whole response.  A `StreamError` becomes
an ``error`` event followed by ``response.failed``, and nothing after.

The terminal event is written by ``finish()``, because usage may arrive after `MessageStop`.
Ids: the response id is ``ctx.response_id`` (or a ``resp_`` id from `MessageStart`, i.e. a
Responses upstream's own); item ids are ``msg_/fc_/rs_`` + response id + ``_`` + output index.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import _openai_responses_common as common
from cliproxyd.formats import ir
from cliproxyd.formats.sse import Event

logger = logging.getLogger("cliproxyd.formats.openai_responses")

_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


# ---------------------------------------------------------------------------------------------
# Decoder: Codex/Responses upstream SSE → IR


class StreamDecoder:
    """Responses SSE events → IR stream events (one instance per upstream stream)."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: int | None = None          # IR index of the open block
        self._open_kind: str | None = None     # "text" | "thinking" | "tool"
        self._args_seen = False                # the open tool call got argument text
        self._summary_index = -1               # last reasoning summary part seen
        self._saw_tool = False
        self._emitted_any = False
        self._custom_input: str | None = None  # a custom tool's raw input, sent as JSON at done
        self._kind = ""
        self.model_seen: str | None = None

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """IR events for one upstream SSE event (nothing after a terminal event).
        ``model_seen`` is then the model name the event's ``response`` object gave, if any
        (a relay passing the stream through puts the client's name in its place)."""
        self.model_seen = None
        if self._done or not event.data.strip() or event.data.strip() == "[DONE]":
            return []
        try:
            data = jsontext.loads(event.data)
        except ValueError:
            return self._fail(ProxyError(ErrorKind.UPSTREAM_ERROR, "malformed upstream event"))
        if not isinstance(data, ir.MAPPING):
            return []
        response = data.get("response")
        if isinstance(response, ir.MAPPING) and isinstance(response.get("model"), str):
            self.model_seen = response["model"]
        kind = data.get("type") if isinstance(data.get("type"), str) else event.event
        self._kind = str(kind)
        handler = getattr(self, "_on_" + self._kind.replace(".", "_"), None)
        return handler(data) if handler else []

    def finish(self) -> list[ir.StreamEvent]:
        """End of upstream bytes: a StreamError unless a terminal event was seen."""
        if self._done:
            return []
        return self._fail(ProxyError(ErrorKind.UPSTREAM_ERROR,
                                     "upstream stream ended before completion"))

    # -- helpers

    def _fail(self, err: ProxyError) -> list[ir.StreamEvent]:
        self._done = True
        return [ir.StreamError(err)]

    def _start(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        if self._started:
            return []
        self._started = True
        resp = data.get("response") if isinstance(data.get("response"), ir.MAPPING) else {}
        rid, model = resp.get("id"), resp.get("model")  # strings, whatever the upstream sent
        return [ir.MessageStart(id=rid if isinstance(rid, str) else None,
                                model=model if isinstance(model, str) else None)]

    def _open_block(self, kind: str, **extra: Any) -> list[ir.StreamEvent]:
        out = self._close()
        index = self._next_index
        self._next_index += 1
        self._open, self._open_kind, self._args_seen = index, kind, False
        self._emitted_any = True
        if kind == "tool":
            self._saw_tool = True
            out.append(ir.ToolCallStart(index, extra["id"], extra["name"]))
        else:
            out.append(ir.BlockStart(index, kind, extra.get("data")))
        return out

    def _close(self) -> list[ir.StreamEvent]:
        if self._open is None:
            return []
        index, self._open, self._open_kind = self._open, None, None
        return [ir.BlockStop(index)]

    # -- lifecycle

    def _on_response_created(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        return self._start(data)

    _on_response_in_progress = _on_response_created
    _on_response_queued = _on_response_created

    def _on_response_completed(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        out = self._start(data)
        resp = data.get("response") if isinstance(data.get("response"), ir.MAPPING) else {}
        if not self._emitted_any:
            out += self._replay_output(resp.get("output"))
        out += self._close()
        self._done = True
        if self._kind == "response.failed" or resp.get("status") == "failed":
            return out + [ir.StreamError(common.error_from_wire(resp.get("error"),
                                                                "upstream response failed"))]
        out.append(ir.UsageUpdate(common.usage_from_wire(resp.get("usage"))))
        details = resp.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, ir.MAPPING) else None
        status = resp.get("status") or ("incomplete" if self._kind == "response.incomplete"
                                        else "completed")
        stop, native = common.stop_reason_from_wire(status, reason, self._saw_tool)
        out.append(ir.MessageStop(stop, native_stop_reason=native))
        return out

    _on_response_incomplete = _on_response_completed
    _on_response_failed = _on_response_completed

    def _replay_output(self, output: Any) -> list[ir.StreamEvent]:
        """Blocks for a terminal response whose items were never streamed."""
        out: list[ir.StreamEvent] = []
        for part in common.parts_from_output(output):
            if isinstance(part, ir.TextPart):
                out += self._open_block("text") + [ir.TextDelta(self._open, part.text)]
            elif isinstance(part, ir.ToolCallPart):
                out += self._open_block("tool", id=part.id, name=part.name)
                out.append(ir.ToolArgsDelta(self._open, part.arguments))
            elif isinstance(part, ir.ThinkingPart):
                out += self._open_block("thinking") + [
                    ir.ThinkingDelta(self._open, part.text, signature=part.signature)]
            elif isinstance(part, ir.RedactedThinkingPart):
                out += self._open_block("redacted_thinking", data=part.data)
        return out

    def _on_error(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        raw = data.get("error") if isinstance(data.get("error"), ir.MAPPING) else data
        return self._fail(common.error_from_wire(raw, "upstream stream error"))

    # -- items

    def _on_response_output_item_added(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        item = data.get("item") if isinstance(data.get("item"), ir.MAPPING) else {}
        out = self._start(data)
        if item.get("type") in ("function_call", "custom_tool_call"):
            call_id = item.get("call_id") or item.get("id") or f"call_{self._next_index}"
            out += self._open_block("tool", id=str(call_id), name=str(item.get("name") or ""))
            if item.get("type") == "custom_tool_call":
                # Free-form input is not JSON: IR arguments carry it as {"input": ...} (the
                # same wrapping decode_request uses), written once the input is complete.
                self._custom_input = item.get("input") if isinstance(item.get("input"), str) else ""
                return out
            initial = item.get("arguments")
            if isinstance(initial, str) and initial:
                self._args_seen = True
                out.append(ir.ToolArgsDelta(self._open, initial))
        elif item.get("type") == "reasoning":
            out += self._close()
            self._summary_index = -1
        return out

    def _on_response_output_item_done(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        item = data.get("item") if isinstance(data.get("item"), ir.MAPPING) else {}
        out: list[ir.StreamEvent] = []
        if item.get("type") == "reasoning":
            return self._reasoning_done(item)
        if item.get("type") == "custom_tool_call" and self._open_kind == "tool":
            final = item.get("input") if isinstance(item.get("input"), str) else self._custom_input
            out.append(ir.ToolArgsDelta(self._open, common.dumps({"input": final or ""})))
            self._custom_input = None
        elif item.get("type") == "function_call" and self._open_kind == "tool":
            args = item.get("arguments")
            if not self._args_seen and isinstance(args, str) and args:
                out.append(ir.ToolArgsDelta(self._open, args))
        return out + self._close()

    def _reasoning_done(self, item: Mapping[str, Any]) -> list[ir.StreamEvent]:
        enc = item.get("encrypted_content")
        enc = enc if isinstance(enc, str) and enc else None
        self._summary_index = -1
        if self._open_kind == "thinking":
            out = [ir.ThinkingDelta(self._open, "", signature=enc)] if enc else []
            return out + self._close()
        if enc:  # no summary streamed: the reasoning is only available encrypted
            return self._open_block("redacted_thinking", data=enc) + self._close()
        return []

    # -- message content

    def _on_response_content_part_added(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        part = data.get("part") if isinstance(data.get("part"), ir.MAPPING) else {}
        return self._open_block("text") if part.get("type") in ("output_text", "refusal") else []

    def _on_response_output_text_delta(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        delta = data.get("delta")
        if not isinstance(delta, str):
            return []
        out = [] if self._open_kind == "text" else self._open_block("text")
        return out + [ir.TextDelta(self._open, delta)] if delta else out

    _on_response_refusal_delta = _on_response_output_text_delta

    def _on_response_content_part_done(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        return self._close() if self._open_kind == "text" else []

    # -- function call arguments

    def _on_response_function_call_arguments_delta(self, data: Mapping[str, Any]) -> list:
        delta = data.get("delta")
        if self._open_kind != "tool" or not isinstance(delta, str) or not delta:
            return []
        self._args_seen = True
        return [ir.ToolArgsDelta(self._open, delta)]

    def _on_response_custom_tool_call_input_delta(self, data: Mapping[str, Any]) -> list:
        if self._custom_input is not None and isinstance(data.get("delta"), str):
            self._custom_input += data["delta"]
        return []

    def _on_response_function_call_arguments_done(self, data: Mapping[str, Any]) -> list:
        args = data.get("arguments")
        if self._open_kind == "tool" and not self._args_seen and isinstance(args, str) and args:
            self._args_seen = True
            return [ir.ToolArgsDelta(self._open, args)]
        return []

    # -- reasoning summary

    def _on_response_reasoning_summary_text_delta(self, data: Mapping[str, Any]) -> list:
        delta = data.get("delta")
        if not isinstance(delta, str):
            return []
        out = [] if self._open_kind == "thinking" else self._open_block("thinking")
        index = data.get("summary_index") if isinstance(data.get("summary_index"), int) else 0
        if 0 <= self._summary_index < index:
            delta = "\n\n" + delta  # summary parts are paragraphs of one thought
        self._summary_index = index
        return out + [ir.ThinkingDelta(self._open, delta)] if delta else out

    _on_response_reasoning_text_delta = _on_response_reasoning_summary_text_delta


_TOOL_ITEMS = ("function_call", "custom_tool_call")


class StreamWatcher(StreamDecoder):
    """Passthrough: a Responses stream forwarded to a Responses client as the upstream wrote it
    is watched, not decoded.  Item and content events are the client's to read (they are only
    checked to be JSON); the lifecycle events (``response.created``/``in_progress``/``queued``,
    the terminal ``completed``/``incomplete``/``failed``, and ``error``) are read as
    `StreamDecoder` reads them, so the relay sees the same `MessageStart`, `UsageUpdate`,
    `MessageStop` and `StreamError` events, and ``model_seen`` is set as the decoder sets it.

    The stop is a tool call when the response has a function call item, announced or listed in
    the terminal response; on any stream that announces its items that is the decoder's rule."""

    usage_only = False  # Responses has no usage-only event for the relay to hold back

    def feed(self, event: Event) -> list[ir.StreamEvent]:
        """Watch one SSE event."""
        self.model_seen = None
        if self._done:
            return []
        try:
            data = jsontext.peek(event.data)  # events are forwarded as they came, only looked at
        except ValueError:
            if not event.data.strip() or event.data.strip() == "[DONE]":
                return []
            return self._fail(ProxyError(ErrorKind.UPSTREAM_ERROR, "malformed upstream event"))
        if not isinstance(data, dict):
            return []
        response = data.get("response")
        if isinstance(response, dict) and isinstance(response.get("model"), str):
            self.model_seen = response["model"]
        kind = data.get("type")
        kind = kind if isinstance(kind, str) else event.event
        watch = self._watched.get(kind)  # type: ignore[arg-type]
        if watch is None:
            return []
        self._kind = kind  # type: ignore[assignment]
        return watch(self, data)

    def _item_added(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        item = data.get("item")
        if isinstance(item, dict) and item.get("type") in _TOOL_ITEMS:
            self._saw_tool = True
        return self._start(data)

    def _terminal(self, data: Mapping[str, Any]) -> list[ir.StreamEvent]:
        response = data.get("response")
        output = response.get("output") if isinstance(response, dict) else None
        for item in output if isinstance(output, list) else ():
            if isinstance(item, dict) and item.get("type") in _TOOL_ITEMS:
                self._saw_tool = True
        self._emitted_any = True  # the client has the items as the upstream sent them: no replay
        return self._on_response_completed(data)

    _watched = {
        "response.created": StreamDecoder._on_response_created,
        "response.in_progress": StreamDecoder._on_response_created,
        "response.queued": StreamDecoder._on_response_created,
        "response.output_item.added": _item_added,
        "response.completed": _terminal,
        "response.incomplete": _terminal,
        "response.failed": _terminal,
        "error": StreamDecoder._on_error,
    }


# ---------------------------------------------------------------------------------------------
# Encoder: IR → Responses SSE


@dataclass
class _Item:
    """The output item being streamed."""

    kind: str                       # "message" | "reasoning" | "function_call"
    output_index: int
    item_id: str
    text: str = ""
    call_id: str = ""
    name: str = ""
    encrypted: str | None = None
    summary_open: bool = False
    summaries: list[str] = field(default_factory=list)


class StreamEncoder:
    """IR stream events → Responses SSE events (``Event(event=type, data=json)``)."""

    def __init__(self, ctx: ir.EncodeContext) -> None:
        self._ctx = ctx
        self._resp_id = ctx.response_id
        self._seq = 0
        self._started = False
        self._finished = False
        self._item: _Item | None = None
        self._output: list[dict[str, Any]] = []
        self._usage = ir.Usage()
        self._stop: ir.StopReason | None = None

    # -- public

    def feed(self, event: ir.StreamEvent) -> list[Event]:
        """Responses events for one IR event (nothing after the stream ended or failed)."""
        if self._finished:
            return []
        if isinstance(event, ir.StreamError):
            return self._error(event.error)
        if isinstance(event, ir.UsageUpdate):
            self._usage = self._usage.merged(event.usage)
            return []
        if isinstance(event, ir.MessageStop):
            self._stop = event.stop_reason
            return self._start()
        if isinstance(event, ir.MessageStart):
            if event.usage is not None:
                self._usage = self._usage.merged(event.usage)
            if not self._started and event.id and event.id.startswith("resp_"):
                self._resp_id = event.id  # a Responses upstream's own id, as encode_response
            return self._start()
        handler = _HANDLERS.get(type(event))
        return self._start() + handler(self, event) if handler else []

    def finish(self) -> list[Event]:
        """Close what is open and write the terminal event carrying the whole response."""
        if self._finished:
            return []
        out = self._start() + self._close_item()
        self._finished = True
        stop = self._stop or ir.StopReason.END_TURN
        status, reason = common.status_for_stop(stop)
        error = None
        if status == "failed":
            error = {"code": "server_error", "message": "The model failed to generate a response."}
        resp = self._response(status, reason, error)
        return out + [self._emit(f"response.{status}", response=resp)]

    # -- framing

    def _emit(self, kind: str, **fields: Any) -> Event:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return Event(data=common.dumps(payload), event=kind)

    def _response(self, status: str, reason: str | None = None,
                  error: dict[str, Any] | None = None) -> dict[str, Any]:
        final = status not in ("in_progress",)
        return common.response_object(self._ctx, self._resp_id, status,
                                      list(self._output) if final else [],
                                      self._usage if final else None,
                                      incomplete_reason=reason, error=error)

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [self._emit("response.created", response=self._response("in_progress")),
                self._emit("response.in_progress", response=self._response("in_progress"))]

    def _error(self, err: ProxyError) -> list[Event]:
        out = self._start()
        self._item = None  # an unfinished item is not part of a failed response's output
        self._finished = True
        code = err.code or common.error_code_for(err)
        out.append(self._emit("error", code=code, message=err.message, param=err.param))
        failed = self._response("failed", error={"code": common.error_code_for(err),
                                                 "message": err.message})
        out.append(self._emit("response.failed", response=failed))
        return out

    # -- items

    def _open_item(self, kind: str, prefix: str, **attrs: Any) -> list[Event]:
        out = self._close_item()
        n = len(self._output)
        self._item = _Item(kind, n, f"{prefix}_{self._resp_id}_{n}", **attrs)
        return out + [self._emit("response.output_item.added", output_index=n,
                                 item=self._item_body(self._item, "in_progress"))]

    def _item_body(self, item: _Item, status: str) -> dict[str, Any]:
        if item.kind == "message":
            content = [] if status == "in_progress" else [self._text_part(item.text)]
            return common.message_item(item.item_id, content, status)
        if item.kind == "function_call":
            args = "" if status == "in_progress" else item.text
            return common.function_call_item(item.item_id, item.call_id, item.name, args, status)
        summaries = [] if status == "in_progress" else item.summaries
        return common.reasoning_output_item(item.item_id, summaries, item.encrypted)

    @staticmethod
    def _text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    def _ids(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.output_index}

    def _open_message(self) -> list[Event]:
        out = self._open_item("message", "msg")
        out.append(self._emit("response.content_part.added", **self._ids(self._item),
                              content_index=0, part=self._text_part("")))
        return out

    def _on_block_start(self, event: ir.BlockStart) -> list[Event]:
        if event.kind == "text":
            return self._open_message()
        if event.kind == "redacted_thinking":
            return self._open_item("reasoning", "rs", encrypted=event.data)
        return self._open_item("reasoning", "rs")

    def _on_tool_start(self, event: ir.ToolCallStart) -> list[Event]:
        return self._open_item("function_call", "fc", call_id=event.id, name=event.name)

    def _on_text(self, event: ir.TextDelta) -> list[Event]:
        out = [] if self._item and self._item.kind == "message" else self._open_message()
        if not event.text:
            return out
        self._item.text += event.text
        return out + [self._emit("response.output_text.delta", **self._ids(self._item),
                                 content_index=0, delta=event.text, logprobs=[])]

    def _on_thinking(self, event: ir.ThinkingDelta) -> list[Event]:
        out = [] if self._item and self._item.kind == "reasoning" else \
            self._open_item("reasoning", "rs")
        item = self._item
        if event.signature:
            item.encrypted = event.signature
        if not event.text:
            return out
        if not item.summary_open:
            item.summary_open = True
            out.append(self._emit("response.reasoning_summary_part.added", **self._ids(item),
                                  summary_index=0, part={"type": "summary_text", "text": ""}))
        item.text += event.text
        return out + [self._emit("response.reasoning_summary_text.delta", **self._ids(item),
                                 summary_index=0, delta=event.text)]

    def _on_args(self, event: ir.ToolArgsDelta) -> list[Event]:
        item = self._item
        if item is None or item.kind != "function_call" or not event.json:
            logger.debug("tool arguments outside a tool call; dropped")
            return []
        item.text += event.json
        return [self._emit("response.function_call_arguments.delta", **self._ids(item),
                           delta=event.json)]

    def _on_block_stop(self, event: ir.BlockStop) -> list[Event]:
        return self._close_item()

    def _close_item(self) -> list[Event]:
        item, self._item = self._item, None
        if item is None:
            return []
        ids = self._ids(item)
        out: list[Event] = []
        if item.kind == "message":
            out.append(self._emit("response.output_text.done", **ids, content_index=0,
                                  text=item.text, logprobs=[]))
            out.append(self._emit("response.content_part.done", **ids, content_index=0,
                                  part=self._text_part(item.text)))
        elif item.kind == "function_call":
            out.append(self._emit("response.function_call_arguments.done", **ids,
                                  arguments=item.text))
        elif item.summary_open:
            item.summaries = [item.text]
            part = {"type": "summary_text", "text": item.text}
            out.append(self._emit("response.reasoning_summary_text.done", **ids, summary_index=0,
                                  text=item.text))
            out.append(self._emit("response.reasoning_summary_part.done", **ids,
                                  summary_index=0, part=part))
        body = self._item_body(item, "completed")
        self._output.append(body)
        return out + [self._emit("response.output_item.done", output_index=item.output_index,
                                 item=body)]


_HANDLERS = {
    ir.BlockStart: StreamEncoder._on_block_start,
    ir.ToolCallStart: StreamEncoder._on_tool_start,
    ir.TextDelta: StreamEncoder._on_text,
    ir.ThinkingDelta: StreamEncoder._on_thinking,
    ir.ToolArgsDelta: StreamEncoder._on_args,
    ir.BlockStop: StreamEncoder._on_block_stop,
}
