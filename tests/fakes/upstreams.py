"""Fake upstream providers for end-to-end tests: Tornado apps speaking each provider's real wire
format, recording what they received, with named failure modes (STYLE.md 6.2.11).

Kinds and routes:

* ``gemini``: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent``
  (``?alt=sse`` → SSE with ``\\r\\n\\r\\n`` framing; otherwise the JSON array Google streams) and
  ``:countTokens``; key in ``x-goog-api-key`` or ``?key=``.
* ``claude``: ``POST /v1/messages`` (``"stream": true`` → SSE) and ``/v1/messages/count_tokens``;
  key in ``x-api-key`` (or a Bearer token); ``anthropic-version`` required (400 otherwise).
* ``openai``: ``POST {any base}/chat/completions``, Bearer key; a stream sends the usage chunk
  when ``stream_options.include_usage`` is true, then ``data: [DONE]``.
* ``responses``: ``POST {any base}/responses`` (OpenAI Responses / Codex), Bearer key; streams
  (named SSE events with ``sequence_number``) when the body asks ``"stream": true``.

The answer is scripted by `FakeUpstream.set_reply`: by default one text, ``"Hello from
<model>."`` (the model the request named), streamed in 3 chunks; or a tool call (name + args);
or several parallel calls (``tool_calls``: (name, args) pairs).  ``thinking`` puts reasoning
first, in the provider's own shape: an Anthropic ``thinking`` block with ``signature``, OpenAI
Chat ``reasoning_content``, a Responses ``reasoning`` item (summary + ``encrypted_content``), a
Gemini ``thought`` part (the signature rides on the first answer part, as Gemini 3 sends it).
Usage numbers are derived from the request and answer sizes (deterministic, never zero).

Failure modes (`MODES`), for every request, for one key, or for the next N requests:
``ok``, ``400``, ``429`` (optionally with ``Retry-After``), ``500``, ``401``, ``slow`` (wait ``delay``
seconds before the first byte, then ok), ``stall`` (send the first part of the answer, then
nothing until the client goes away), ``drop`` (send the first part, then close the connection),
``echo_error`` (Claude only: a stream that starts, then Anthropic's in-stream ``error`` event
echoing the request's key), ``malformed`` (invalid JSON with status 200), ``truncated`` (a stream that ends cleanly but
without its terminal event; a non-stream body cut in half), ``html_error`` (a 502 HTML page).
Error statuses use the provider's own error body.  Client disconnects are counted.

Use `start_fake(kind, **reply_opts)` from blocking tests (the app runs on 127.0.0.1:<free port>
in its own thread and IOLoop), or `make_app(kind, state)` inside an existing IOLoop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from cliproxyd.formats.sse import JSONArrayWriter
from tests.fakes.server import BackgroundServer

__all__ = [
    "KINDS",
    "MODES",
    "FakeState",
    "FakeUpstream",
    "Mode",
    "RecordedRequest",
    "Reply",
    "make_app",
    "start_fake",
]

KINDS = ("gemini", "claude", "openai", "responses")
MODES = ("ok", "400", "429", "500", "401", "echo_error", "slow", "stall", "drop", "malformed", "truncated",
         "html_error")
CREATED = 1_700_000_000  # a fixed timestamp: fakes need no clock
STALL_LIMIT = 600.0  # a stalled handler gives up after this long even if nobody disconnects


@dataclass(frozen=True)
class Reply:
    """What the fake answers: ``text`` (None = ``"Hello from <model>."``), a tool call, or
    several (``tool_calls``); optionally preceded by ``thinking`` signed with ``signature``."""

    text: str | None = None
    tool_name: str | None = None
    tool_args: dict = field(default_factory=dict)
    chunks: int = 3
    tool_calls: tuple = ()  # ((name, args), ...): parallel calls, overrides tool_name
    thinking: str | None = None
    signature: str = "sig-fake-1"


@dataclass(frozen=True)
class Mode:
    """A failure mode with its parameters."""

    name: str = "ok"
    retry_after: float | None = None
    delay: float = 1.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it (headers with lower-case names)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    key: str | None
    mode: str


class FakeState:
    """Thread-safe shared state of one fake: recorded requests, reply, modes, disconnects."""

    def __init__(self, kind: str, reply: Reply) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fake kind {kind!r}")
        self.kind = kind
        self.reply = reply
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self._lock = threading.Condition()
        self._default = Mode()
        self._by_key: dict[str, Mode] = {}
        self._queue: list[Mode] = []

    def set_mode(self, name: str, *, key: str | None = None, times: int | None = None,
                 retry_after: float | None = None, delay: float = 1.0) -> None:
        """Fail with ``name``: for all requests, for ``key`` only, or for the next ``times``."""
        if name not in MODES:
            raise ValueError(f"unknown mode {name!r}")
        mode = Mode(name, retry_after, delay)
        with self._lock:
            if times is not None:
                self._queue += [mode] * times
            elif key is not None:
                self._by_key[key] = mode
            else:
                self._default = mode

    def next_mode(self, key: str | None) -> Mode:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            return self._by_key.get(key or "", self._default)

    def record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def note_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1
            self._lock.notify_all()

    def wait_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` client disconnects were seen (False on timeout)."""
        with self._lock:
            return self._lock.wait_for(lambda: self.disconnects >= count, timeout)


# ---------------------------------------------------------------------------------------------
# Answer content shared by all kinds


@dataclass(frozen=True)
class _Call:
    n: int  # 1-based: ids are toolu_fake_<n>, call_fake_<n>, fc_fake_<n>
    name: str
    args: dict

    @property
    def args_json(self) -> str:
        return json.dumps(self.args, separators=(",", ":"))


@dataclass(frozen=True)
class _Answer:
    model: str
    text: str | None
    tool_name: str | None
    tool_args: dict
    chunks: int
    input_tokens: int
    output_tokens: int
    calls: tuple[_Call, ...] = ()
    thinking: str | None = None
    signature: str = ""

    @property
    def args_json(self) -> str:
        return json.dumps(self.tool_args, separators=(",", ":"))

    def pieces(self) -> list[str]:
        """The text (or the tool arguments) cut into ``chunks`` pieces."""
        return self.cut(self.args_json if self.tool_name else (self.text or ""))

    def cut(self, whole: str) -> list[str]:
        """``whole`` cut into ``chunks`` pieces."""
        if not whole:
            return [""]
        n = max(1, min(self.chunks, len(whole)))
        size = -(-len(whole) // n)
        return [whole[i:i + size] for i in range(0, len(whole), size)] or [""]


def _answer(reply: Reply, model: str, body: Any) -> _Answer:
    text = reply.text if reply.text is not None else f"Hello from {model}."
    pairs = list(reply.tool_calls) or ([(reply.tool_name, reply.tool_args)] if reply.tool_name
                                       else [])
    calls = tuple(_Call(i + 1, name, dict(args)) for i, (name, args) in enumerate(pairs))
    first = calls[0] if calls else None
    size = len(json.dumps(body)) if body is not None else 0
    out = sum(len(json.dumps(c.args)) for c in calls) if calls else len(text)
    out += len(reply.thinking or "")
    return _Answer(model, None if calls else text, first.name if first else None,
                   first.args if first else {}, reply.chunks, max(1, size // 4),
                   max(1, out // 4 + 1), calls, reply.thinking, reply.signature)


def _sse(data: Any, event: str | None = None, eol: str = "\n") -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}{eol}" if event else ""
    return f"{head}data: {text}{eol}{eol}".encode()


# ---------------------------------------------------------------------------------------------
# One class per wire format: bodies, stream frames (body part, terminal part), error bodies


class _Claude:
    content_type = "text/event-stream"

    @staticmethod
    def error(status: int, message: str) -> dict:
        kind = {400: "invalid_request_error", 401: "authentication_error",
                429: "rate_limit_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    @staticmethod
    def usage(a: _Answer) -> dict:
        return {"input_tokens": a.input_tokens, "output_tokens": a.output_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    def blocks(self, a: _Answer) -> list[dict]:
        """The content blocks, whole."""
        out = [{"type": "thinking", "thinking": a.thinking, "signature": a.signature}] \
            if a.thinking else []
        if not a.calls:
            return out + [{"type": "text", "text": a.text}]
        return out + [{"type": "tool_use", "id": f"toolu_fake_{c.n}", "name": c.name,
                       "input": c.args} for c in a.calls]

    def response(self, a: _Answer) -> dict:
        return {"id": "msg_fake_1", "type": "message", "role": "assistant", "model": a.model,
                "content": self.blocks(a), "stop_reason": "tool_use" if a.calls else "end_turn",
                "stop_sequence": None, "usage": self.usage(a)}

    def _streamed(self, a: _Answer, block: dict) -> tuple[dict, list[dict]]:
        """(the block as content_block_start shows it, its deltas)."""
        if block["type"] == "thinking":
            return (dict(block, thinking="", signature=""),
                    [{"type": "thinking_delta", "thinking": p} for p in a.cut(a.thinking or "")]
                    + [{"type": "signature_delta", "signature": a.signature}])
        if block["type"] == "tool_use":
            return (dict(block, input={}), [{"type": "input_json_delta", "partial_json": p}
                                            for p in a.cut(json.dumps(block["input"],
                                                                      separators=(",", ":")))])
        return dict(block, text=""), [{"type": "text_delta", "text": p} for p in a.pieces()]

    def stream(self, a: _Answer, body: dict) -> tuple[list[bytes], list[bytes]]:
        start = dict(self.response(a), content=[], stop_reason=None,
                     usage=dict(self.usage(a), output_tokens=1))
        frames = [_sse({"type": "message_start", "message": start}, "message_start")]
        for index, whole in enumerate(self.blocks(a)):
            block, deltas = self._streamed(a, whole)
            frames.append(_sse({"type": "content_block_start", "index": index,
                                "content_block": block}, "content_block_start"))
            if index == 0:
                frames.append(_sse({"type": "ping"}, "ping"))
            frames += [_sse({"type": "content_block_delta", "index": index, "delta": d},
                            "content_block_delta") for d in deltas]
            frames.append(_sse({"type": "content_block_stop", "index": index},
                               "content_block_stop"))
        tail = [_sse({"type": "message_delta",
                      "delta": {"stop_reason": "tool_use" if a.tool_name else "end_turn",
                                "stop_sequence": None},
                      "usage": {"output_tokens": a.output_tokens}}, "message_delta"),
                _sse({"type": "message_stop"}, "message_stop")]
        return frames, tail


class _OpenAI:
    content_type = "text/event-stream"

    @staticmethod
    def error(status: int, message: str) -> dict:
        kind, code = {400: ("invalid_request_error", None),
                      401: ("invalid_request_error", "invalid_api_key"),
                      429: ("requests", "rate_limit_exceeded")}.get(status, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    @staticmethod
    def usage(a: _Answer) -> dict:
        return {"prompt_tokens": a.input_tokens, "completion_tokens": a.output_tokens,
                "total_tokens": a.input_tokens + a.output_tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}}

    @staticmethod
    def _call(c: _Call) -> dict:
        return {"id": f"call_fake_{c.n}", "type": "function",
                "function": {"name": c.name, "arguments": c.args_json}}

    def response(self, a: _Answer) -> dict:
        message = ({"role": "assistant", "content": None,
                    "tool_calls": [self._call(c) for c in a.calls]}
                   if a.calls else {"role": "assistant", "content": a.text})
        if a.thinking:
            message["reasoning_content"] = a.thinking
        return {"id": "chatcmpl-fake1", "object": "chat.completion", "created": CREATED,
                "model": a.model, "choices": [{"index": 0, "message": message, "logprobs": None,
                "finish_reason": "tool_calls" if a.tool_name else "stop"}], "usage": self.usage(a)}

    def stream(self, a: _Answer, body: dict) -> tuple[list[bytes], list[bytes]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            obj = {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": CREATED,
                   "model": a.model, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                  "finish_reason": finish}]}
            return _sse(dict(obj, usage=None) if include_usage else obj)

        frames = [chunk({"role": "assistant", "content": ""})]
        frames += [chunk({"reasoning_content": p}) for p in a.cut(a.thinking or "") if p]
        if not a.calls:
            frames += [chunk({"content": piece}) for piece in a.pieces()]
        for k, c in enumerate(a.calls):
            for i, piece in enumerate(a.cut(c.args_json)):
                call: dict = {"index": k, "function": {"arguments": piece}}
                if i == 0:
                    call = {"index": k, "id": f"call_fake_{c.n}", "type": "function",
                            "function": {"name": c.name, "arguments": piece}}
                frames.append(chunk({"tool_calls": [call]}))
        tail = [chunk({}, "tool_calls" if a.tool_name else "stop")]
        if include_usage:
            tail.append(_sse({"id": "chatcmpl-fake1", "object": "chat.completion.chunk",
                              "created": CREATED, "model": a.model, "choices": [],
                              "usage": self.usage(a)}))
        return frames, tail + [b"data: [DONE]\n\n"]


class _Responses(_OpenAI):
    @staticmethod
    def usage(a: _Answer) -> dict:
        return {"input_tokens": a.input_tokens, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": a.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": a.input_tokens + a.output_tokens}

    def _reasoning(self, a: _Answer, done: bool) -> dict:
        summary = [{"type": "summary_text", "text": a.thinking}] if done else []
        item = {"id": "rs_fake_1", "type": "reasoning", "summary": summary}
        return dict(item, encrypted_content=a.signature) if done else item

    def _function_call(self, c: _Call, done: bool) -> dict:
        return {"id": f"fc_fake_{c.n}", "type": "function_call",
                "status": "completed" if done else "in_progress", "call_id": f"call_fake_{c.n}",
                "name": c.name, "arguments": c.args_json if done else ""}

    def _message(self, a: _Answer, done: bool) -> dict:
        content = [{"type": "output_text", "text": a.text, "annotations": []}] if done else []
        return {"id": "msg_fake_1", "type": "message", "role": "assistant",
                "status": "completed" if done else "in_progress", "content": content}

    def items(self, a: _Answer, done: bool) -> list[dict]:
        """The output items: reasoning (if any), then the calls or the message."""
        out = [self._reasoning(a, done)] if a.thinking else []
        if a.calls:
            return out + [self._function_call(c, done) for c in a.calls]
        return out + [self._message(a, done)]

    def response(self, a: _Answer, status: str = "completed") -> dict:
        done = status == "completed"
        return {"id": "resp_fake_1", "object": "response", "created_at": CREATED,
                "status": status, "error": None, "incomplete_details": None, "model": a.model,
                "output": self.items(a, True) if done else [], "parallel_tool_calls": True,
                "tool_choice": "auto", "tools": [], "usage": self.usage(a) if done else None}

    def stream(self, a: _Answer, body: dict) -> tuple[list[bytes], list[bytes]]:
        seq = iter(range(10_000))

        def ev(kind: str, **fields: Any) -> bytes:
            return _sse(dict(type=kind, sequence_number=next(seq), **fields), kind)

        frames = [ev("response.created", response=self.response(a, "in_progress")),
                  ev("response.in_progress", response=self.response(a, "in_progress"))]
        finals = self.items(a, True)
        for index, item in enumerate(self.items(a, False)):
            frames.append(ev("response.output_item.added", output_index=index, item=item))
            where = {"item_id": item["id"], "output_index": index}
            frames += self._item_events(a, item, finals[index], where, ev)
            frames.append(ev("response.output_item.done", output_index=index, item=finals[index]))
        return frames, [ev("response.completed", response=self.response(a))]

    def _item_events(self, a: _Answer, item: dict, final: dict, where: dict,
                     ev: Any) -> list[bytes]:
        if item["type"] == "reasoning":
            part = {"type": "summary_text", "text": ""}
            at = dict(where, summary_index=0)
            return ([ev("response.reasoning_summary_part.added", part=part, **at)]
                    + [ev("response.reasoning_summary_text.delta", delta=p, **at)
                       for p in a.cut(a.thinking or "")]
                    + [ev("response.reasoning_summary_text.done", text=a.thinking, **at),
                       ev("response.reasoning_summary_part.done",
                          part=dict(part, text=a.thinking), **at)])
        if item["type"] == "function_call":
            return ([ev("response.function_call_arguments.delta", delta=p, **where)
                     for p in a.cut(final["arguments"])]
                    + [ev("response.function_call_arguments.done", arguments=final["arguments"],
                          **where)])
        part = {"type": "output_text", "text": "", "annotations": []}
        at = dict(where, content_index=0)
        return ([ev("response.content_part.added", part=part, **at)]
                + [ev("response.output_text.delta", delta=p, logprobs=[], **at)
                   for p in a.pieces()]
                + [ev("response.output_text.done", text=a.text, logprobs=[], **at),
                   ev("response.content_part.done", part=dict(part, text=a.text), **at)])


class _Gemini:
    content_type = "text/event-stream"

    @staticmethod
    def error(status: int, message: str) -> dict:
        name = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED",
                503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {"error": {"code": status, "message": message, "status": name}}

    @staticmethod
    def usage(a: _Answer, output: int) -> dict:
        return {"promptTokenCount": a.input_tokens, "candidatesTokenCount": output,
                "totalTokenCount": a.input_tokens + output,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": a.input_tokens}]}

    def chunk(self, a: _Answer, parts: list[dict], output: int, final: bool) -> dict:
        candidate: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = "STOP"
        return {"candidates": [candidate], "usageMetadata": self.usage(a, output),
                "modelVersion": a.model, "responseId": "fake-response-1"}

    def _thought(self, a: _Answer) -> list[dict]:
        return [{"text": a.thinking, "thought": True}] if a.thinking else []

    def _signed(self, part: dict, a: _Answer) -> dict:
        # Gemini 3 puts the thought signature on the first part after the thoughts.
        return dict(part, thoughtSignature=a.signature) if a.thinking else part

    def parts(self, a: _Answer) -> list[dict]:
        if a.calls:
            calls = [{"functionCall": {"name": c.name, "args": c.args}} for c in a.calls]
            return self._thought(a) + [self._signed(calls[0], a)] + calls[1:]
        return self._thought(a) + [self._signed({"text": a.text}, a)]

    def response(self, a: _Answer) -> dict:
        return self.chunk(a, self.parts(a), a.output_tokens, True)

    def stream_objects(self, a: _Answer) -> list[dict]:
        thoughts = [self.chunk(a, self._thought(a), 1, False)] if a.thinking else []
        if a.calls:  # Gemini sends function calls whole, in one chunk
            return thoughts + [self.chunk(a, self.parts(a)[len(self._thought(a)):],
                                          a.output_tokens, True)]
        pieces = a.pieces()
        objs = [self.chunk(a, [{"text": p}], i + 1, False) for i, p in enumerate(pieces[:-1])]
        if objs:
            objs[0]["candidates"][0]["content"]["parts"][0] = self._signed({"text": pieces[0]}, a)
        last = {"text": pieces[-1]} if objs else self._signed({"text": pieces[-1]}, a)
        return thoughts + objs + [self.chunk(a, [last], a.output_tokens, True)]

    def stream(self, a: _Answer, body: dict) -> tuple[list[bytes], list[bytes]]:
        frames = [_sse(o, eol="\r\n") for o in self.stream_objects(a)]
        return frames[:-1], frames[-1:]

    def array_stream(self, a: _Answer) -> tuple[list[bytes], list[bytes]]:
        writer = JSONArrayWriter()
        frames = [writer.feed(json.dumps(o, indent=2)) for o in self.stream_objects(a)]
        return frames[:-1], frames[-1:] + [writer.finish()]


_FORMATS: dict[str, Any] = {"claude": _Claude(), "openai": _OpenAI(), "responses": _Responses(),
                            "gemini": _Gemini()}


# ---------------------------------------------------------------------------------------------
# The handler


class _Handler(tornado.web.RequestHandler):
    """One fake endpoint; ``op`` is generate, stream (Gemini), or count."""

    def initialize(self, state: FakeState, op: str) -> None:
        self.state = state
        self.op = op
        self.fmt = _FORMATS[state.kind]
        self.closed = asyncio.Event()

    def on_connection_close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.state.note_disconnect()

    def _key(self) -> str | None:
        h = self.request.headers
        auth = h.get("Authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        if self.state.kind == "gemini":
            return h.get("x-goog-api-key") or self.get_query_argument("key", None)
        if self.state.kind == "claude":
            return h.get("x-api-key") or bearer
        return bearer

    def _body(self) -> Any:
        try:
            return json.loads(self.request.body) if self.request.body else None
        except ValueError:
            return None

    async def post(self, model: str | None = None) -> None:
        body, key = self._body(), self._key()
        mode = self.state.next_mode(key)
        self.state.record(RecordedRequest(
            self.request.method, self.request.path,
            {k: self.get_query_argument(k) for k in self.request.query_arguments},
            {k.lower(): v for k, v in self.request.headers.get_all()}, body, key, mode.name))
        if mode.name == "slow":
            await asyncio.sleep(mode.delay)
        if await self._refused(mode, key, body):
            return
        model = model or (body or {}).get("model") or "unknown"
        answer = _answer(self.state.reply, model, body)
        if self.op == "count":
            await self._send_json(self._count(answer), mode)
        elif self._streaming(body):
            await self._stream(answer, body, mode)
        else:
            await self._send_json(self.fmt.response(answer), mode)

    async def _refused(self, mode: Mode, key: str | None, body: Any) -> bool:
        """Answer an error (mode or bad request) and return True, else False."""
        if mode.name == "html_error":
            self.set_status(502)
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.finish("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                        "<body><h1>Bad Gateway</h1></body></html>")
            return True
        status, message = {
            "400": (400, "Invalid request (fake)."),
            "429": (429, "Rate limit exceeded (fake)."),
            "500": (500, "Internal server error (fake)."),
            "401": (401, "Invalid API key (fake)."),
        }.get(mode.name, (0, ""))
        if not status and not key:
            status, message = 401, "No API key was provided (fake)."
        elif not status and not isinstance(body, dict):
            status, message = 400, "The request body is not valid JSON (fake)."
        elif not status and self.state.kind == "claude" and \
                "anthropic-version" not in self.request.headers:
            status, message = 400, "anthropic-version: header is required (fake)."
        if not status:
            return False
        if status == 429 and mode.retry_after is not None:
            self.set_header("Retry-After", f"{mode.retry_after:g}")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.fmt.error(status, message)))
        return True

    def _count(self, a: _Answer) -> dict:
        if self.state.kind == "gemini":
            return {"totalTokens": a.input_tokens,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": a.input_tokens}]}
        return {"input_tokens": a.input_tokens}

    def _streaming(self, body: dict) -> bool:
        if self.state.kind == "gemini":
            return self.op == "stream"
        return body.get("stream") is True

    async def _send_json(self, obj: dict, mode: Mode) -> None:
        text = json.dumps(obj).encode()
        self.set_header("Content-Type", "application/json")
        if mode.name == "malformed":
            text = b'{"candidates": [ this is not json'
        elif mode.name in ("truncated", "stall", "drop"):
            text = text[: len(text) // 2]
        await self._emit([text], [], mode)

    async def _stream(self, a: _Answer, body: dict, mode: Mode) -> None:
        if self.state.kind == "gemini" and self.get_query_argument("alt", None) != "sse":
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            frames, tail = self.fmt.array_stream(a)
        else:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            frames, tail = self.fmt.stream(a, body)
        if mode.name == "malformed":
            frames = frames[:1] + [b"data: {this is not json\n\n"]
        elif mode.name == "truncated":
            tail = []
        elif mode.name in ("stall", "drop"):
            frames, tail = frames[:2], []
        elif mode.name == "echo_error" and self.state.kind == "claude":
            # Anthropic's in-stream error event, with a message that echoes the key it was sent
            # (a careless upstream or gateway): the proxy must never pass that on.
            echo = f"overloaded; request from key {self._key()}"
            frames, tail = frames[:2], [_sse(self.fmt.error(529, echo), "error")]
        await self._emit(frames, tail, mode)

    async def _emit(self, frames: list[bytes], tail: list[bytes], mode: Mode) -> None:
        """Write each frame flushed on its own, then end as the mode says."""
        for frame in frames + tail:
            if self.closed.is_set():
                return
            self.write(frame)
            await self.flush()
        if mode.name == "stall":
            try:
                await asyncio.wait_for(self.closed.wait(), STALL_LIMIT)
            except TimeoutError:
                pass
        if mode.name in ("stall", "drop"):
            self.closed.set()  # our own close is not a client disconnect
            self.request.connection.stream.close()
        else:
            self.finish()

    def on_finish(self) -> None:
        self.closed.set()


def make_app(kind: str, state: FakeState | None = None) -> tornado.web.Application:
    """The Tornado application of one fake kind (``state.kind`` must match ``kind``)."""
    state = state or FakeState(kind, Reply())
    args = lambda op: {"state": state, "op": op}
    routes: dict[str, list] = {
        "gemini": [
            (r"/v1(?:beta)?/models/([^/:]+):generateContent", _Handler, args("generate")),
            (r"/v1(?:beta)?/models/([^/:]+):streamGenerateContent", _Handler, args("stream")),
            (r"/v1(?:beta)?/models/([^/:]+):countTokens", _Handler, args("count")),
        ],
        "claude": [
            (r"/v1/messages", _Handler, args("generate")),
            (r"/v1/messages/count_tokens", _Handler, args("count")),
        ],
        "openai": [(r".*/chat/completions", _Handler, args("generate"))],
        "responses": [(r".*/responses", _Handler, args("generate"))],
    }
    return tornado.web.Application(routes[kind])


class FakeUpstream(BackgroundServer):
    """A fake running in its own thread and IOLoop on 127.0.0.1 (see `start_fake`)."""

    def __init__(self, kind: str, reply: Reply) -> None:
        self.state = FakeState(kind, reply)
        self.kind = kind
        super().__init__(lambda: make_app(kind, self.state), f"fake-{kind}")

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (append ``/v1`` for OpenAI-style base URLs)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    @property
    def disconnects(self) -> int:
        return self.state.disconnects

    def set_mode(self, name: str, **kw: Any) -> None:
        """See `FakeState.set_mode`."""
        self.state.set_mode(name, **kw)

    def set_reply(self, **kw: Any) -> None:
        """Replace the scripted answer (fields of `Reply`)."""
        self.state.reply = Reply(**kw)

    def wait_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        return self.state.wait_disconnects(count, timeout)


def start_fake(kind: str, **reply_opts: Any) -> FakeUpstream:
    """Start a fake of ``kind`` (one of `KINDS`) with a `Reply` built from ``reply_opts``."""
    return FakeUpstream(kind, Reply(**reply_opts))
