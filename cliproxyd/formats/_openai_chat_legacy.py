"""The legacy completions API (``POST /v1/completions``) served through chat.

Owns: ``prompt`` → one IR user message (`decode_legacy_request`), an IR response → a
``text_completion`` body (`encode_legacy_response`) and IR stream events → ``text_completion``
chunks ending in ``[DONE]`` (`LegacyStreamEncoder`).  What chat cannot do for this API (several
prompts, token arrays, ``n``/``best_of`` > 1, ``echo``, ``suffix``, ``logprobs``) is a 400.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cliproxyd.formats import ir
from cliproxyd.formats._openai_chat_common import (
    STOP_TO_FINISH,
    invalid,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    stop_sequences,
    usage_to_wire,
)
from cliproxyd.formats._openai_chat_stream import ChunkStream

logger = logging.getLogger(__name__)

_EXTRAS_KEYS = ("stream_options", "logit_bias")


def decode_legacy_request(body: Mapping[str, Any], *, model: str | None = None) -> ir.Request:
    """Legacy completions body → IR request with the prompt as one user message."""
    if not isinstance(body, ir.MAPPING):
        raise invalid("request body must be a JSON object")
    name = model if model is not None else body.get("model")
    if not isinstance(name, str) or not name:
        raise invalid("'model' is required and must be a string", "model")
    _reject_unsupported(body)
    extras = {k: body[k] for k in _EXTRAS_KEYS if body.get(k) is not None}
    if not isinstance(extras.get("stream_options", {}), ir.MAPPING):
        raise invalid("'stream_options' must be an object", "stream_options")
    return ir.Request(
        model=name, messages=(ir.Message("user", (ir.TextPart(_prompt(body.get("prompt"))),)),),
        max_output_tokens=opt_int(body, "max_tokens"),
        temperature=opt_number(body, "temperature"), top_p=opt_number(body, "top_p"),
        stop=stop_sequences(body.get("stop")), seed=opt_int(body, "seed"),
        presence_penalty=opt_number(body, "presence_penalty"),
        frequency_penalty=opt_number(body, "frequency_penalty"),
        stream=bool(opt_bool(body, "stream")), user=opt_str(body, "user"),
        extras=extras or ir.EMPTY)


def _prompt(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) == 1:
            return prompt[0]
        raise invalid("several prompts in one request are not supported", "prompt")
    if isinstance(prompt, list) and prompt:
        raise invalid("token-array prompts are not supported; send text", "prompt")
    raise invalid("'prompt' must be a non-empty string", "prompt")


def _reject_unsupported(body: Mapping[str, Any]) -> None:
    for key in ("n", "best_of"):
        value = opt_int(body, key)
        if value is not None and value != 1:
            raise invalid(f"'{key}' must be 1: only one choice per request is supported", key)
    if opt_bool(body, "echo"):
        raise invalid("'echo' is not supported", "echo")
    if opt_str(body, "suffix"):
        raise invalid("'suffix' (insertion) is not supported", "suffix")
    if body.get("logprobs") is not None:
        raise invalid("'logprobs' is not supported", "logprobs")


def _finish(reason: ir.StopReason) -> str:
    # text_completion knows stop, length and content_filter only.
    finish = STOP_TO_FINISH[reason]
    return "stop" if finish == "tool_calls" else finish


def encode_legacy_response(response: ir.Response, ctx: ir.EncodeContext) -> dict[str, Any]:
    """IR response → ``text_completion`` body (text parts only)."""
    text = "".join(p.text for p in response.parts
                   if isinstance(p, ir.TextPart) and p.extras.get("type") != "refusal")
    if any(isinstance(p, ir.ToolCallPart) for p in response.parts):
        logger.debug("tool calls have no legacy completions form; dropped")
    return {
        "id": response.id or ctx.response_id,
        "object": "text_completion",
        "created": ctx.created,
        "model": ctx.model,
        "choices": [{"text": text, "index": 0, "logprobs": None,
                     "finish_reason": _finish(response.stop_reason)}],
        "usage": usage_to_wire(response.usage),
    }


class LegacyStreamEncoder(ChunkStream):
    """IR stream events → ``text_completion`` chunks, the finish chunk, usage if asked, [DONE]."""

    def _first_delta(self) -> None:
        return None  # legacy streams have no role chunk

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**self._envelope("text_completion"), "choices": [
            {"text": delta.get("text", ""), "index": 0, "logprobs": None,
             "finish_reason": finish}]}

    def _delta(self, event: ir.StreamEvent) -> dict[str, Any] | None:
        if isinstance(event, ir.TextDelta) and event.text:
            return {"text": event.text}
        return None

    def _finish_reason(self, reason: ir.StopReason) -> str:
        return _finish(reason)
