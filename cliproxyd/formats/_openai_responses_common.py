"""Shared pieces of the OpenAI Responses codec: the stop-reason and usage tables, output items
built from IR parts (and back), and the response object skeleton that echoes the request.

Used by `openai_responses` (request/response bodies) and `_openai_responses_stream` (SSE).
Pure: no I/O, no clock, no module-level mutable state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any, Iterable

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError, openai_type_for
from cliproxyd.formats import ir
from cliproxyd.formats import reasoning as levels

logger = logging.getLogger("cliproxyd.formats.openai_responses")

# ---------------------------------------------------------------------------------------------
# Stop reasons: Responses `status` + `incomplete_details.reason` <-> IR StopReason (one table).

# (status, incomplete reason) -> IR stop reason.  A completed response whose output holds a
# function_call is TOOL_USE (decided by `stop_reason_from_wire`).
_STATUS_TO_STOP = {
    ("completed", None): ir.StopReason.END_TURN,
    ("incomplete", "max_output_tokens"): ir.StopReason.MAX_TOKENS,
    ("incomplete", "content_filter"): ir.StopReason.CONTENT_FILTER,
    ("failed", None): ir.StopReason.ERROR,
    ("cancelled", None): ir.StopReason.ERROR,
}

# IR stop reason -> (status, incomplete reason).
_STOP_TO_STATUS = {
    ir.StopReason.END_TURN: ("completed", None),
    ir.StopReason.STOP_SEQUENCE: ("completed", None),
    ir.StopReason.TOOL_USE: ("completed", None),
    ir.StopReason.PAUSE_TURN: ("completed", None),
    ir.StopReason.MAX_TOKENS: ("incomplete", "max_output_tokens"),
    ir.StopReason.CONTENT_FILTER: ("incomplete", "content_filter"),
    ir.StopReason.REFUSAL: ("incomplete", "content_filter"),
    ir.StopReason.ERROR: ("failed", None),
}


def stop_reason_from_wire(status: str | None, reason: str | None,
                          has_tool_call: bool) -> tuple[ir.StopReason, str]:
    """IR stop reason and the native word for a Responses ``status``/incomplete reason."""
    status = status if isinstance(status, str) and status else "completed"
    reason = reason if isinstance(reason, str) else None
    if status == "completed":
        native = "completed"
        stop = ir.StopReason.TOOL_USE if has_tool_call else ir.StopReason.END_TURN
        return stop, native
    if status == "incomplete":
        # An unknown incomplete reason still means "cut short"; max tokens is the closest.
        stop = _STATUS_TO_STOP.get((status, reason), ir.StopReason.MAX_TOKENS)
        return stop, reason or "incomplete"
    return _STATUS_TO_STOP.get((status, None), ir.StopReason.END_TURN), status


def status_for_stop(stop: ir.StopReason) -> tuple[str, str | None]:
    """Responses ``(status, incomplete_details.reason)`` for an IR stop reason."""
    return _STOP_TO_STATUS.get(stop, ("completed", None))


# ---------------------------------------------------------------------------------------------
# Usage


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from_wire(raw: Any) -> ir.Usage:
    """IR usage from a Responses ``usage`` object (already OpenAI meaning: no conversion)."""
    if not isinstance(raw, ir.MAPPING):
        return ir.Usage()
    inp = raw.get("input_tokens_details")
    out = raw.get("output_tokens_details")
    inp = inp if isinstance(inp, ir.MAPPING) else {}
    out = out if isinstance(out, ir.MAPPING) else {}
    return ir.Usage(
        input_tokens=_int(raw.get("input_tokens")),
        output_tokens=_int(raw.get("output_tokens")),
        cached_input_tokens=_int(inp.get("cached_tokens")),
        cache_creation_tokens=_int(inp.get("cache_write_tokens")),
        reasoning_tokens=_int(out.get("reasoning_tokens")),
        total_tokens=_int(raw.get("total_tokens")),
    )


def usage_to_wire(usage: ir.Usage) -> dict[str, Any]:
    """A Responses ``usage`` object; the details objects are always present (SDK requires them)."""
    return {
        "input_tokens": usage.input_tokens or 0,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens or 0,
            "cache_write_tokens": usage.cache_creation_tokens or 0,
        },
        "output_tokens": usage.output_tokens or 0,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total,
    }


# ---------------------------------------------------------------------------------------------
# Errors


def error_code_for(err: ProxyError) -> str:
    """The ``response.error.code`` (an enumerated set in the API) that best fits ``err``."""
    if err.kind is ErrorKind.RATE_LIMITED:
        return "rate_limit_exceeded"
    if err.kind is ErrorKind.INVALID_REQUEST:
        return "invalid_prompt"
    return "server_error"


_CODE_TO_KIND = {
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "insufficient_quota": ErrorKind.RATE_LIMITED,
    "usage_limit_reached": ErrorKind.RATE_LIMITED,
    "invalid_prompt": ErrorKind.INVALID_REQUEST,
    "context_length_exceeded": ErrorKind.INVALID_REQUEST,
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "server_is_overloaded": ErrorKind.UPSTREAM_UNAVAILABLE,
    "slow_down": ErrorKind.UPSTREAM_UNAVAILABLE,
}


def error_from_wire(raw: Any, fallback: str) -> ProxyError:
    """A ProxyError for an upstream error object (``code``/``type``/``message``/``param``)."""
    raw = raw if isinstance(raw, ir.MAPPING) else {}
    code = raw.get("code") if isinstance(raw.get("code"), str) else None
    etype = raw.get("type") if isinstance(raw.get("type"), str) else None
    kind = _CODE_TO_KIND.get(code or "", _CODE_TO_KIND.get(etype or "", ErrorKind.UPSTREAM_ERROR))
    message = raw.get("message") if isinstance(raw.get("message"), str) else fallback
    param = raw.get("param") if isinstance(raw.get("param"), str) else None
    return ProxyError(kind, message or fallback, code=code, param=param)


def render_error(error: ProxyError) -> dict[str, Any]:
    """The OpenAI error body ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {
        "message": error.message,
        "type": openai_type_for(error),
        "param": error.param,
        "code": error.code,
    }}


# ---------------------------------------------------------------------------------------------
# Data URLs and small helpers


def data_url(data: bytes, mime_type: str | None) -> str:
    """``data:<mime>;base64,<payload>``."""
    return f"data:{mime_type or 'application/octet-stream'};base64,{base64.b64encode(data).decode()}"


def parse_data_url(url: str, param: str) -> tuple[bytes, str | None] | None:
    """(bytes, mime) for a base64 ``data:`` URL, None for any other URL; bad base64 is a 400."""
    if not url.startswith("data:"):
        return None
    head, sep, payload = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    try:
        return base64.b64decode(payload, validate=True), head[: -len(";base64")] or None
    except (binascii.Error, ValueError):
        raise ProxyError(ErrorKind.INVALID_REQUEST, f"invalid base64 data in {param}",
                         param=param) from None


def dumps(obj: Any) -> str:
    """Compact JSON as the IR convention asks."""
    return jsontext.dumps(obj)


def looks_like_openai_encrypted(blob: str | None) -> bool:
    """OpenAI ``encrypted_content`` is a Fernet token (``gAAAAA`` prefix); others' signatures
    (Anthropic, Gemini) would be rejected by a Responses upstream."""
    return isinstance(blob, str) and blob.startswith("gAAAAA")


def reasoning_item_id(part: ir.ThinkingPart | ir.RedactedThinkingPart, blob: str) -> str:
    """The part's own ``rs_`` id, else one derived from its content (stable, never random)."""
    own = part.extras.get("id")
    if isinstance(own, str) and own.startswith("rs_"):
        return own
    return "rs_" + hashlib.sha256(blob.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# Output items (response side) from IR parts, and IR parts from output items


def output_text_part(part: ir.TextPart) -> dict[str, Any]:
    """An ``output_text`` content part (annotations kept from a Responses source)."""
    annotations = part.extras.get("annotations")
    return {"type": "output_text", "text": part.text,
            "annotations": list(annotations) if isinstance(annotations, list) else [],
            "logprobs": []}


def reasoning_output_item(item_id: str, summaries: Iterable[str],
                          encrypted: str | None) -> dict[str, Any]:
    """A ``reasoning`` output item."""
    item: dict[str, Any] = {"id": item_id, "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": t} for t in summaries]}
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def function_call_item(item_id: str, call_id: str, name: str, arguments: str,
                       status: str = "completed") -> dict[str, Any]:
    """A ``function_call`` output item."""
    return {"id": item_id, "type": "function_call", "status": status,
            "arguments": arguments, "call_id": call_id, "name": name}


def message_item(item_id: str, content: list[dict[str, Any]],
                 status: str = "completed") -> dict[str, Any]:
    """An assistant ``message`` output item."""
    return {"id": item_id, "type": "message", "status": status, "content": content,
            "role": "assistant"}


def _own_id(part: Any, prefix: str) -> str | None:
    own = part.extras.get("id")
    return own if isinstance(own, str) and own.startswith(prefix) else None


def output_items(parts: Iterable[ir.Part], resp_id: str) -> list[dict[str, Any]]:
    """Response ``output`` items for IR parts; consecutive text parts share one message item.

    Item ids are the parts' own Responses ids when they have them, else ``msg_/fc_/rs_`` +
    response id + output index.
    """
    items: list[dict[str, Any]] = []
    for part in parts:
        n = len(items)
        if isinstance(part, ir.TextPart):
            if items and items[-1]["type"] == "message" and not _own_id(part, "msg_"):
                items[-1]["content"].append(output_text_part(part))
            else:
                items.append(message_item(_own_id(part, "msg_") or f"msg_{resp_id}_{n}",
                                          [output_text_part(part)]))
        elif isinstance(part, ir.ThinkingPart):
            summaries = part.extras.get("summary")
            if not (isinstance(summaries, list) and all(isinstance(s, str) for s in summaries)
                    and "\n\n".join(summaries) == part.text):
                summaries = [part.text] if part.text else []
            items.append(reasoning_output_item(_own_id(part, "rs_") or f"rs_{resp_id}_{n}",
                                               summaries, part.signature))
        elif isinstance(part, ir.RedactedThinkingPart):
            items.append(reasoning_output_item(_own_id(part, "rs_") or f"rs_{resp_id}_{n}",
                                               [], part.data))
        elif isinstance(part, ir.ToolCallPart):
            items.append(function_call_item(_own_id(part, "fc_") or f"fc_{resp_id}_{n}",
                                            part.id, part.name, part.arguments))
        else:
            logger.debug("responses output cannot carry a %s part; dropped", type(part).__name__)
    return items


def parts_from_reasoning_item(item: Mapping[str, Any]) -> list[ir.Part]:
    """A reasoning item: summary text (with its encrypted content as signature) → ThinkingPart;
    encrypted content alone → RedactedThinkingPart; nothing at all → no part."""
    summary = item.get("summary") if isinstance(item.get("summary"), list) else []
    texts = [s["text"] for s in summary if isinstance(s, ir.MAPPING) and isinstance(s.get("text"), str)]
    encrypted = item.get("encrypted_content")
    encrypted = encrypted if isinstance(encrypted, str) and encrypted else None
    extras: dict[str, Any] = {}
    if isinstance(item.get("id"), str):
        extras["id"] = item["id"]
    if texts:
        if len(texts) > 1:
            extras["summary"] = texts
        return [ir.ThinkingPart("\n\n".join(texts), signature=encrypted, extras=extras)]
    if encrypted:
        return [ir.RedactedThinkingPart(encrypted, extras=extras)]
    return []


def parts_from_output_text(content: Any, item_id: str | None) -> list[ir.Part]:
    """TextParts for a message item's content (output_text / refusal); the first carries the
    item id so a same-format encode keeps it."""
    parts: list[ir.Part] = []
    for c in content if isinstance(content, list) else []:
        if not isinstance(c, ir.MAPPING):
            continue
        extras: dict[str, Any] = {}
        if c.get("type") == "refusal" and isinstance(c.get("refusal"), str):
            text, extras["type"] = c["refusal"], "refusal"
        elif isinstance(c.get("text"), str):
            text = c["text"]
            if isinstance(c.get("annotations"), list) and c["annotations"]:
                extras["annotations"] = list(c["annotations"])
        else:
            continue
        if not parts and isinstance(item_id, str) and item_id:
            extras["id"] = item_id
        parts.append(ir.TextPart(text, extras=extras))
    return parts


def parts_from_output(output: Any) -> list[ir.Part]:
    """IR parts for a response's ``output`` items (unknown item types are dropped, logged)."""
    parts: list[ir.Part] = []
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, ir.MAPPING):
            continue
        kind = item.get("type")
        if kind == "message":
            parts.extend(parts_from_output_text(item.get("content"), item.get("id")))
        elif kind == "function_call":
            extras = {"id": item["id"]} if isinstance(item.get("id"), str) else {}
            args = item.get("arguments")
            parts.append(ir.ToolCallPart(str(item.get("call_id") or item.get("id") or ""),
                                         str(item.get("name") or ""),
                                         args if isinstance(args, str) else "{}", extras=extras))
        elif kind == "reasoning":
            parts.extend(parts_from_reasoning_item(item))
        else:
            logger.debug("responses output item %r has no IR form; dropped", kind)
    return parts


# ---------------------------------------------------------------------------------------------
# The response object, echoing the request


def _function_tool(tool: ir.Tool) -> dict[str, Any]:
    strict = tool.extras.get("strict")
    out: dict[str, Any] = {"type": "function", "name": tool.name,
                           "parameters": dict(tool.parameters) if tool.parameters is not None
                           else {"type": "object", "properties": {}},
                           # The API defaults strict to true, which rejects ordinary schemas
                           # from other formats; only a Responses client's own choice is kept.
                           "strict": strict if isinstance(strict, bool) else False}
    if tool.description is not None:
        out["description"] = tool.description
    return out


# Anthropic's server tools (web_search_20250305, bash_20250124, mcp_toolset ...) share the
# extras key with Responses' hosted tools; OpenAI rejects their types.
_ANTHROPIC_TOOL = re.compile(r"^[a-z_]+_\d{8}$|^mcp_toolset$")


def hosted_tools(extras: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Non-function tools this codec kept in ``extras["tools"]`` (Responses shape only)."""
    raw = extras.get("tools")
    if not isinstance(raw, list):
        return []
    return [dict(t) for t in raw if isinstance(t, ir.MAPPING) and isinstance(t.get("type"), str)
            and t["type"] != "function" and (t["type"] != "custom" or "name" in t)
            and not _ANTHROPIC_TOOL.match(t["type"])]


def tools_to_wire(request: ir.Request) -> list[dict[str, Any]]:
    """Responses ``tools``: flat function tools, then the kept non-function tools."""
    return [_function_tool(t) for t in request.tools] + hosted_tools(request.extras)


def tool_choice_to_wire(request: ir.Request) -> Any:
    """Responses ``tool_choice`` (a kept Responses-only choice when the IR has none)."""
    choice = request.tool_choice
    if choice is None:
        raw = request.extras.get("tool_choice")
        return dict(raw) if isinstance(raw, ir.MAPPING) else None
    if choice.mode == "tool" and choice.name:
        return {"type": "function", "name": choice.name}
    return choice.mode if choice.mode in ("auto", "none", "required") else "auto"


def text_format_to_wire(fmt: ir.ResponseFormat) -> dict[str, Any]:
    """``text.format`` for an IR response format."""
    if fmt.type == "json_schema":
        out: dict[str, Any] = {"type": "json_schema", "name": fmt.name or "response",
                               "schema": dict(fmt.schema or {})}
        if fmt.strict is not None:
            out["strict"] = fmt.strict
        return out
    return {"type": fmt.type if fmt.type in ("text", "json_object") else "text"}


def text_to_wire(request: ir.Request) -> dict[str, Any] | None:
    """The ``text`` object: kept settings (verbosity) plus the format."""
    raw = request.extras.get("text")
    text = dict(raw) if isinstance(raw, ir.MAPPING) else {}
    if request.response_format is not None:
        text["format"] = text_format_to_wire(request.response_format)
    return text or None


def reasoning_to_wire(request: ir.Request) -> dict[str, Any] | None:
    """``reasoning`` {effort, summary} from the IR; the source's other reasoning keys are kept."""
    raw = request.extras.get("reasoning")
    out = dict(raw) if isinstance(raw, ir.MAPPING) else {}
    r = request.reasoning
    if r is None:
        return out or None
    effort = r.effort
    if effort is None and r.budget is not None:
        effort = levels.budget_to_level(r.budget) if r.budget >= -1 else None
    if effort and effort != "auto":
        out["effort"] = effort
    else:
        out.pop("effort", None)  # "auto": let the upstream choose
    if r.include_thoughts:
        if out.get("summary") not in ("auto", "concise", "detailed"):
            out["summary"] = "auto"
    elif r.include_thoughts is False:
        out.pop("summary", None)
    return out or None


def instructions_text(request: ir.Request) -> str | None:
    """All system text as one ``instructions`` string (echoed in response objects)."""
    texts = [p.text for p in request.system]
    return "\n\n".join(texts) if texts else None


# Request fields a response object echoes straight from the request's extras.
_ECHO_EXTRAS = ("background", "max_tool_calls", "previous_response_id", "prompt_cache_key",
                "safety_identifier", "service_tier", "store", "top_logprobs", "truncation",
                "prompt_cache_retention")


def response_object(ctx: ir.EncodeContext, resp_id: str, status: str,
                    output: list[dict[str, Any]], usage: ir.Usage | None,
                    incomplete_reason: str | None = None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    """A full Responses ``response`` object echoing ``ctx.request`` (defaults when absent)."""
    req = ctx.request
    body: dict[str, Any] = {
        "id": resp_id, "object": "response", "created_at": ctx.created, "status": status,
        "background": False, "error": error,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "instructions": instructions_text(req) if req else None,
        "max_output_tokens": req.max_output_tokens if req else None,
        "max_tool_calls": None, "model": ctx.model, "output": output,
        "parallel_tool_calls": req.parallel_tool_calls
        if req and req.parallel_tool_calls is not None else True,
        "previous_response_id": None, "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None}, "safety_identifier": None,
        "service_tier": None, "store": False,
        "temperature": req.temperature if req else None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "top_logprobs": 0,
        "top_p": req.top_p if req else None, "truncation": "disabled",
        "usage": usage_to_wire(usage) if usage is not None else None,
        "user": req.user if req else None,
        "metadata": dict(req.metadata) if req else {},
    }
    if req is not None:
        _echo_request(body, req)
    return body


def _echo_request(body: dict[str, Any], req: ir.Request) -> None:
    for key in _ECHO_EXTRAS:
        if key in req.extras:
            body[key] = req.extras[key]
    reasoning = reasoning_to_wire(req) or {}
    body["reasoning"] = {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
    text = text_to_wire(req)
    if text:
        body["text"] = {"format": {"type": "text"}, **text}
    body["tools"] = tools_to_wire(req)
    choice = tool_choice_to_wire(req)
    if choice is not None:
        body["tool_choice"] = choice
