"""One proxied request end to end: the only place the steps are sequenced.

decode (client codec) → resolve the model (registry) → pick a credential (pool) → encode (upstream
codec, or pass the body through when both sides speak the same format) → send (transport) →
decode the answer (upstream codec; streams incrementally) → encode it for the client → write
(through the handler's `Sink`).  On an upstream failure before anything reached the client, the
next credential is tried (`request-retry` further attempts) and the failed one cools down.

Rules kept here (issue 4):

* Same format in and out: the client's body goes upstream untouched but for the model (and
  ``stream_options.include_usage`` for OpenAI-compatible streams, whose extra usage chunk is then
  not forwarded unless the client asked for it).  The answer is decoded anyway, for usage and to
  notice a truncated stream.
* Response headers go out with the first upstream event and every event is flushed at once.
  Until then an upstream that fails (an HTTP error status, a refused connection, or a stream whose
  first event is an error) can still fail over to the next credential or be answered with a
  proper HTTP status and JSON body.
* A stream that breaks after output started ends with the client format's in-stream error; it
  does not cool the credential down (the connection failed, not the key).
* Non-streaming clients of streaming-only upstreams get one aggregated answer.

The handler supplies a `Sink` (framing, headers, flushing, cancel-on-disconnect) and records the
returned `Outcome`.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import urlsplit

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import aggregate, codec, ir, sse
from cliproxyd.formats.reasoning import fit_reasoning, split_model_suffix
from cliproxyd.providers import provider_for
from cliproxyd.providers.base import WireRequest
from cliproxyd.providers.transport import Transport, UpstreamCall, UpstreamResponse
from cliproxyd.routing.catalog import find_model
from cliproxyd.routing.models import Credential
from cliproxyd.routing.pool import should_retry
from cliproxyd.tokens import estimate_tokens

__all__ = ["ClientSide", "Sink", "SinkBase", "Outcome", "Pipeline"]

log = logging.getLogger(__name__)

_ID_PREFIX = {"openai_chat": "chatcmpl-", "claude": "msg_", "openai_responses": "resp_",
              "gemini": ""}


@dataclass(frozen=True)
class ClientSide:
    """How to read the client's request and answer it: its codec's functions.  ``head`` reads
    only the model and stream flag, for requests that may pass through undecoded; a side
    without it (legacy completions, a Responses body on the chat route, the WebSocket turn) is
    decoded at once."""

    format: str
    decode: Callable[[Mapping[str, Any], str | None], ir.Request]
    encode_response: Callable[[ir.Response, ir.EncodeContext], dict]
    stream_encoder: Callable[[ir.EncodeContext], Any]
    passthrough: bool = True
    head: Callable[[Mapping[str, Any], str | None], tuple[str, bool]] | None = None

    @classmethod
    @functools.cache
    def of(cls, fmt: str) -> "ClientSide":
        """The client side of format ``fmt`` (a codec name)."""
        module = codec(fmt)
        return cls(fmt, lambda body, model: module.decode_request(body, model=model),
                   module.encode_response, module.StreamEncoder,
                   head=lambda body, model: module.decode_request_head(body, model=model))

    @classmethod
    def legacy_completions(cls) -> "ClientSide":
        """The legacy ``/v1/completions`` API, mapped onto chat."""
        module = codec("openai_chat")
        return cls("openai_chat", lambda body, model: module.decode_legacy_request(body),
                   module.encode_legacy_response, module.LegacyStreamEncoder, passthrough=False)

    @classmethod
    def chat_from_responses_body(cls) -> "ClientSide":
        """A Responses-shaped body (``input``/``instructions``, no ``messages``) posted to
        ``/v1/chat/completions``, answered as chat (CLIProxyAPI accepts these too)."""
        chat, responses = codec("openai_chat"), codec("openai_responses")
        return cls("openai_chat", lambda body, model: responses.decode_request(body, model=model),
                   chat.encode_response, chat.StreamEncoder, passthrough=False)


class Sink(Protocol):
    """What the pipeline needs from the handler that owns the client connection."""

    @property
    def started(self) -> bool:
        """Whether stream headers or bytes have gone out (errors can no longer be statuses)."""
        ...

    def send_events(self, events: list[sse.Event]) -> Awaitable[None] | None:
        """Frame and write stream events (sends the stream headers first); flushes."""
        ...

    def watch(self, call: UpstreamCall | None) -> None:
        """Cancel ``call`` if the client disconnects (None: nothing to cancel any more)."""
        ...


class SinkBase:
    """What every `Sink` shares: the started flag, the upstream call to cancel when the client
    goes away (``client_gone``), and when the first byte went out (for the ttfb metric)."""

    def __init__(self) -> None:
        self._started = False
        self._call: UpstreamCall | None = None
        self.gone = False
        self.first_write_at: float | None = None  # wall clock

    @property
    def started(self) -> bool:
        return self._started

    def watch(self, call: UpstreamCall | None) -> None:
        self._call = call
        if call is not None and self.gone:
            call.cancel()

    def client_gone(self) -> None:
        """The client disconnected: cancel the upstream call, if one is running."""
        self.gone = True
        if self._call is not None:
            self._call.cancel()


@dataclass
class Outcome:
    """What happened, for usage statistics and metrics."""

    model: str
    body: dict | None = None  # the non-streamed answer to write, when not streaming
    usage: ir.Usage = field(default_factory=ir.Usage)
    provider: str | None = None
    credential: str | None = None
    upstream_model: str | None = None
    attempts: int = 0
    stream_error: ProxyError | None = None
    credential_id: str | None = None
    # (provider kind, error) of each failed attempt, for metrics (issue 5).
    failures: list[tuple[str, ProxyError]] = field(default_factory=list)


class _Plan:
    """One request as the pipeline reads it.  The model and stream flag are read at once (they
    route the request); the IR request is decoded when first needed.  A request passed through
    to an upstream of its own format never needs it: its body goes upstream as it came, and
    decoding a coding agent's conversation cost more than the rest of its passthrough."""

    def __init__(self, client: ClientSide, body: Mapping[str, Any], url_model: str | None,
                 stream: bool | None, client_headers: Mapping[str, str], created: int) -> None:
        self.client, self.body, self.client_headers = client, body, client_headers
        self._url_model, self._stream = url_model, stream
        self._request: ir.Request | None = None
        self._ctx: ir.EncodeContext | None = None
        if client.head is None:
            asked, body_stream = self.request.model, self.request.stream
        else:
            asked, body_stream = client.head(body, url_model)
        self.asked = asked  # the model as the client named it, suffix and all
        self.stream = body_stream if stream is None else stream
        self.model, self.reasoning = split_model_suffix(asked)  # base model: what routing sees
        self.suffix = self.reasoning is not None
        self.created = created
        # Response ids need to be unique, not secret: no os.urandom call per request.
        self.response_id = f"{_ID_PREFIX.get(client.format, '')}{random.getrandbits(96):024x}"

    @property
    def request(self) -> ir.Request:
        """The IR request (see `decode`)."""
        return self.decode()

    def decode(self) -> ir.Request:
        """The IR request, decoded now if it was not yet (400 `ProxyError` for a bad body)."""
        if self._request is None:
            request = self.client.decode(self.body, self._url_model)
            if self._stream is not None:
                request = replace(request, stream=self._stream)
            reasoning = split_model_suffix(request.model)[1]
            if reasoning is not None:
                request = replace(request, reasoning=reasoning)
            self._request = request
        return self._request

    @property
    def ctx(self) -> ir.EncodeContext:
        """What the client's encoders need.  Its request is the IR request where it decodes; a
        body passed through that our codec would have refused (the upstream accepted it) is
        echoed as its model and stream flag only."""
        if self._ctx is None:
            try:
                request = self.request
            except ProxyError:
                request = ir.Request(model=self.asked, messages=(), stream=self.stream)
            self._ctx = ir.EncodeContext(model=self.asked, created=self.created,
                                         response_id=self.response_id, request=request)
        return self._ctx

    def passes_through(self, fmt: str) -> bool:
        """Whether the body goes unchanged (but for the model) to an upstream speaking ``fmt``."""
        return self.client.passthrough and fmt == self.client.format and not self.suffix


class Pipeline:
    """Runs requests against one `Runtime` snapshot (config, registry, pool)."""

    def __init__(self, runtime: Any, transport: Transport, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.transport = transport
        self.clock = clock
        self.wall = wall
        self.outcome: Outcome | None = None  # the last `generate`'s, also when it raised

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, client: ClientSide, body: Mapping[str, Any], sink: Sink, *,
                       url_model: str | None = None, stream: bool | None = None,
                       client_headers: Mapping[str, str] | None = None) -> Outcome:
        """Serve one generation request; raises `ProxyError` if it fails before streaming.

        ``client_headers`` are the client's request headers: a provider with a
        ``with_client_headers`` method forwards the ones it knows (Claude: anthropic-beta)."""
        plan = _Plan(client, body, url_model, stream, client_headers or {}, int(self.wall()))
        outcome = self.outcome = Outcome(model=plan.asked)  # kept for failure metrics
        candidates = self.runtime.registry.resolve(plan.model)
        if not all(plan.passes_through(provider_for(cred.kind).format) for cred, _ in candidates):
            plan.decode()  # a body we cannot translate is the client's 400 before any attempt
        tried: list[str] = []
        last: ProxyError | None = None
        for _ in range(1 + max(0, self.runtime.config.request_retry)):
            picked = self._pick(plan.model, candidates, tried, last)
            if picked is None:
                break
            cred, upstream_model = picked
            tried.append(cred.id)
            outcome.attempts += 1
            outcome.provider, outcome.credential = cred.kind, cred.label
            outcome.credential_id = cred.id
            outcome.upstream_model = upstream_model
            try:
                await self._attempt(plan, cred, upstream_model, sink, outcome)
            except ProxyError as raised:
                err = _scrub(raised, cred)  # upstream words reach logs and the client: mask keys
                outcome.failures.append((cred.kind, err))
                self._report(cred, upstream_model, err, sink)
                if sink.started or not should_retry(err):
                    raise err from raised.__cause__
                log.info("attempt %d on %s failed (%s); trying the next credential",
                         outcome.attempts, cred.label, err)
                last = err
                continue
            self.runtime.pool.report(cred, upstream_model, None, self.clock())
            return outcome
        assert last is not None  # resolve() found candidates, so at least one attempt ran
        raise last

    def _pick(self, model: str, candidates: list, tried: list[str],
              last: ProxyError | None) -> tuple[Credential, str] | None:
        try:
            return self.runtime.pool.pick(model, candidates, self.clock(), exclude=tried)
        except ProxyError:
            if last is not None:
                raise last  # the real upstream failure says more than "the rest are cooling"
            raise

    def _report(self, cred: Credential, upstream_model: str, err: ProxyError, sink: Sink) -> None:
        if sink.started:
            return  # broke mid-stream: the connection's fault, not the credential's
        seconds = self.runtime.pool.report(cred, upstream_model, err, self.clock())
        if seconds:
            log.info("%s cooling down for %s for %.0fs after %s", cred.label, upstream_model,
                     seconds, err.status)

    async def _attempt(self, plan: _Plan, cred: Credential, upstream_model: str, sink: Sink,
                       outcome: Outcome) -> None:
        provider = provider_for(cred.kind)
        upstream = codec(provider.format)
        passthrough = plan.passes_through(provider.format)
        body = self._upstream_body(plan, upstream, passthrough, upstream_model, cred.kind)
        upstream_stream = plan.stream or getattr(provider, "stream_only", False) \
            or cred.stream_only  # e.g. a ChatGPT (Codex OAuth) account
        wire = provider.build_request(body, cred, upstream_model, upstream_stream)
        forward = getattr(provider, "with_client_headers", None)
        if forward is not None:
            wire = forward(wire, plan.client_headers)
        options = _decode_options(upstream, plan, passthrough)
        if not upstream_stream:
            response = await self._send(provider, wire, cred, sink, None)
            self._plain_answer(plan, upstream, passthrough, response, outcome, options)
            return
        relay = _Relay(plan, upstream, passthrough, sink, options, cred)
        try:
            await self._send(provider, wire, cred, sink, relay.feed)
        except ProxyError as err:
            if relay.abort is not None:
                raise relay.abort from err  # an in-stream error before any output: fail over
            if not sink.started:
                raise
            await _maybe(relay.fail(err))
            outcome.stream_error = err
            outcome.usage = relay.usage
            return
        await _maybe(relay.close())
        if relay.abort is not None:
            raise relay.abort
        outcome.usage = relay.usage
        outcome.stream_error = relay.stream_error
        if not plan.stream:
            outcome.body = plan.client.encode_response(relay.collected(), plan.ctx)

    def _upstream_body(self, plan: _Plan, upstream: Any, passthrough: bool,
                       upstream_model: str, kind: str) -> Mapping[str, Any]:
        if not passthrough:
            request = _fit_to_model(plan.request, upstream_model, kind)
            return upstream.encode_request(request, model=upstream_model)
        body = dict(plan.body)
        if plan.client.format == "openai_chat" and plan.stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        return body

    async def _send(self, provider: Any, wire: WireRequest, cred: Credential, sink: Sink,
                    on_chunk: Callable[[bytes], Any] | None) -> UpstreamResponse:
        timeouts = self.runtime.config.timeouts
        call = self.transport.start(wire, connect_timeout=timeouts.connect,
                                    first_byte_timeout=timeouts.first_byte,
                                    idle_timeout=timeouts.idle, on_chunk=on_chunk,
                                    proxy_url=cred.proxy_url or None)
        sink.watch(call)
        try:
            response = await call.result()
        finally:
            sink.watch(None)
        if not response.ok:
            raise provider.classify_error(response.status, response.headers, response.body)
        return response

    def _plain_answer(self, plan: _Plan, upstream: Any, passthrough: bool,
                      response: UpstreamResponse, outcome: Outcome,
                      options: Mapping[str, Any]) -> None:
        # An answer passed through is only checked and read for usage where the codec can.
        watch = getattr(upstream, "watch_response", None) if passthrough else None
        try:
            body = jsontext.loads(response.body)
            if watch is not None:
                decoded, outcome.usage = None, watch(body)
            else:
                decoded = upstream.decode_response(body, **options)
                outcome.usage = decoded.usage
        except ProxyError:
            raise
        except Exception as exc:  # any shape the codec cannot read: the upstream's fault
            raise ProxyError(ErrorKind.UPSTREAM_ERROR, "The upstream returned a malformed "
                             "response.", status=502) from exc
        if passthrough and isinstance(body, dict):
            for key in ("model", "modelVersion"):  # Gemini's answers name it modelVersion
                if key in body:
                    body[key] = plan.asked
            outcome.body = body
        else:
            assert decoded is not None  # watched answers are dicts, passed through above
            outcome.body = plan.client.encode_response(decoded, plan.ctx)

    # -- token counting -----------------------------------------------------------------------

    async def count_tokens(self, client_format: str, request: ir.Request,
                           client_headers: Mapping[str, str] | None = None) -> int:
        """Input tokens for ``request``: the upstream's own count where it has an endpoint,
        else a local estimate (always > 0).  ``client_headers`` as for `generate`."""
        base, _ = split_model_suffix(request.model)
        candidates = self.runtime.registry.resolve(base)
        picked = self.runtime.pool.pick(base, candidates, self.clock())
        if picked is None:
            return estimate_tokens(request)
        cred, upstream_model = picked
        provider = provider_for(cred.kind)
        upstream = codec(provider.format)
        encode = getattr(upstream, "encode_count_tokens_request", None)
        if encode is None:
            return estimate_tokens(request)
        wire = provider.count_tokens_request(encode(request, model=upstream_model), cred,
                                             upstream_model)
        if wire is None:
            return estimate_tokens(request)
        forward = getattr(provider, "with_client_headers", None)
        if forward is not None:
            wire = forward(wire, client_headers or {})
        try:
            response = await self._send(provider, wire, cred, _NullSink(), None)
        except ProxyError as err:
            raise _scrub(err, cred) from err.__cause__
        try:
            return int(upstream.decode_count_tokens_response(json.loads(response.body)))
        except Exception as exc:
            raise ProxyError(ErrorKind.UPSTREAM_ERROR, "The upstream returned a malformed "
                             "token count.", status=502) from exc


def _fit_to_model(request: ir.Request, upstream_model: str, kind: str) -> ir.Request:
    """``request`` with its reasoning made acceptable to a catalogued upstream model: a level it
    lacks, a budget out of its range or a level for a budget-only model is a 400 upstream
    (reference §5.4).  Unknown models get the request as it is."""
    info = find_model(upstream_model, kind)
    thinking = info.thinking if info is not None else None
    if request.reasoning is None or thinking is None:
        return request
    fitted = fit_reasoning(request.reasoning, thinking.levels, thinking.min_budget,
                           thinking.max_budget)
    return request if fitted == request.reasoning else replace(request, reasoning=fitted)


def _scrub(err: ProxyError, cred: Credential) -> ProxyError:
    """``err`` with the credential's secrets masked: an upstream's error text may echo the key
    or headers it was sent (reliability catalogue U8), and the message reaches logs and the
    client."""
    password = urlsplit(cred.proxy_url).password if cred.proxy_url else None
    message = err.message
    for secret in (cred.api_key, password, *cred.headers.values()):
        if secret and len(secret) >= 8 and secret in message:
            message = message.replace(secret, "[redacted]")
    return err if message == err.message else replace(err, message=message)


def _decode_options(upstream: Any, plan: _Plan, passthrough: bool) -> dict[str, Any]:
    """Extra decoder arguments an upstream codec needs from the request it was sent: Gemini
    restores tool names it had to sanitise (its `tool_name_map`)."""
    name_map = getattr(upstream, "tool_name_map", None)
    if name_map is None or passthrough:
        return {}
    return {"tool_names": name_map(plan.request)}


class _NullSink:
    started = False

    def send_events(self, events: list[sse.Event]) -> None:
        raise AssertionError("count_tokens does not stream")

    def watch(self, call: UpstreamCall | None) -> None:
        return None


def with_model(data: str, old: str, new: str, key: str = "model") -> str:
    """One passed-through event's JSON text with the model name ``old`` it gives replaced by
    ``new``, the name the client asked for (as translated answers and whole passed-through
    answers carry).  The field is spliced where it is written in one of the usual two ways;
    only otherwise is the event parsed and written again.  The model is the chunk's own field
    (Chat; Gemini's ``key`` is ``modelVersion``), ``message.model`` (Claude ``message_start``)
    or ``response.model`` (Responses); none of those events has a nested object that could hold
    the same pair first, and inside a JSON string every quote is escaped, so the first match is
    the field."""
    for field_text, replacement in _model_fields(old, new, key):
        at = data.find(field_text)
        if at >= 0:
            return f"{data[:at]}{replacement}{data[at + len(field_text):]}"
    obj = json.loads(data)
    for holder in (obj, obj.get("message"), obj.get("response")):
        if isinstance(holder, dict) and holder.get(key) == old:
            holder[key] = new
            break
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _model_fields(old: str, new: str, key: str) -> tuple[tuple[str, str], ...]:
    """(field as written, its replacement), compact and spaced; every event of a stream asks."""
    old_text, new_text = json.dumps(old, ensure_ascii=False), json.dumps(new, ensure_ascii=False)
    return tuple((f'"{key}"{colon}{old_text}', f'"{key}"{colon}{new_text}')
                 for colon in (":", ": "))


class _Relay:
    """Upstream stream bytes → SSE events → IR events → client wire events (or an aggregate)."""

    def __init__(self, plan: _Plan, upstream: Any, passthrough: bool, sink: Sink,
                 options: Mapping[str, Any], cred: Credential) -> None:
        self.plan, self.passthrough, self.sink, self.cred = plan, passthrough, sink, cred
        self.parser = sse.Parser()
        # A stream forwarded as it came is only watched (opening, usage, errors, its end) where
        # the codec can; decoding all of it cost a tenth of a passthrough stream's CPU.
        watcher = getattr(upstream, "StreamWatcher", None) if passthrough and plan.stream \
            else None
        self._watching = watcher is not None
        self.decoder = watcher() if watcher is not None else upstream.StreamDecoder(**options)
        # Passthrough: made only if an error has to be rendered (it needs the IR request).
        self.encoder = plan.client.stream_encoder(plan.ctx) if plan.stream and not passthrough \
            else None
        self.collector = None if plan.stream else aggregate.Collector(
            response_id=plan.response_id, model=plan.asked)
        self.usage = ir.Usage()
        self.abort: ProxyError | None = None
        self.stream_error: ProxyError | None = None
        self.finished = False
        # Passthrough: the upstream's opening event, replayed into the (otherwise unused) encoder
        # before it renders an in-stream error, so it does not open a second response.
        self._opening: ir.MessageStart | None = None
        self._want_usage = bool((plan.body.get("stream_options") or {}).get("include_usage")) \
            if plan.client.format == "openai_chat" and isinstance(plan.body, Mapping) else False
        # The usage-only chunk exists because we asked for it; the client did not.
        self._drop_usage_only = plan.client.format == "openai_chat" and not self._want_usage

    def feed(self, chunk: bytes) -> Awaitable[None] | None:
        """Transport callback: never raises (an error is kept and the call aborted)."""
        if self.finished or self.abort is not None:
            return None
        try:
            return self._events(self.parser.feed(chunk), ending=False)
        except ProxyError as err:
            return self._fail_inline(err)

    def close(self) -> Awaitable[None] | None:
        """Upstream finished cleanly: flush the decoder (a missing terminal event is an error)."""
        if self.finished or self.abort is not None:
            return None
        try:
            return self._events(self.parser.finish(), ending=True)
        except ProxyError as err:
            return self._fail_inline(err)

    def fail(self, err: ProxyError) -> Awaitable[None] | None:
        """The upstream connection failed after output started."""
        return self._emit([ir.StreamError(err)]) if not self.finished else None

    def collected(self) -> ir.Response:
        assert self.collector is not None
        return self.collector.result()

    def _fail_inline(self, err: ProxyError) -> Awaitable[None] | None:
        if not self.sink.started:
            self.abort = err
            return None
        return self._emit([ir.StreamError(err)])

    def _events(self, events: list[sse.Event], ending: bool) -> Awaitable[None] | None:
        decoded: list[ir.StreamEvent] = []
        raw: list[sse.Event] = []
        decoder, passthrough, asked = self.decoder, self.passthrough, self.plan.asked
        failed = False
        for event in events:
            out = decoder.feed(event)
            # A watched content event decodes to nothing and is forwarded: no _forward call.
            if passthrough and (not out or self._forward(out)):
                seen = getattr(decoder, "model_seen", None)
                if seen is not None and seen != asked:
                    data = with_model(event.data, seen, asked,
                                      getattr(decoder, "model_key", "model"))
                    event = sse.Event(data, event.event, event.id, event.retry)
                raw.append(event)
            if out:
                decoded += out
                if any(isinstance(e, ir.StreamError) for e in out):
                    failed = True  # the stream is over: whatever the upstream sent after it is
                    break          # not passed on (a terminator there would read as a clean end)
        if ending and not failed:
            decoded += self.decoder.finish()
        for i, event in enumerate(decoded):
            if isinstance(event, ir.UsageUpdate):
                self.usage = self.usage.merged(event.usage)
            elif isinstance(event, ir.StreamError):  # its text came from the upstream
                decoded[i] = ir.StreamError(_scrub(event.error, self.cred))
        return self._dispatch(decoded, raw, ending)

    def _forward(self, decoded: list[ir.StreamEvent]) -> bool:
        """Passthrough: whether an upstream event, decoded as ``decoded``, goes to the client as
        it came.  An error is re-rendered instead, and an OpenAI usage-only chunk the client did
        not ask for (we did, for usage) is dropped.  Notes the opening event.  One plain loop:
        this runs for every upstream event."""
        usage_only, opening = bool(decoded), None
        for event in decoded:
            if isinstance(event, ir.StreamError):
                return False
            if not isinstance(event, ir.UsageUpdate):
                usage_only = False
                if opening is None and isinstance(event, ir.MessageStart):
                    opening = event
        if self._opening is None:
            self._opening = opening
        if self._watching:  # a watcher emits nothing for content: it says what it saw
            usage_only = self.decoder.usage_only
        return not (usage_only and self._drop_usage_only)

    def _dispatch(self, decoded: list[ir.StreamEvent], raw: list[sse.Event],
                  ending: bool) -> Awaitable[None] | None:
        error = next((e for e in decoded if isinstance(e, ir.StreamError)), None) if decoded \
            else None
        if error is not None and not self.sink.started:
            self.abort = error.error
            return None
        if self.collector is not None:
            for event in decoded:
                self.collector.feed(event)
            return None
        if error is not None:
            self.stream_error = error.error
        if self.passthrough:
            # Upstream bytes go out as they came; only an error is re-rendered (never passed on).
            wire = raw + (self._encode([error]) if error is not None else [])
        else:
            wire = self._encode(decoded)  # the encoder renders a StreamError itself
        return self._emit_wire(wire, ending or error is not None)

    def _encode(self, decoded: list[ir.StreamEvent]) -> list[sse.Event]:
        if self.encoder is None:
            self.encoder = self.plan.client.stream_encoder(self.plan.ctx)
        if self.passthrough and self._opening is not None:
            self.encoder.feed(self._opening)  # the client has it already (as upstream bytes)
            self._opening = None
        out: list[sse.Event] = []
        for event in decoded:
            out += self.encoder.feed(event)
        return out

    def _emit(self, decoded: list[ir.StreamEvent]) -> Awaitable[None] | None:
        for event in decoded:
            if isinstance(event, ir.StreamError):
                self.stream_error = event.error
        if self.collector is not None:
            for event in decoded:
                self.collector.feed(event)
            return None
        return self._emit_wire(self._encode(decoded), True)

    def _emit_wire(self, wire: list[sse.Event], final: bool) -> Awaitable[None] | None:
        if final and self.encoder is not None and not self.passthrough:
            wire = wire + self.encoder.finish()
        if final:
            self.finished = True
        return self.sink.send_events(wire) if wire else None


async def _maybe(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value
