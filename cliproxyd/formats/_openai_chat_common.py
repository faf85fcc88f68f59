"""Tables and small helpers shared by the OpenAI Chat Completions codec modules.

Owns: the finish_reason <-> `StopReason` table, the usage <-> `Usage` mapping, the error body
(``{"error":{message,type,param,code}}``) in both directions, data-URL helpers and the input
validation helpers that turn bad client bodies into `ProxyError` (invalid_request).
Pure: no I/O, no clock, no module-level mutable state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from cliproxyd.errors import ErrorKind, ProxyError, kind_for_status, openai_type_for
from cliproxyd.formats import ir

# ---------------------------------------------------------------------------------------------
# Finish reasons (reference §6.1).  OpenAI does not tell a stop sequence from a natural stop.

FINISH_TO_STOP: Mapping[str, ir.StopReason] = {
    "stop": ir.StopReason.END_TURN,
    "length": ir.StopReason.MAX_TOKENS,
    "tool_calls": ir.StopReason.TOOL_USE,
    "function_call": ir.StopReason.TOOL_USE,
    "content_filter": ir.StopReason.CONTENT_FILTER,
}

STOP_TO_FINISH: Mapping[ir.StopReason, str] = {
    ir.StopReason.END_TURN: "stop",
    ir.StopReason.STOP_SEQUENCE: "stop",
    ir.StopReason.MAX_TOKENS: "length",
    ir.StopReason.TOOL_USE: "tool_calls",
    ir.StopReason.CONTENT_FILTER: "content_filter",
    # Chat has no refusal finish reason; content_filter is the closest documented value.
    ir.StopReason.REFUSAL: "content_filter",
    ir.StopReason.PAUSE_TURN: "stop",
    ir.StopReason.ERROR: "stop",
}


def stop_reason_from_finish(finish: str | None) -> ir.StopReason:
    """IR stop reason for an OpenAI ``finish_reason`` (unknown or missing → end_turn)."""
    return FINISH_TO_STOP.get(finish or "stop", ir.StopReason.END_TURN)


def finish_from_stop(reason: ir.StopReason, *, had_tool_calls: bool = False) -> str:
    """OpenAI ``finish_reason`` for an IR stop reason.

    A natural end after tool calls is ``tool_calls``: Gemini reports STOP with function calls and
    OpenAI clients loop on ``finish_reason == "tool_calls"``.
    """
    if had_tool_calls and reason in (ir.StopReason.END_TURN, ir.StopReason.STOP_SEQUENCE):
        return "tool_calls"
    return STOP_TO_FINISH[reason]


# ---------------------------------------------------------------------------------------------
# Usage (IR follows OpenAI's meaning, so this is a rename, not a recomputation)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from_wire(usage: Any) -> ir.Usage | None:
    """IR usage for an OpenAI ``usage`` object; None when absent or not an object."""
    if not isinstance(usage, ir.MAPPING):
        return None
    prompt = usage.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, ir.MAPPING) else {}
    completion = usage.get("completion_tokens_details")
    completion = completion if isinstance(completion, ir.MAPPING) else {}
    return ir.Usage(
        input_tokens=_int_or_none(usage.get("prompt_tokens")),
        output_tokens=_int_or_none(usage.get("completion_tokens")),
        cached_input_tokens=_int_or_none(prompt.get("cached_tokens")),
        cache_creation_tokens=_int_or_none(prompt.get("cache_write_tokens")),
        reasoning_tokens=_int_or_none(completion.get("reasoning_tokens")),
        total_tokens=_int_or_none(usage.get("total_tokens")),
    )


def usage_to_wire(usage: ir.Usage) -> dict[str, Any]:
    """OpenAI ``usage`` object for IR usage (missing counts are reported as 0)."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens or 0,
        "completion_tokens": usage.output_tokens or 0,
        "total_tokens": usage.total,
    }
    prompt: dict[str, int] = {}
    if usage.cached_input_tokens is not None:
        prompt["cached_tokens"] = usage.cached_input_tokens
    if usage.cache_creation_tokens is not None:
        prompt["cache_write_tokens"] = usage.cache_creation_tokens
    if prompt:
        out["prompt_tokens_details"] = prompt
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


# ---------------------------------------------------------------------------------------------
# Tool calls


def tool_call_extras(call: Mapping[str, Any]) -> Mapping[str, Any]:
    """Extras of a wire tool call: Gemini's OpenAI endpoint puts the call's thought signature in
    ``extra_content.google.thought_signature`` and needs it back on the next turn."""
    extra = call.get("extra_content")
    return {"extra_content": extra} if isinstance(extra, ir.MAPPING) else ir.EMPTY


def openai_user(user: str) -> str:
    """``user`` for an OpenAI-style upstream: a stable end-user id of at most 64 characters.
    Claude Code's ``metadata.user_id`` runs to ~160 and compatible servers refuse long ones
    (OpenRouter: 128), so a longer id is replaced by its hash, which identifies the user alike."""
    if len(user) <= 64:
        return user
    return "user_" + hashlib.sha256(user.encode("utf-8")).hexdigest()[:48]


def tool_call_to_wire(part: ir.ToolCallPart) -> dict[str, Any]:
    """A ``tool_calls`` entry for an IR tool call."""
    out: dict[str, Any] = {"id": part.id, "type": "function",
                           "function": {"name": part.name, "arguments": part.arguments}}
    if isinstance(part.extras.get("extra_content"), ir.MAPPING):
        out["extra_content"] = part.extras["extra_content"]
    return out


# ---------------------------------------------------------------------------------------------
# Errors


def render_error(error: ProxyError) -> dict[str, Any]:
    """``{"error":{"message","type","param","code"}}`` for an error (status is error.status)."""
    code = error.code
    if code is None and error.kind is ErrorKind.MODEL_NOT_FOUND:
        code = "model_not_found"
    return {"error": {
        "message": error.message,
        "type": openai_type_for(error),
        "param": error.param,
        "code": code,
    }}


# OpenAI error.type values (and common compat-provider variants) → our kind.
_TYPE_KIND = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found": ErrorKind.NOT_FOUND,
    "not_found_error": ErrorKind.NOT_FOUND,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "insufficient_quota": ErrorKind.RATE_LIMITED,
    "server_error": ErrorKind.UPSTREAM_ERROR,
    "api_error": ErrorKind.UPSTREAM_ERROR,
    "overloaded_error": ErrorKind.UPSTREAM_UNAVAILABLE,
    "timeout_error": ErrorKind.UPSTREAM_TIMEOUT,
}


def error_from_wire(body: Any) -> ProxyError:
    """A `ProxyError` for an OpenAI-style error object found in an upstream body or stream.

    ``body`` is the value of the ``error`` key (object or bare string).  The kind comes from a
    numeric ``code``/``status`` when one is present, else from ``type``; default upstream_error.
    """
    if not isinstance(body, ir.MAPPING):
        return ProxyError(ErrorKind.UPSTREAM_ERROR, str(body) if body else "upstream error")
    message = body.get("message")
    message = message if isinstance(message, str) and message else "upstream error"
    code, err_type = body.get("code"), body.get("type")
    status = code if isinstance(code, int) and 400 <= code < 600 else body.get("status")
    if isinstance(status, int) and 400 <= status < 600:
        return ProxyError(kind_for_status(status), message, status=status)
    kind = _TYPE_KIND.get(err_type if isinstance(err_type, str) else "", ErrorKind.UPSTREAM_ERROR)
    return ProxyError(kind, message, code=code if isinstance(code, str) else None)


# ---------------------------------------------------------------------------------------------
# Validation helpers for client bodies


def invalid(message: str, param: str | None = None) -> ProxyError:
    """An invalid_request error (400) naming the offending field."""
    return ProxyError(ErrorKind.INVALID_REQUEST, message, param=param)


def opt_number(body: Mapping[str, Any], key: str) -> float | None:
    """``body[key]`` as a number, None when absent/null; 400 for any other type."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(f"'{key}' must be a number", key)
    return value


def opt_int(body: Mapping[str, Any], key: str) -> int | None:
    """``body[key]`` as an integer (a float with no fraction is accepted)."""
    value = opt_number(body, key)
    if value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            raise invalid(f"'{key}' must be an integer", key)
        value = int(value)
    return value


def opt_str(body: Mapping[str, Any], key: str, param: str | None = None) -> str | None:
    """``body[key]`` as a string, None when absent/null."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"'{key}' must be a string", param or key)


def opt_bool(body: Mapping[str, Any], key: str) -> bool | None:
    """``body[key]`` as a boolean, None when absent/null."""
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise invalid(f"'{key}' must be a boolean", key)


def stop_sequences(value: Any, param: str = "stop") -> tuple[str, ...]:
    """``stop`` as a tuple: a string, a list of strings, or null."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise invalid("'stop' must be a string or a list of strings", param)


# ---------------------------------------------------------------------------------------------
# data: URLs


def parse_data_url(url: str, param: str) -> tuple[bytes, str | None]:
    """``data:<mime>;base64,<b64>`` → (bytes, mime).  400 for a malformed URL."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:"):
        raise invalid("malformed data URL", param)
    meta = head[5:].split(";")
    mime = meta[0] or None
    if "base64" not in meta[1:]:
        raise invalid("only base64 data URLs are supported", param)
    return decode_b64(payload, param), mime


def decode_b64(payload: str, param: str) -> bytes:
    """Strict base64 decoding; 400 on bad input."""
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("invalid base64 data", param) from None


def data_url(data: bytes, mime: str | None) -> str:
    """A base64 data URL for inline bytes."""
    return f"data:{mime or 'application/octet-stream'};base64,{base64.b64encode(data).decode()}"
