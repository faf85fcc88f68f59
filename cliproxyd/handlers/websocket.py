"""OpenAI Responses over WebSocket: ``GET /v1/responses`` (issue 6).

Codex CLI and other agents keep one socket open and send turn after turn.  This module owns:

* **The upgrade and its access rule.**  `ResponsesWebSocketHandler` is a native Tornado
  `WebSocketHandler` that shares `BaseHandler`'s access check, run in ``prepare`` *before* the
  upgrade: with ``ws-auth: true`` (the default) a configured client key is required from
  ``Authorization: Bearer``, ``x-api-key`` or ``?key=`` (browsers cannot set headers), and a
  missing or wrong key gets the contract's 401 JSON body and no upgrade; with ``ws-auth: false``
  no key is needed even when ``api-keys`` is set.  The rule is re-checked against the *current*
  config at every turn, so a reload that turns ws-auth on (or removes the socket's key) answers
  the next turn with a 401 error frame and closes the socket (1008): the client cannot fix its
  key on an open socket.  Cross-origin browser pages may only connect with a key (an open proxy
  must not be usable by any web page the user visits); clients without ``Origin`` always may.
* **The conversation** (`Conversation`, pure): ``response.create`` is a Responses request body
  (``type`` and ``generate`` removed, ``stream`` forced on); a later ``response.create`` or a
  ``response.append`` continues it (previous input + previous output + new input, ``model`` and
  ``instructions`` inherited; `formats.openai_responses.apply_turn`).  A later create whose input
  already carries model output (an assistant message, a function call, reasoning...) and no
  ``previous_response_id`` is a full transcript replay and replaces the conversation.
  ``generate: false`` (pre-warm) is answered locally with ``response.created`` +
  ``response.completed``; no upstream call.
* **The turn.**  One turn at a time per socket: a request that arrives while a turn runs gets a
  409 error frame (clients such as Codex never overlap turns; queueing would hide their bugs).
  Each turn reads `RuntimeRef.current` afresh (reloads apply to long-lived sockets), runs the
  same `Pipeline` as ``POST /v1/responses`` and sends every Responses stream event as one JSON
  text frame, whatever the upstream kind.  Failures are frames
  ``{"type":"error","status":N,"error":{"message","type","code","param"}}`` (in-stream errors
  also carry their ``sequence_number``) and the socket stays open.  A client that closes
  cancels the upstream call.  A turn is in flight (shutdown waits for it) and is recorded as a
  ``POST /v1/responses`` is (usage statistics and the proxy metrics, `cliproxyd.recording`),
  plus ``cliproxyd_http_requests_total{route="responses_websocket",method="OTHER"}``.
* **Keep-alive and shutdown.**  The server pings every ``streaming.keepalive-seconds`` (0 = no
  pings) and drops a socket whose pong does not come back within the same interval.
  `OpenSockets` lets the daemon close every socket with 1001 once its turn has finished or the
  shutdown timeout has passed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

from tornado import websocket
from tornado.routing import PathMatches

from cliproxyd import access
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import codec, ir, sse
from cliproxyd.handlers.base import BaseHandler, render_error_body
from cliproxyd.handlers.proxy import parse_json_object
from cliproxyd.pipeline import ClientSide, Pipeline, SinkBase
from cliproxyd.recording import RequestDone, api_key_for, record
from cliproxyd.runtime import AppState, Runtime, RuntimeRef

__all__ = ["Conversation", "OpenSockets", "ResponsesWebSocketHandler", "UpgradeMatches",
           "error_frame"]

log = logging.getLogger(__name__)

ROUTE = "responses_websocket"
CREATE, APPEND = "response.create", "response.append"
# Close codes (RFC 6455 §7.4.1).
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
# Input items only a model produces: a create carrying one replays a whole transcript.
_OUTPUT_ITEM_TYPES = frozenset({
    "function_call", "custom_tool_call", "reasoning", "compaction", "local_shell_call",
    "shell_call", "apply_patch_call", "web_search_call", "file_search_call", "computer_call",
    "image_generation_call", "code_interpreter_call", "mcp_call", "mcp_list_tools",
})
_TERMINAL = ("response.completed", "response.incomplete")


class UpgradeMatches(PathMatches):
    """Matches its path for GET only, so ``GET /v1/responses`` (the WebSocket upgrade) and
    ``POST /v1/responses`` (plain HTTP) can be two rules on one path."""

    def match(self, request: Any) -> dict[str, Any] | None:
        if request.method != "GET":
            return None
        return super().match(request)


def error_frame(err: ProxyError, sequence_number: int | None = None) -> str:
    """The text frame for ``err``: ``{"type":"error","status":N,"error":{...}}``."""
    frame: dict[str, Any] = {"type": "error", "status": err.status}
    if sequence_number is not None:
        frame["sequence_number"] = sequence_number
    frame["error"] = render_error_body("openai_responses", err)["error"]
    return json.dumps(frame, ensure_ascii=False)


def _bad(message: str, code: str | None = None, status: int = 400) -> ProxyError:
    return ProxyError(ErrorKind.INVALID_REQUEST, message, status=status, code=code)


# ---------------------------------------------------------------------------------------------
# The conversation: pure


class Conversation:
    """What one socket remembers between turns: the last request sent and its output.

    `next_request(message)` turns a client message into the stateless Responses request to run
    (or raises a 400 `ProxyError`); `completed(body, output)` records a finished turn.  Pure:
    no I/O, no clock.
    """

    def __init__(self) -> None:
        self.last_request: dict[str, Any] | None = None
        self.last_output: list[dict[str, Any]] = []

    def next_request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """The request body for ``message`` (``type`` and ``generate`` removed, stream on)."""
        kind = message.get("type")
        if kind not in (CREATE, APPEND):
            raise _bad(f"unsupported websocket request type: {kind}")
        if kind == APPEND or self.last_request is not None:
            body = self._continuation(message, kind)
        else:
            body = self._first(message)
        body.pop("generate", None)
        body["stream"] = True
        return body

    def completed(self, body: Mapping[str, Any], output: list[dict[str, Any]]) -> None:
        """Remember a finished turn (its request and the output items it produced)."""
        self.last_request = copy.deepcopy(dict(body))
        self.last_output = copy.deepcopy(output)

    def _first(self, message: Mapping[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(dict(message))
        body.pop("type", None)
        if body.get("previous_response_id"):
            raise _bad("Previous response is not available on this websocket; resend the full "
                       "conversation input without previous_response_id",
                       code="previous_response_not_found")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _bad(f"missing model in {CREATE} request")
        body.setdefault("input", [])
        return body

    def _continuation(self, message: Mapping[str, Any], kind: str) -> dict[str, Any]:
        if self.last_request is None:
            raise _bad(f"websocket request received before {CREATE}")
        if kind == APPEND and not isinstance(message.get("input"), list):
            raise _bad("websocket request requires array field: input")
        if kind == CREATE and _is_replay(message):
            body = copy.deepcopy(dict(message))
            body.pop("type", None)
            for key in ("model", "instructions"):
                if body.get(key) is None and self.last_request.get(key) is not None:
                    body[key] = copy.deepcopy(self.last_request[key])
            body.setdefault("input", [])
            return body
        apply_turn = codec("openai_responses").apply_turn
        return apply_turn(self.last_request, self.last_output, message)


def _is_replay(message: Mapping[str, Any]) -> bool:
    """A create that carries model output and no previous_response_id resends the transcript."""
    if message.get("previous_response_id"):
        return False
    items = message.get("input")
    if not isinstance(items, list):
        return False
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") in _OUTPUT_ITEM_TYPES or item.get("role") == "assistant":
            return True
    return False


def prewarm_frames(body: Mapping[str, Any], now: float, response_id: str) -> list[str]:
    """The two local frames answering ``generate: false``: ``response.created`` and
    ``response.completed`` (empty output, zero usage)."""
    module = codec("openai_responses")
    request = module.decode_request(body)
    ctx = ir.EncodeContext(model=request.model, created=int(now), response_id=response_id,
                           request=request)
    encoder = module.StreamEncoder(ctx)
    events = encoder.feed(ir.MessageStart(id=response_id, model=request.model))
    events += encoder.feed(ir.UsageUpdate(ir.Usage(input_tokens=0, output_tokens=0,
                                                   total_tokens=0)))
    events += encoder.feed(ir.MessageStop())
    events += encoder.finish()
    wanted = [json.loads(e.data) for e in events
              if e.event in ("response.created", "response.completed")]
    for number, frame in enumerate(wanted):
        frame["sequence_number"] = number  # the skipped in_progress event leaves no gap
    return [json.dumps(frame, ensure_ascii=False) for frame in wanted]


# ---------------------------------------------------------------------------------------------
# Stream framing


class _SocketStreamEncoder:
    """The Responses stream encoder, with its in-stream ``error`` event in the WebSocket error
    shape (status and error object), as the socket's error frames are."""

    def __init__(self, ctx: ir.EncodeContext) -> None:
        self._inner = codec("openai_responses").StreamEncoder(ctx)

    def feed(self, event: ir.StreamEvent) -> list[sse.Event]:
        out = self._inner.feed(event)
        if isinstance(event, ir.StreamError):
            out = [self._reframe(e, event.error) for e in out]
        return out

    def finish(self) -> list[sse.Event]:
        return self._inner.finish()

    @staticmethod
    def _reframe(event: sse.Event, err: ProxyError) -> sse.Event:
        if event.event != "error":
            return event
        sequence = json.loads(event.data).get("sequence_number")
        return sse.Event(data=error_frame(err, sequence), event="error")


def _client_side() -> ClientSide:
    module = codec("openai_responses")
    return ClientSide("openai_responses", lambda body, model: module.decode_request(body, model=model),
                      module.encode_response, _SocketStreamEncoder)


class _SocketSink(SinkBase):
    """The pipeline's `Sink` for one turn: each event's data is one text frame."""

    def __init__(self, handler: ResponsesWebSocketHandler) -> None:
        super().__init__()
        self.handler = handler
        self.output: list[dict[str, Any]] | None = None  # set by response.completed/incomplete

    def send_events(self, events: list[sse.Event]) -> Any:
        if self.gone:
            return None
        if not self._started:
            self._started, self.first_write_at = True, time.time()
        last = None
        for event in events:
            if event.data == "[DONE]":
                continue
            self._note_terminal(event)
            last = self.handler.send_frame(event.data)
            if last is None:
                self.client_gone()
                return None
        return self._drain(last) if last is not None else None

    async def _drain(self, written: Any) -> None:
        """Back-pressure: wait until the last frame has been handed to the socket."""
        try:
            await written
        except websocket.WebSocketClosedError:
            self.client_gone()

    def _note_terminal(self, event: sse.Event) -> None:
        if event.event not in _TERMINAL and event.event is not None:
            return
        try:
            data = json.loads(event.data)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("type") in _TERMINAL:
            output = (data.get("response") or {}).get("output")
            if isinstance(output, list):
                self.output = [i for i in output if isinstance(i, dict)]


# ---------------------------------------------------------------------------------------------
# Open sockets, for shutdown


class OpenSockets:
    """The open Responses sockets of one application (the daemon closes them on shutdown)."""

    def __init__(self) -> None:
        self._handlers: set[ResponsesWebSocketHandler] = set()
        self._empty = asyncio.Event()
        self.draining = False

    def __len__(self) -> int:
        return len(self._handlers)

    def add(self, handler: ResponsesWebSocketHandler) -> None:
        self._handlers.add(handler)
        self._empty.clear()

    def discard(self, handler: ResponsesWebSocketHandler) -> None:
        self._handlers.discard(handler)
        if not self._handlers:
            self._empty.set()

    def drain(self) -> None:
        """Shutdown begins: idle sockets close now (1001), busy ones when their turn ends."""
        self.draining = True
        for handler in list(self._handlers):
            if not handler.busy:
                handler.close(GOING_AWAY, "server shutting down")

    async def close_all(self, grace: float) -> None:
        """Close every socket still open (1001; a running turn is cancelled) and wait up to
        ``grace`` seconds for the closing handshakes."""
        self.draining = True
        for handler in list(self._handlers):
            handler.close(GOING_AWAY, "server shutting down")
        if self._handlers:
            try:
                await asyncio.wait_for(self._empty.wait(), grace)
            except TimeoutError:
                log.warning("%d websockets did not close in time", len(self._handlers))


# ---------------------------------------------------------------------------------------------
# The handler


class ResponsesWebSocketHandler(BaseHandler, websocket.WebSocketHandler):
    """GET /v1/responses: the Responses API over one long-lived WebSocket (see module doc)."""

    client_format = "openai_responses"

    def initialize(self, runtime_ref: RuntimeRef, state: AppState, route: str,  # type: ignore[override]
                   sockets: OpenSockets) -> None:
        super().initialize(runtime_ref, state, route)
        self.sockets = sockets
        self.conversation = Conversation()
        self._keys: list[str] = []  # what the client presented at the upgrade
        self._turn: asyncio.Future | None = None
        self._sink: _SocketSink | None = None
        self._open = False

    # -- before the upgrade

    def access_mode(self) -> str:
        return "client" if self.runtime.config.ws_auth else "public"

    async def prepare(self) -> None:
        self._keys = access.client_key_candidates(self.request.headers,
                                                  self.get_query_argument("key", None))
        await super().prepare()

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise ProxyError(ErrorKind.INVALID_REQUEST, "GET /v1/responses is the Responses "
                             "WebSocket: send a WebSocket upgrade, or POST for HTTP.")
        self._echo_turn_state()
        await super().get(*args, **kwargs)

    def _echo_turn_state(self) -> None:
        # Codex correlates turns through this header; the original echoes it in the 101.
        value = self.request.headers.get("x-codex-turn-state")
        if value and value.isprintable():
            self.set_header("x-codex-turn-state", value)

    def check_origin(self, origin: str) -> bool:
        """Cross-origin pages may connect only with a client key (see the module docstring)."""
        return bool(self.principal)

    @property
    def ping_interval(self) -> float | None:
        return self.runtime.config.streaming.keepalive_seconds or None

    @property
    def ping_timeout(self) -> float | None:
        return self.ping_interval

    @property
    def max_message_size(self) -> int:
        return self.runtime.config.max_body_size

    # -- the socket

    @property
    def busy(self) -> bool:
        return self._turn is not None

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._open = True
        self.sockets.add(self)
        if self.sockets.draining:
            self.close(GOING_AWAY, "server shutting down")

    def on_message(self, message: str | bytes) -> None:
        if self.sockets.draining or not self._open:
            return
        try:
            self._start_turn(message)
        except ProxyError as err:
            self.send_frame(error_frame(err))

    def _start_turn(self, message: str | bytes) -> None:
        raw = message.encode("utf-8") if isinstance(message, str) else message
        msg = parse_json_object(raw)
        if msg.get("type") not in (CREATE, APPEND):
            raise _bad(f"unsupported websocket request type: {msg.get('type')}")
        if self._turn is not None:
            raise _bad("a response is already in progress on this websocket; wait for it to "
                       "finish", code="response_in_progress", status=409)
        if not self._still_authorized():
            self.send_frame(error_frame(ProxyError(ErrorKind.AUTHENTICATION,
                                                   access.AUTH_FAILED_MESSAGE)))
            self.close(POLICY_VIOLATION, "authentication required")
            return
        body = self.conversation.next_request(msg)
        if msg.get("generate") is False:
            self._prewarm(body)
            return
        self._turn = asyncio.ensure_future(self._run_turn(body))

    def _still_authorized(self) -> bool:
        """The access rule of the current config, applied to the key given at the upgrade."""
        config = self.runtime_ref.current.config
        keys = [k for k in config.api_keys if k]
        if not config.ws_auth or not keys:
            return True
        return access.match_client_key(keys, self._keys) is not None

    def _prewarm(self, body: dict[str, Any]) -> None:
        response_id = f"resp_prewarm_{secrets.token_hex(16)}"
        for frame in prewarm_frames(body, time.time(), response_id):
            self.send_frame(frame)
        self.conversation.completed(body, [])

    async def _run_turn(self, body: dict[str, Any]) -> None:
        token = object()
        self.state.inflight.enter(token)
        sink = self._sink = _SocketSink(self)
        runtime = self.runtime_ref.current  # this turn's snapshot
        pipeline = Pipeline(runtime, self.state.transport)
        status, began = 200, time.time()
        try:
            await pipeline.generate(_client_side(), body, sink, stream=True)
            if not sink.started and not sink.gone:
                raise ProxyError(ErrorKind.UPSTREAM_ERROR, "The upstream returned an empty stream.")
        except ProxyError as err:
            status = 200 if sink.started else err.status
            if not sink.started and not sink.gone:
                self.send_frame(error_frame(err))
        except Exception:
            log.exception("websocket turn failed")
            status = 500
            if not sink.started and not sink.gone:
                self.send_frame(error_frame(ProxyError(ErrorKind.INTERNAL, "internal server error")))
        finally:
            self._turn, self._sink = None, None
            self.state.inflight.leave(token)
        if sink.output is not None:
            self.conversation.completed(body, sink.output)
        self.record_turn(runtime, RequestDone(
            client_format="openai_responses", status=status,
            api=api_key_for(self.principal, "GET", self.route_name, "/v1/responses"),
            started=began, duration=time.time() - began,
            first_byte=(sink.first_write_at or time.time()) - began,
            outcome=pipeline.outcome, requested_model=str(body.get("model") or "")))
        if self.sockets.draining:
            self.close(GOING_AWAY, "server shutting down")

    def record_turn(self, runtime: Runtime, done: RequestDone) -> None:
        """One turn counts as one request, as ``POST /v1/responses`` does: a usage record and
        the proxy metrics (`cliproxyd.recording`), the request counter (route
        ``responses_websocket``, method ``OTHER``) and an access-log line.  ``done.status`` is
        what an HTTP request would have answered (200 once the stream started)."""
        record(self.state, runtime, done)
        self.state.metrics.observe_request(ROUTE, "WS", done.status)
        log.info("%d websocket turn /v1/responses (%s) %.1fms", done.status,
                 done.requested_model or "-", 1000.0 * done.duration)

    def send_frame(self, text: str) -> Any:
        """Write one text frame; None when the socket is already closed."""
        try:
            return self.write_message(text)
        except websocket.WebSocketClosedError:
            return None

    def on_close(self) -> None:
        self._open = False
        self.sockets.discard(self)
        if self._sink is not None:
            self._sink.client_gone()  # cancels the upstream call
