"""The public API routes: OpenAI Chat/Completions/Responses, Anthropic Messages, Gemini, listings.

Handlers stay thin: parse the HTTP envelope (JSON body, URL model, stream flag and framing),
call `pipeline.Pipeline`, write what it returns.  `_ClientSink` is the pipeline's view of the
client connection: stream headers go out with the first event, every write is flushed, an SSE
keep-alive comment is written when the stream is idle, and a client that goes away cancels the
upstream call.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from asyncio import Future
from typing import Any, Awaitable

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import codec, sse
from cliproxyd.handlers.base import BaseHandler
from cliproxyd.pipeline import ClientSide, Outcome, Pipeline, SinkBase
from cliproxyd.recording import RequestDone, api_key_for, record

__all__ = [
    "ChatCompletionsHandler", "CompletionsHandler", "MessagesHandler", "CountTokensHandler",
    "ResponsesHandler", "ModelsHandler", "GeminiModelsHandler", "GeminiModelHandler",
    "GeminiActionHandler",
]

log = logging.getLogger(__name__)

_MAX_JSON_DEPTH = 128


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value) or math.isnan(value):
        raise ValueError("number out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 `ProxyError` saying what is wrong with it."""
    if not raw.strip():
        raise ProxyError(ErrorKind.INVALID_REQUEST, "The request body is empty; a JSON object "
                         "is required.")
    try:
        text = raw.decode("utf-8")
        body = jsontext.loads_bounded(text, _MAX_JSON_DEPTH, parse_float=_finite,
                                      parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ProxyError(ErrorKind.INVALID_REQUEST, "The request body is not valid UTF-8.")
    except (RecursionError, jsontext.TooDeep):
        raise ProxyError(ErrorKind.INVALID_REQUEST, "The request body is nested too deeply.")
    except ValueError as exc:  # JSONDecodeError, out-of-range numbers, over-long integers
        raise ProxyError(ErrorKind.INVALID_REQUEST, f"The request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        raise ProxyError(ErrorKind.INVALID_REQUEST, "The request body must be a JSON object.")
    return body


class _ClientSink(SinkBase):
    """The pipeline's `Sink` over one handler: framing, headers, flush, keep-alive, cancel."""

    def __init__(self, handler: "_ProxyHandler", framing: str, keepalive: float) -> None:
        super().__init__()
        # Weak: the handler holds its sink, and a strong reference back would make every request
        # (handler, connection, request, answer) a cycle that only the garbage collector frees;
        # on the benchmark those collections were 7 % of the daemon's CPU.
        self.handler = weakref.proxy(handler)
        self.framing = framing  # "sse" or "json_array" (Gemini without alt=sse)
        self.keepalive = keepalive
        self._array = sse.JSONArrayWriter() if framing == "json_array" else None
        self._timer: object | None = None
        self._last_write = 0.0
        self._loop = IOLoop.current()  # looked up once: `_flush` runs for every chunk

    def client_gone(self) -> None:
        self._stop_keepalive()
        super().client_gone()

    def send_events(self, events: list[sse.Event]) -> Any:
        if self.gone:
            return None
        if not self._started:
            self._begin()
        if self._array is not None:
            data = b"".join([self._array.feed(e.data) for e in events])
        elif len(events) == 1:  # the usual case: one upstream event per read
            data = sse.serialize(events[0])
        else:
            data = b"".join([sse.serialize(e) for e in events])
        if data:
            self.handler.write(data)
        return self._flush()

    def _begin(self) -> None:
        self._started = True
        self.first_write_at = time.time()
        handler = self.handler
        handler.set_status(200)
        if self._array is not None:
            handler.set_header("Content-Type", "application/json; charset=UTF-8")
        else:
            handler.set_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.set_header("Cache-Control", "no-cache")
        handler.set_header("X-Accel-Buffering", "no")  # reverse proxies must not buffer a stream
        self._arm_keepalive()

    def _flush(self) -> Awaitable[None] | None:
        """Flush; an awaitable only while the socket is full.  Most flushes complete at once, and
        this runs for every chunk of every stream: no coroutine for those."""
        self._last_write = self._loop.time()
        try:
            written = self.handler.flush()
        except StreamClosedError:
            self.client_gone()
            return None
        if written.done():
            self._check_flushed(written)
            return None
        return self._wait_flushed(written)

    async def _wait_flushed(self, written: Future[None]) -> None:
        try:
            await written
        except StreamClosedError:
            self.client_gone()

    def _check_flushed(self, written: Future[None]) -> None:
        if isinstance(written.exception(), StreamClosedError):
            self.client_gone()
        else:
            written.result()  # anything else is a bug: raise it here, not into the void

    def close(self) -> None:
        """The stream is over: write the array's closing bracket and finish the response."""
        self._stop_keepalive()
        if self._started and not self.gone:
            if self._array is not None:
                self.handler.write(self._array.finish())
            self.handler.finish()

    def _arm_keepalive(self) -> None:
        if self.keepalive > 0 and self._array is None:
            self._last_write = self._loop.time()
            self._timer = self._loop.call_later(self.keepalive, self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            if self.gone or self.handler._finished:
                return
        except ReferenceError:  # the handler is gone (the sink holds it weakly): nothing to keep
            return
        loop = self._loop
        if loop.time() - self._last_write >= self.keepalive:
            self.handler.write(sse.comment("keep-alive"))
            loop.add_callback(self._flush)
        self._timer = loop.call_later(self.keepalive, self._tick)

    def _stop_keepalive(self) -> None:
        if self._timer is not None:
            self._loop.remove_timeout(self._timer)
            self._timer = None


class _ProxyHandler(BaseHandler):
    """A route that runs the pipeline; subclasses name the client side and the stream flag."""

    access = "client"
    sink: _ClientSink | None = None
    outcome: Outcome | None = None
    _pipeline: Pipeline | None = None

    def pipeline(self) -> Pipeline:
        self._pipeline = Pipeline(self.runtime, self.state.transport)
        return self._pipeline

    def body_json(self) -> dict[str, Any]:
        return parse_json_object(self.request.body)

    async def run(self, client: ClientSide, body: dict[str, Any], *, url_model: str | None = None,
                  stream: bool | None = None, framing: str = "sse") -> None:
        keepalive = self.runtime.config.streaming.keepalive_seconds
        self.sink = _ClientSink(self, framing, keepalive)
        try:
            self.outcome = await self.pipeline().generate(
                client, body, self.sink, url_model=url_model, stream=stream,
                client_headers=self.request.headers)
        except ProxyError:
            if self.sink.started:  # the encoder already wrote the in-stream error
                self.sink.close()
                return
            raise
        if self.sink.started or self.sink.gone:
            self.sink.close()
        elif self.outcome.body is not None:
            self.write_json(self.outcome.body)
        else:  # a streaming request whose upstream produced no event at all
            raise ProxyError(ErrorKind.UPSTREAM_ERROR, "The upstream returned an empty stream.")

    def on_connection_close(self) -> None:
        if self.sink is not None:
            self.sink.client_gone()
        super().on_connection_close()

    def on_finish(self) -> None:
        """A generation request (one that reached `run`) becomes a usage record and metric
        samples (issue 5; `cliproxyd.recording`)."""
        if self.sink is not None:
            req, outcome = self.request, self.outcome or getattr(self._pipeline, "outcome", None)
            first = self.sink.first_write_at or time.time()
            record(self.state, self.runtime, RequestDone(
                client_format=self.client_format or "", status=self.get_status(),
                api=api_key_for(self.principal, req.method or "", self.route_name, req.path),
                started=req._start_time, duration=req.request_time(),
                first_byte=first - req._start_time, outcome=outcome))
        super().on_finish()


class ChatCompletionsHandler(_ProxyHandler):
    """POST /v1/chat/completions."""

    client_format = "openai_chat"

    async def post(self) -> None:
        body = self.body_json()
        if "messages" not in body and ("input" in body or "instructions" in body):
            await self.run(ClientSide.chat_from_responses_body(), body)
            return
        await self.run(ClientSide.of("openai_chat"), body)


class CompletionsHandler(_ProxyHandler):
    """POST /v1/completions (the legacy prompt API, served through chat)."""

    client_format = "openai_chat"

    async def post(self) -> None:
        await self.run(ClientSide.legacy_completions(), self.body_json())


class MessagesHandler(_ProxyHandler):
    """POST /v1/messages."""

    client_format = "claude"

    async def post(self) -> None:
        await self.run(ClientSide.of("claude"), self.body_json())


class CountTokensHandler(_ProxyHandler):
    """POST /v1/messages/count_tokens."""

    client_format = "claude"

    async def post(self) -> None:
        module = codec("claude")
        request = module.decode_request(self.body_json())
        count = await self.pipeline().count_tokens("claude", request, self.request.headers)
        self.write_json(module.encode_count_tokens_response(count))


class ResponsesHandler(_ProxyHandler):
    """POST /v1/responses."""

    client_format = "openai_responses"

    async def post(self) -> None:
        await self.run(ClientSide.of("openai_responses"), self.body_json())


class ModelsHandler(_ProxyHandler):
    """GET /v1/models: OpenAI's list shape, or Anthropic's for Anthropic clients."""

    client_format = "openai_chat"

    def _wants_anthropic(self) -> bool:
        agent = self.request.headers.get("User-Agent", "")
        return "anthropic-version" in self.request.headers or agent.startswith("claude-cli")

    async def prepare(self) -> None:
        if self._wants_anthropic():
            self.client_format = "claude"  # errors too (a bad key) in the Anthropic shape
        await super().prepare()

    async def get(self) -> None:
        listing = self.runtime.registry.listing()
        if self.client_format == "claude":
            data = [{"type": "model", "id": m.id, "display_name": m.info.display_name,
                     "created_at": _rfc3339(m.info.created)} for m in listing]
            self.write_json({"data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None})
            return
        self.write_json({"object": "list", "data": [
            {"id": m.id, "object": "model", "created": m.info.created, "owned_by": m.owned_by}
            for m in listing]})


def _rfc3339(unix: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _gemini_model(item: Any) -> dict[str, Any]:
    info = item.info
    body: dict[str, Any] = {
        "name": f"models/{item.id}", "displayName": info.display_name or item.id,
        "description": info.description or info.display_name or item.id,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    }
    if info.version:
        body["version"] = info.version
    if info.context_length:
        body["inputTokenLimit"] = info.context_length
    if info.max_output_tokens:
        body["outputTokenLimit"] = info.max_output_tokens
    if info.thinking is not None:
        body["thinking"] = True  # as Google's model resource reports thinking models
    return body


class GeminiModelsHandler(_ProxyHandler):
    """GET /v1beta/models."""

    client_format = "gemini"

    async def get(self) -> None:
        self.write_json({"models": [_gemini_model(m) for m in self.runtime.registry.listing()]})


class GeminiModelHandler(_ProxyHandler):
    """GET /v1beta/models/{model}."""

    client_format = "gemini"

    async def get(self, model: str) -> None:
        name = model[len("models/"):] if model.startswith("models/") else model
        item = self.runtime.registry.find(name)
        if item is None:
            raise ProxyError(ErrorKind.NOT_FOUND, f"models/{name} is not found.")
        self.write_json(_gemini_model(item))


class GeminiActionHandler(_ProxyHandler):
    """POST /v1beta/models/{model}:{generateContent|streamGenerateContent|countTokens}."""

    client_format = "gemini"

    async def post(self, model: str, action: str) -> None:
        body = self.body_json()
        if action == "generateContent":
            await self.run(ClientSide.of("gemini"), body, url_model=model, stream=False)
        elif action == "streamGenerateContent":
            alt = self.get_query_argument("alt", None) or self.get_query_argument("$alt", None)
            framing = "sse" if alt == "sse" else "json_array"
            await self.run(ClientSide.of("gemini"), body, url_model=model, stream=True,
                           framing=framing)
        elif action == "countTokens":
            module = codec("gemini")
            request = module.decode_count_tokens_request(body, model=model)
            count = await self.pipeline().count_tokens("gemini", request)
            self.write_json(module.encode_count_tokens_response(count))
        else:
            raise ProxyError(ErrorKind.NOT_FOUND, f"Method models.{action} is not supported.")
