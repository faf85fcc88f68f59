"""The OpenAI Chat Completions codec (``POST /v1/chat/completions``), plus the legacy
completions API (``POST /v1/completions``) mapped onto chat.

This module owns the non-streamed response mapping and is the public face of the codec: it
exports the `Codec` protocol names.  The work is split by concern into private siblings:

* `_openai_chat_common`  finish_reason and usage tables, error bodies, validation helpers;
* `_openai_chat_request` request bodies <-> IR (decode_request / encode_request);
* `_openai_chat_stream`  StreamDecoder / StreamEncoder (chunk sequence, ``[DONE]``) and the
                         passthrough StreamWatcher;
* `_openai_chat_legacy`  decode_legacy_request / encode_legacy_response / LegacyStreamEncoder.

Public API::

    decode_request(body, *, model=None) -> ir.Request        # 400 ProxyError for bad bodies
    decode_request_head(body, *, model=None) -> (model, stream)  # the same checks, for passthrough
    encode_request(request, *, model) -> dict                # upstream body; stream → include_usage
    decode_response(body) -> ir.Response                     # ProxyError if body is an error
    watch_response(body) -> ir.Usage                         # passthrough: checks, usage only
    encode_response(response, ctx) -> dict                   # "chat.completion"
    render_error(error) -> dict                              # {"error":{message,type,param,code}}
    StreamDecoder(); StreamEncoder(ctx)                      # feed(event) -> list; finish() -> list
    StreamWatcher()                                          # passthrough: opening, usage, end
    decode_legacy_request(body, *, model=None) -> ir.Request
    encode_legacy_response(response, ctx) -> dict            # "text_completion"
    LegacyStreamEncoder(ctx)

Pure: no I/O, no clock, no module-level mutable state, no Tornado.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir
from cliproxyd.formats._openai_chat_common import (
    FINISH_TO_STOP,
    STOP_TO_FINISH,
    data_url,
    error_from_wire,
    finish_from_stop,
    parse_data_url,
    render_error,
    stop_reason_from_finish,
    tool_call_extras,
    tool_call_to_wire,
    usage_from_wire,
    usage_to_wire,
)
from cliproxyd.formats._openai_chat_legacy import (
    LegacyStreamEncoder,
    decode_legacy_request,
    encode_legacy_response,
)
from cliproxyd.formats._openai_chat_request import (
    decode_request,
    decode_request_head,
    encode_request,
)
from cliproxyd.formats._openai_chat_stream import (
    StreamDecoder,
    StreamEncoder,
    StreamWatcher,
    stop_reason_for,
)

__all__ = [
    "decode_request", "decode_request_head", "encode_request", "decode_response", "watch_response", "encode_response",
    "render_error",
    "StreamDecoder", "StreamEncoder", "StreamWatcher", "decode_legacy_request",
    "encode_legacy_response",
    "LegacyStreamEncoder", "FINISH_TO_STOP", "STOP_TO_FINISH", "stop_reason_from_finish",
    "finish_from_stop", "usage_from_wire", "usage_to_wire",
]

logger = logging.getLogger(__name__)

# Response-level fields with no IR meaning, kept in Response.extras under their wire names.
_RESPONSE_EXTRAS = ("system_fingerprint", "service_tier")


# =============================================================================================
# decode


def _check_response(body: Any) -> list:
    """The choices of an upstream ``chat.completion`` body; raises the error a body is or
    carries (some compatible providers answer 200 with one)."""
    if not isinstance(body, ir.MAPPING):
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, "malformed upstream response")
    if body.get("error"):
        raise error_from_wire(body["error"])
    if body.get("object") == "error":  # vLLM-style bare error object
        raise error_from_wire(body)
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, "upstream response has no choices")
    return choices


def watch_response(body: Mapping[str, Any]) -> ir.Usage:
    """Passthrough: the usage of an upstream ``chat.completion`` body that goes to the client as
    it came, checked as `decode_response` checks it (the same errors raised), not decoded."""
    _check_response(body)
    return usage_from_wire(body.get("usage")) or ir.Usage()


def decode_response(body: Mapping[str, Any]) -> ir.Response:
    """Upstream ``chat.completion`` body → IR response (first choice).

    A body carrying ``error`` (some compatible providers answer 200 with one) raises that error.
    """
    choices = _check_response(body)
    choice = next((c for c in choices if isinstance(c, ir.MAPPING) and c.get("index") in (0, None)),
                  {})
    message = choice.get("message") if isinstance(choice.get("message"), ir.MAPPING) else {}
    parts = _message_parts(message)
    finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    had_calls = any(isinstance(p, ir.ToolCallPart) for p in parts)
    extras = {k: body[k] for k in _RESPONSE_EXTRAS if body.get(k) is not None}
    for key in ("annotations",):
        if message.get(key):
            extras[key] = message[key]
    rid, model = body.get("id"), body.get("model")
    return ir.Response(
        id=rid if isinstance(rid, str) else "", model=model if isinstance(model, str) else "",
        parts=parts, stop_reason=stop_reason_for(finish, had_calls), native_stop_reason=finish,
        usage=usage_from_wire(body.get("usage")) or ir.Usage(), extras=extras or ir.EMPTY)


def _message_parts(message: Mapping[str, Any]) -> tuple[ir.Part, ...]:
    parts: list[ir.Part] = []
    # DeepSeek/vLLM/Kimi say reasoning_content; OpenRouter and others say reasoning.
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ir.ThinkingPart(reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(ir.TextPart(content))
    elif isinstance(content, list):
        parts.extend(ir.TextPart(p["text"]) for p in content
                     if isinstance(p, ir.MAPPING) and isinstance(p.get("text"), str))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(ir.TextPart(message["refusal"], {"type": "refusal"}))
    parts.extend(_images(message.get("images")))
    parts.extend(_response_calls(message))
    return tuple(parts)


def _images(images: Any) -> list[ir.ImagePart]:
    """Non-standard ``message.images`` (image-generating models behind compatible APIs)."""
    out = []
    for image in images if isinstance(images, list) else ():
        spec = image.get("image_url") if isinstance(image, ir.MAPPING) else None
        url = spec.get("url") if isinstance(spec, ir.MAPPING) else None
        if isinstance(url, str) and url.startswith("data:"):
            try:
                data, mime = parse_data_url(url, "images")
            except ProxyError:
                logger.debug("skipping an undecodable image in an upstream response")
                continue
            out.append(ir.ImagePart(data=data, mime_type=mime))
        elif isinstance(url, str):
            out.append(ir.ImagePart(url=url))
    return out


def _response_calls(message: Mapping[str, Any]) -> list[ir.ToolCallPart]:
    calls = message.get("tool_calls")
    out = []
    for k, call in enumerate(calls if isinstance(calls, list) else ()):
        fn = call.get("function") if isinstance(call, ir.MAPPING) else None
        if not isinstance(fn, ir.MAPPING):
            continue
        cid, args = call.get("id"), fn.get("arguments")
        out.append(ir.ToolCallPart(
            id=cid if isinstance(cid, str) and cid else f"call_{k}",
            name=fn.get("name") if isinstance(fn.get("name"), str) else "",
            arguments=args if isinstance(args, str) and args else "{}",
            extras=tool_call_extras(call)))
    legacy = message.get("function_call")
    if not out and isinstance(legacy, ir.MAPPING) and isinstance(legacy.get("name"), str):
        args = legacy.get("arguments")
        out.append(ir.ToolCallPart(id="call_0", name=legacy["name"],
                                   arguments=args if isinstance(args, str) and args else "{}"))
    return out


# =============================================================================================
# encode


def encode_response(response: ir.Response, ctx: ir.EncodeContext) -> dict[str, Any]:
    """IR response → ``chat.completion`` body for a Chat client."""
    calls = [p for p in response.parts if isinstance(p, ir.ToolCallPart)]
    body: dict[str, Any] = {
        "id": response.id or ctx.response_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{
            "index": 0,
            "message": _encode_message(response, calls),
            "logprobs": None,
            "finish_reason": finish_from_stop(response.stop_reason, had_tool_calls=bool(calls)),
        }],
        "usage": usage_to_wire(response.usage),
    }
    for key in _RESPONSE_EXTRAS:
        if key in response.extras:
            body[key] = response.extras[key]
    return body


def _encode_message(response: ir.Response, calls: list[ir.ToolCallPart]) -> dict[str, Any]:
    texts = [p for p in response.parts if isinstance(p, ir.TextPart)]
    content = "".join(p.text for p in texts if p.extras.get("type") != "refusal")
    refusal = "".join(p.text for p in texts if p.extras.get("type") == "refusal")
    thinking = "".join(p.text for p in response.parts if isinstance(p, ir.ThinkingPart))
    message: dict[str, Any] = {"role": "assistant", "content": content or None,
                               "refusal": refusal or None}
    if thinking:
        message["reasoning_content"] = thinking
    if calls:
        message["tool_calls"] = [tool_call_to_wire(c) for c in calls]
    images = [p for p in response.parts if isinstance(p, ir.ImagePart)]
    if images:  # non-standard, as CLIProxyAPI emits for image-generating models (§6.3)
        message["images"] = [
            {"type": "image_url", "index": i,
             "image_url": {"url": p.url if p.data is None else data_url(p.data, p.mime_type)}}
            for i, p in enumerate(images)]
    if "annotations" in response.extras:
        message["annotations"] = response.extras["annotations"]
    return message
