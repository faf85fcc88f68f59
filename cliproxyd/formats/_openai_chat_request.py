"""OpenAI Chat Completions request bodies <-> IR `Request` (decode_request / encode_request).

Owns the message mapping (system/developer → `Request.system`; ``tool`` messages → `ToolResultPart`s
in one IR user message per run of consecutive tool messages; assistant ``reasoning_content`` →
`ThinkingPart`), tools, tool_choice, generation settings and the format-only ``extras``.
Content parts are mapped by `_openai_chat_parts`.
Pure: no I/O, no clock, no module-level mutable state.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from cliproxyd.formats import ir
from cliproxyd.formats._openai_chat_common import (
    invalid,
    openai_user,
    opt_bool,
    opt_int,
    opt_number,
    opt_str,
    stop_sequences,
    tool_call_extras,
    tool_call_to_wire,
)
from cliproxyd.formats._openai_chat_parts import content_part, encode_parts
from cliproxyd.formats.reasoning import budget_to_level

logger = logging.getLogger(__name__)

# Chat fields with no cross-format meaning: kept in `Request.extras` under their wire names and
# written back by encode_request.  Only these are written back, so extras another codec stored
# (its own wire names) never reach an OpenAI upstream.
PASSTHROUGH_KEYS = (
    "audio", "function_call", "functions", "logit_bias", "logprobs", "modalities", "moderation",
    "prediction", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
    "safety_identifier", "service_tier", "store", "stream_options", "top_logprobs", "verbosity",
    "web_search_options",
)

_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
_MAX_CALL_ID = 40

# Top-level fields decode_request maps into IR fields (everything else lands in extras).
_MAPPED_KEYS = frozenset((
    "model", "messages", "n", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "top_k", "stop", "seed", "presence_penalty", "frequency_penalty", "response_format",
    "reasoning_effort", "tools", "tool_choice", "parallel_tool_calls", "stream", "user",
    "metadata",
))

REASONING_EFFORTS = frozenset(
    ("none", "auto", "minimal", "low", "medium", "high", "xhigh", "max"))

# =============================================================================================
# decode


def decode_request_head(body: Mapping[str, Any], *, model: str | None = None) -> tuple[str, bool]:
    """(model, stream) of a client Chat Completions body, checked as `decode_request` checks
    them: all a request passed through to a Chat upstream needs before it is sent."""
    if not isinstance(body, ir.MAPPING):
        raise invalid("request body must be a JSON object")
    name = model if model is not None else body.get("model")
    if not isinstance(name, str) or not name:
        raise invalid("'model' is required and must be a string", "model")
    return name, bool(opt_bool(body, "stream"))


def decode_request(body: Mapping[str, Any], *, model: str | None = None) -> ir.Request:
    """Client Chat Completions body → IR request (400 `ProxyError` for bodies Chat rejects)."""
    name, stream = decode_request_head(body, model=model)
    n = opt_int(body, "n")
    if n is not None and n != 1:
        raise invalid("'n' must be 1: only one choice per request is supported", "n")
    system, messages = decode_messages(body.get("messages"))
    return ir.Request(
        model=name, messages=messages, system=system,
        tools=_decode_tools(body.get("tools")),
        tool_choice=_decode_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls"),
        max_output_tokens=_max_tokens(body),
        temperature=opt_number(body, "temperature"), top_p=opt_number(body, "top_p"),
        top_k=opt_int(body, "top_k"), stop=stop_sequences(body.get("stop")),
        seed=opt_int(body, "seed"),
        presence_penalty=opt_number(body, "presence_penalty"),
        frequency_penalty=opt_number(body, "frequency_penalty"),
        response_format=_decode_response_format(body.get("response_format")),
        reasoning=_decode_reasoning(body), stream=stream,
        user=opt_str(body, "user"), metadata=_decode_metadata(body.get("metadata")),
        extras=_decode_extras(body),
    )


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    # max_completion_tokens supersedes the deprecated max_tokens when both are sent.
    newer = opt_int(body, "max_completion_tokens")
    return newer if newer is not None else opt_int(body, "max_tokens")


def _decode_extras(body: Mapping[str, Any]) -> Mapping[str, Any]:
    extras = {k: v for k, v in body.items() if k not in _MAPPED_KEYS and v is not None}
    if body.get("max_completion_tokens") is not None:
        # Remember which field the client used so a Chat upstream gets the same one.
        extras["max_completion_tokens"] = body["max_completion_tokens"]
    so = extras.get("stream_options")
    if so is not None and not isinstance(so, ir.MAPPING):
        raise invalid("'stream_options' must be an object", "stream_options")
    return extras or ir.EMPTY


def _decode_metadata(value: Any) -> Mapping[str, Any]:
    if value is None:
        return ir.EMPTY
    if not isinstance(value, ir.MAPPING):
        raise invalid("'metadata' must be an object", "metadata")
    return dict(value)


def _decode_reasoning(body: Mapping[str, Any]) -> ir.Reasoning | None:
    effort = opt_str(body, "reasoning_effort")
    if effort is None:
        return None
    if effort.lower() not in REASONING_EFFORTS:
        raise invalid(f"unsupported reasoning_effort {effort!r}", "reasoning_effort")
    return ir.Reasoning(effort=effort.lower())


def _decode_response_format(value: Any) -> ir.ResponseFormat | None:
    if value is None:
        return None
    if not isinstance(value, ir.MAPPING):
        raise invalid("'response_format' must be an object", "response_format")
    kind = value.get("type")
    if kind in ("text", "json_object"):
        return ir.ResponseFormat(type=kind)
    if kind != "json_schema":
        raise invalid(f"unsupported response_format type {kind!r}", "response_format.type")
    spec = value.get("json_schema")
    if not isinstance(spec, ir.MAPPING) or not isinstance(spec.get("name"), str):
        raise invalid("'response_format.json_schema' needs a 'name'", "response_format.json_schema")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, ir.MAPPING):
        raise invalid("'json_schema.schema' must be an object",
                      "response_format.json_schema.schema")
    strict = opt_bool(spec, "strict")
    return ir.ResponseFormat(type="json_schema", schema=schema, name=spec["name"], strict=strict)


def _decode_tools(value: Any) -> tuple[ir.Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("'tools' must be an array", "tools")
    return tuple(_decode_tool(tool, f"tools[{i}]") for i, tool in enumerate(value))


def _decode_tool(tool: Any, param: str) -> ir.Tool:
    if not isinstance(tool, ir.MAPPING) or tool.get("type", "function") != "function":
        raise invalid("only tools of type 'function' are supported", f"{param}.type")
    fn = tool.get("function")
    if not isinstance(fn, ir.MAPPING) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise invalid("a function tool needs 'function.name'", f"{param}.function.name")
    params = fn.get("parameters")
    if params is not None and not isinstance(params, ir.MAPPING):
        raise invalid("'parameters' must be a JSON Schema object", f"{param}.function.parameters")
    strict = opt_bool(fn, "strict")
    return ir.Tool(name=fn["name"], description=opt_str(fn, "description", param),
                   parameters=params, extras={"strict": strict} if strict is not None else ir.EMPTY)


def _decode_tool_choice(value: Any) -> ir.ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ir.ToolChoice(mode=value)
    if isinstance(value, ir.MAPPING) and value.get("type") == "function":
        fn = value.get("function")
        if isinstance(fn, ir.MAPPING) and isinstance(fn.get("name"), str):
            return ir.ToolChoice(mode="tool", name=fn["name"])
    raise invalid("'tool_choice' must be auto, none, required or a named function", "tool_choice")


# ---------------------------------------------------------------------------------------------
# messages


def decode_messages(raw: Any) -> tuple[tuple[ir.TextPart, ...], tuple[ir.Message, ...]]:
    """Chat ``messages`` → (system parts, IR messages)."""
    if not isinstance(raw, list) or not raw:
        raise invalid("'messages' must be a non-empty array", "messages")
    system: list[ir.TextPart] = []
    out: list[ir.Message] = []
    names: dict[str, str] = {}  # tool call id → function name, for ToolResultPart.name
    after_tool = False
    for i, msg in enumerate(raw):
        param = f"messages[{i}]"
        if not isinstance(msg, ir.MAPPING):
            raise invalid("each message must be an object", param)
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(_system_parts(msg, role, param))
            continue
        if role == "tool":
            part = _tool_result(msg, param, names)
            if after_tool:  # a run of tool messages answers one assistant turn: one IR message
                out[-1] = ir.Message("user", out[-1].parts + (part,))
            else:
                out.append(ir.Message("user", (part,)))
        elif role == "user":
            out.append(ir.Message("user", _user_parts(msg.get("content"), param), _msg_extras(msg)))
        elif role == "assistant":
            message = _assistant(msg, param)
            names.update((p.id, p.name) for p in message.parts if isinstance(p, ir.ToolCallPart))
            out.append(message)
        else:
            raise invalid(f"unsupported message role {role!r}", f"{param}.role")
        after_tool = role == "tool"
    return tuple(system), tuple(out)


def _msg_extras(msg: Mapping[str, Any]) -> Mapping[str, Any]:
    name = msg.get("name")
    return {"name": name} if isinstance(name, str) else ir.EMPTY


def _system_parts(msg: Mapping[str, Any], role: str, param: str) -> list[ir.TextPart]:
    extras = {"role": "developer"} if role == "developer" else ir.EMPTY
    content = msg.get("content")
    if isinstance(content, str):
        texts = [content]
    elif isinstance(content, list):
        texts = [content_part(p, f"{param}.content[{j}]").text for j, p in enumerate(content)
                 if _is_text_part(p, f"{param}.content[{j}]")]
    else:
        raise invalid("system message content must be a string or an array", f"{param}.content")
    return [ir.TextPart(t, extras) for t in texts if t]


def _is_text_part(part: Any, param: str) -> bool:
    if isinstance(part, ir.MAPPING) and part.get("type") == "text":
        return True
    raise invalid("system message content parts must be of type 'text'", param)


def _user_parts(content: Any, param: str) -> tuple[ir.Part, ...]:
    if isinstance(content, str):
        return (ir.TextPart(content),)
    if isinstance(content, list):
        return tuple(content_part(p, f"{param}.content[{j}]") for j, p in enumerate(content))
    raise invalid("message content must be a string or an array of parts", f"{param}.content")


def _assistant(msg: Mapping[str, Any], param: str) -> ir.Message:
    parts: list[ir.Part] = []
    reasoning = msg.get("reasoning_content")
    if reasoning is None:
        reasoning = msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ir.ThinkingPart(reasoning))
    content = msg.get("content")
    if isinstance(content, str):
        parts.extend([ir.TextPart(content)] if content else [])
    elif isinstance(content, list):
        parts.extend(content_part(p, f"{param}.content[{j}]") for j, p in enumerate(content))
    elif content is not None:
        raise invalid("message content must be a string, an array or null", f"{param}.content")
    refusal = msg.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(ir.TextPart(refusal, {"type": "refusal"}))
    parts.extend(_tool_calls(msg.get("tool_calls"), param))
    extras = dict(_msg_extras(msg))
    for key in ("function_call", "audio"):  # deprecated / audio-only: nothing to map them to
        if msg.get(key) is not None:
            extras[key] = msg[key]
    return ir.Message("assistant", tuple(parts), extras or ir.EMPTY)


def _tool_calls(value: Any, param: str) -> list[ir.ToolCallPart]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("'tool_calls' must be an array", f"{param}.tool_calls")
    calls = []
    for k, call in enumerate(value):
        where = f"{param}.tool_calls[{k}]"
        if not isinstance(call, ir.MAPPING) or call.get("type", "function") != "function":
            raise invalid("only tool calls of type 'function' are supported", f"{where}.type")
        fn = call.get("function")
        if not isinstance(fn, ir.MAPPING) or not isinstance(fn.get("name"), str):
            raise invalid("a tool call needs 'function.name'", f"{where}.function")
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            raise invalid("'function.arguments' must be a JSON string", f"{where}.function")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid("a tool call needs an 'id'", f"{where}.id")
        calls.append(ir.ToolCallPart(id=call_id, name=fn["name"], arguments=args or "{}",
                                     extras=tool_call_extras(call)))
    return calls


def _tool_result(msg: Mapping[str, Any], param: str, names: Mapping[str, str]) -> ir.ToolResultPart:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid("a tool message needs 'tool_call_id'", f"{param}.tool_call_id")
    content = msg.get("content")
    if isinstance(content, str):
        parts: tuple[Any, ...] = (ir.TextPart(content),) if content else ()
    elif isinstance(content, list):
        parts = tuple(content_part(p, f"{param}.content[{j}]") for j, p in enumerate(content))
        if not all(isinstance(p, (ir.TextPart, ir.ImagePart)) for p in parts):
            raise invalid("tool message content may hold only text and images", f"{param}.content")
    else:
        raise invalid("tool message content must be a string or an array", f"{param}.content")
    return ir.ToolResultPart(tool_call_id=call_id, content=parts, name=names.get(call_id))


# =============================================================================================
# encode


def encode_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """IR request → Chat Completions body for an OpenAI-compatible upstream."""
    body: dict[str, Any] = {"model": model, "messages": encode_messages(request)}
    body.update(_encode_settings(request))
    if request.tools:
        body["tools"] = [_encode_tool(t) for t in request.tools]
    # OpenAI: "'tool_choice' is only allowed when 'tools' are specified" (parallel_tool_calls
    # likewise); a Gemini toolConfig or an Anthropic tool_choice may come without tools.
    if request.tool_choice is not None and request.tools:
        body["tool_choice"] = _encode_tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    for key in PASSTHROUGH_KEYS:
        if key in request.extras and key not in body:
            body[key] = request.extras[key]
    if body.get("service_tier", "auto") not in _SERVICE_TIERS:
        del body["service_tier"]  # Anthropic's "standard_only" under the same name
    body.pop("stream_options", None)  # OpenAI rejects stream_options on non-streamed requests
    if request.stream:
        body["stream"] = True
        # Always ask for the usage chunk: it is the only way to count a streamed request.
        options = request.extras.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, ir.MAPPING) else {}),
                                  "include_usage": True}
    return body


def _encode_settings(request: ir.Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.max_output_tokens is not None:
        key = "max_completion_tokens" if "max_completion_tokens" in request.extras else "max_tokens"
        out[key] = request.max_output_tokens
    for key in ("temperature", "top_p", "top_k", "seed", "presence_penalty",
                "frequency_penalty"):
        if getattr(request, key) is not None:
            out[key] = getattr(request, key)
    if request.user is not None:
        out["user"] = openai_user(request.user)
    if request.stop:
        out["stop"] = list(request.stop)
    if request.metadata:
        out["metadata"] = dict(request.metadata)
    if request.response_format is not None:
        out["response_format"] = _encode_response_format(request.response_format)
    effort = encode_effort(request.reasoning)
    if effort is not None:
        out["reasoning_effort"] = effort
    return out


def encode_effort(reasoning: ir.Reasoning | None) -> str | None:
    """``reasoning_effort`` for IR reasoning: the level, else the budget's level (§5.5)."""
    if reasoning is None:
        return None
    if reasoning.effort is not None:
        # OpenAI's top level is xhigh; "max" (Anthropic's word) would be rejected.
        return "xhigh" if reasoning.effort == "max" else reasoning.effort
    if reasoning.budget is not None:
        return budget_to_level(reasoning.budget)
    return None


def _encode_response_format(rf: ir.ResponseFormat) -> dict[str, Any]:
    if rf.type != "json_schema":
        return {"type": rf.type}
    spec: dict[str, Any] = {"name": rf.name or "response"}
    if rf.schema is not None:
        spec["schema"] = rf.schema
    if rf.strict is not None:
        spec["strict"] = rf.strict
    return {"type": "json_schema", "json_schema": spec}


def _encode_tool(tool: ir.Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        fn["description"] = tool.description
    fn["parameters"] = tool.parameters if tool.parameters is not None else {
        "type": "object", "properties": {}}
    if isinstance(tool.extras.get("strict"), bool):
        fn["strict"] = tool.extras["strict"]
    return {"type": "function", "function": fn}


def _encode_tool_choice(choice: ir.ToolChoice) -> Any:
    if choice.mode == "tool" and choice.name:
        return {"type": "function", "function": {"name": choice.name}}
    if choice.mode == "tool":  # a named choice without a name: any tool will do
        return "required"
    return choice.mode if choice.mode in ("auto", "none", "required") else "auto"


# ---------------------------------------------------------------------------------------------
# messages


def encode_messages(request: ir.Request) -> list[dict[str, Any]]:
    """IR system + messages → Chat ``messages``."""
    out: list[dict[str, Any]] = []
    for part in request.system:
        role = "developer" if part.extras.get("role") == "developer" else "system"
        out.append({"role": role, "content": part.text})
    for message in request.messages:
        if message.role == "assistant":
            out.append(_encode_assistant(message))
        else:
            out.extend(_encode_user(message))
    return out


def _encode_user(message: ir.Message) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tool_images: list[ir.Part] = []
    content: list[ir.Part] = []
    for part in message.parts:
        if isinstance(part, ir.ToolResultPart):
            out.append(_encode_tool_result(part))
            tool_images.extend(p for p in part.content if isinstance(p, ir.ImagePart))
        elif isinstance(part, (ir.TextPart, ir.ImagePart, ir.FilePart)):
            content.append(part)
        else:
            logger.debug("dropping %s in a user message: Chat cannot express it",
                         type(part).__name__)
    if tool_images:
        # Tool messages hold text only; images a tool returned follow as a user message.
        out.append({"role": "user", "content": encode_parts(tool_images)})
    if content:
        msg: dict[str, Any] = {"role": "user", "content": _user_content(content)}
        if isinstance(message.extras.get("name"), str):
            msg["name"] = message.extras["name"]
        out.append(msg)
    return out


def _user_content(parts: list[ir.Part]) -> Any:
    only = parts[0]
    if len(parts) == 1 and isinstance(only, ir.TextPart) and not only.extras:
        return only.text
    return encode_parts(parts)


def short_call_id(call_id: str) -> str:
    """``call_id`` if OpenAI takes it, else a stable 37-character stand-in: Chat refuses tool
    call ids over 40 characters ("string too long"), which other providers' ids and the ones
    made up for Gemini calls with long function names can be.  A call and its result map alike."""
    if len(call_id) <= _MAX_CALL_ID:
        return call_id
    return "call_" + hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:32]


def _encode_tool_result(part: ir.ToolResultPart) -> dict[str, Any]:
    texts = [p for p in part.content if isinstance(p, ir.TextPart)]
    if part.is_error:
        logger.debug("tool result is_error has no Chat field; sent as plain content")
    content: Any = texts[0].text if len(texts) == 1 else [
        {"type": "text", "text": p.text} for p in texts]
    return {"role": "tool", "tool_call_id": short_call_id(part.tool_call_id),
            "content": content or ""}


def _encode_assistant(message: ir.Message) -> dict[str, Any]:
    texts = [p for p in message.parts if isinstance(p, ir.TextPart)
             and p.extras.get("type") != "refusal"]
    refusals = [p.text for p in message.parts if isinstance(p, ir.TextPart)
                and p.extras.get("type") == "refusal"]
    thinking = "".join(p.text for p in message.parts if isinstance(p, ir.ThinkingPart))
    calls = [p for p in message.parts if isinstance(p, ir.ToolCallPart)]
    for part in message.parts:
        if not isinstance(part, (ir.TextPart, ir.ThinkingPart, ir.ToolCallPart)):
            logger.debug("dropping %s in an assistant message: Chat cannot express it",
                         type(part).__name__)
    out: dict[str, Any] = {"role": "assistant"}
    if len(texts) == 1:
        out["content"] = texts[0].text
    elif texts:
        out["content"] = [{"type": "text", "text": p.text} for p in texts]
    else:
        out["content"] = None
    if refusals:
        out["refusal"] = "".join(refusals)
    if thinking:
        out["reasoning_content"] = thinking
    if calls:
        out["tool_calls"] = [dict(tool_call_to_wire(c), id=short_call_id(c.id)) for c in calls]
    for key in ("name", "function_call", "audio"):
        if key in message.extras:
            out[key] = message.extras[key]
    return out
