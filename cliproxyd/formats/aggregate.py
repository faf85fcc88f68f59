"""Between whole responses and streams of IR events, in both directions.

`Collector` / `collect` fold a stream of IR events into one `ir.Response` (a non-streaming client
of an upstream that only streams); `response_events` replays a complete `ir.Response` as the
stream of IR events a stream decoder would have produced (a streaming client of an upstream
answer that arrived whole).  Pure: no I/O, no clock, no Tornado.

Rules for folding:

* Blocks become parts in the order they started (their ``index``): text and thinking deltas are
  joined, a thinking block keeps its last signature, a tool call's argument fragments are joined
  (``"{}"`` when the model sent none), a redacted thinking block keeps its opaque data.
* Usage is merged field by field (`Usage.merged`) from `MessageStart` and every `UsageUpdate`,
  including updates after `MessageStop` (OpenAI sends its usage chunk after the finish chunk).
* A `StreamError` raises its `ProxyError`; a stream that ends without `MessageStop` raises
  ``ProxyError(UPSTREAM_ERROR)`` (502): a truncated answer is never passed off as complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir

__all__ = ["Collector", "collect", "response_events"]

log = logging.getLogger(__name__)


@dataclass
class _Block:
    """One block being assembled: ``kind`` is text, thinking, redacted_thinking or tool_call."""

    kind: str
    chunks: list[str] = field(default_factory=list)
    signature: str | None = None
    data: str | None = None
    call_id: str = ""
    name: str = ""

    def part(self) -> ir.Part:
        text = "".join(self.chunks)
        if self.kind == "tool_call":
            return ir.ToolCallPart(id=self.call_id, name=self.name, arguments=text or "{}")
        if self.kind == "thinking":
            return ir.ThinkingPart(text=text, signature=self.signature)
        if self.kind == "redacted_thinking":
            return ir.RedactedThinkingPart(data=self.data or "")
        return ir.TextPart(text=text)


class Collector:
    """Incremental fold of IR stream events: ``feed(event)`` each, then ``result()``."""

    def __init__(self, *, response_id: str = "", model: str = "") -> None:
        """``response_id`` / ``model`` are used when the stream's `MessageStart` has none."""
        self._id = response_id
        self._model = model
        self._blocks: dict[int, _Block] = {}
        self._usage = ir.Usage()
        self._stop: ir.MessageStop | None = None

    def feed(self, event: ir.StreamEvent) -> None:
        """Take one event; raises the `ProxyError` of a `StreamError`."""
        if isinstance(event, ir.StreamError):
            raise event.error
        if isinstance(event, ir.MessageStart):
            self._id = event.id or self._id
            self._model = event.model or self._model
            if event.usage is not None:
                self._usage = self._usage.merged(event.usage)
        elif isinstance(event, ir.UsageUpdate):
            self._usage = self._usage.merged(event.usage)
        elif isinstance(event, ir.MessageStop):
            self._stop = event
        else:
            self._block_event(event)

    def _block_event(self, event: ir.StreamEvent) -> None:
        if isinstance(event, ir.BlockStart):
            self._blocks[event.index] = _Block(kind=event.kind, data=event.data)
        elif isinstance(event, ir.ToolCallStart):
            self._blocks[event.index] = _Block(kind="tool_call", call_id=event.id, name=event.name)
        elif isinstance(event, ir.TextDelta):
            self._block(event.index, "text").chunks.append(event.text)
        elif isinstance(event, ir.ThinkingDelta):
            block = self._block(event.index, "thinking")
            block.chunks.append(event.text)
            block.signature = event.signature or block.signature
        elif isinstance(event, ir.ToolArgsDelta):
            if event.index not in self._blocks:
                raise ProxyError(ErrorKind.UPSTREAM_ERROR,
                                 "upstream stream sent tool arguments for a call it never started")
            self._blocks[event.index].chunks.append(event.json)
        # BlockStop needs nothing: parts are built from whatever each block received.

    def _block(self, index: int, kind: str) -> _Block:
        """The block at ``index``; a delta without its start opens one (lenient on purpose)."""
        if index not in self._blocks:
            self._blocks[index] = _Block(kind=kind)
        return self._blocks[index]

    @property
    def done(self) -> bool:
        """Whether `MessageStop` has been seen."""
        return self._stop is not None

    def result(self) -> ir.Response:
        """The whole response; ``ProxyError(UPSTREAM_ERROR)`` if the stream never finished."""
        if self._stop is None:
            raise ProxyError(ErrorKind.UPSTREAM_ERROR,
                             "upstream stream ended before the response was complete")
        return ir.Response(
            id=self._id,
            model=self._model,
            parts=tuple(self._blocks[i].part() for i in sorted(self._blocks)),
            stop_reason=self._stop.stop_reason,
            stop_sequence=self._stop.stop_sequence,
            native_stop_reason=self._stop.native_stop_reason,
            usage=self._usage,
        )


def collect(events: Iterable[ir.StreamEvent], *, response_id: str = "",
            model: str = "") -> ir.Response:
    """Fold a whole stream of IR events into one response (see the module docstring)."""
    collector = Collector(response_id=response_id, model=model)
    for event in events:
        collector.feed(event)
    return collector.result()


def _part_events(index: int, part: ir.Part) -> list[ir.StreamEvent]:
    if isinstance(part, ir.TextPart):
        body: list[ir.StreamEvent] = [ir.TextDelta(index, part.text)] if part.text else []
        return [ir.BlockStart(index, "text"), *body, ir.BlockStop(index)]
    if isinstance(part, ir.ThinkingPart):
        body = [ir.ThinkingDelta(index, part.text)] if part.text else []
        if part.signature:
            body.append(ir.ThinkingDelta(index, "", signature=part.signature))
        return [ir.BlockStart(index, "thinking"), *body, ir.BlockStop(index)]
    if isinstance(part, ir.RedactedThinkingPart):
        return [ir.BlockStart(index, "redacted_thinking", data=part.data), ir.BlockStop(index)]
    if isinstance(part, ir.ToolCallPart):
        args = [ir.ToolArgsDelta(index, part.arguments)] if part.arguments else []
        return [ir.ToolCallStart(index, part.id, part.name), *args, ir.BlockStop(index)]
    return []


def _input_usage(usage: ir.Usage) -> ir.Usage | None:
    """The prompt-side counts, known before any output (what a real stream reports first)."""
    head = ir.Usage(input_tokens=usage.input_tokens,
                    cached_input_tokens=usage.cached_input_tokens,
                    cache_creation_tokens=usage.cache_creation_tokens)
    return None if head == ir.Usage() else head


def response_events(resp: ir.Response) -> list[ir.StreamEvent]:
    """Replay a complete response as IR stream events.

    Blocks are numbered from 0 in part order; parts with no stream form (images, files) are
    dropped with a debug log.  The full usage goes in one `UsageUpdate` just before `MessageStop`.
    """
    events: list[ir.StreamEvent] = [
        ir.MessageStart(id=resp.id, model=resp.model, usage=_input_usage(resp.usage))]
    index = 0
    for part in resp.parts:
        part_events = _part_events(index, part)
        if not part_events:
            log.debug("no stream form for a %s in a response; dropped", type(part).__name__)
            continue
        events += part_events
        index += 1
    if resp.usage != ir.Usage():
        events.append(ir.UsageUpdate(resp.usage))
    events.append(ir.MessageStop(resp.stop_reason, resp.stop_sequence, resp.native_stop_reason))
    return events
