"""The Anthropic Messages codec (``POST /v1/messages``, ``/v1/messages/count_tokens``).

Owns the mapping between Anthropic Messages bodies and the IR: requests, responses, errors and
token counting here; content blocks and the stop-reason / usage / error tables in
`_claude_blocks`; the stream state machines in `_claude_stream`.  Pure: no I/O, no clock, no
Tornado, no module-level mutable state.

Rules worth knowing (each tested in tests/formats/test_claude.py):

* ``max_tokens`` is optional on decode (count_tokens bodies have none) but always written on
  encode: the IR value, else ``DEFAULT_MAX_TOKENS``; with manual thinking it is raised to
  ``budget_tokens + DEFAULT_MAX_TOKENS`` so the answer keeps room after the thinking budget
  (Anthropic requires ``budget_tokens < max_tokens``).  An IR max that is too small for thinking
  clamps the budget to ``max_tokens - 1`` (≥ 1024) or, below that, drops thinking.
* Reasoning → ``thinking``: budget > 0 → ``enabled`` + ``budget_tokens`` (every thinking model
  accepts it); effort ``none`` / budget 0 → ``disabled``; effort ``auto`` / budget -1 →
  ``adaptive``; an effort level → ``adaptive`` + ``output_config.effort`` when the request came
  from a Claude client that asked for adaptive thinking (raw ``thinking`` kept in extras), else
  ``enabled`` with the level's budget from `formats.reasoning`.  A Claude client's
  ``output_config.effort`` without ``thinking`` stays an effort only.  Thinking is dropped when
  ``tool_choice`` forces a tool or when the last tool-calling assistant turn does not start
  with a signed thinking block (histories from other formats), and temperature / top_k (and
  top_p < 0.95) are dropped while thinking is on: Anthropic rejects those combinations.
  Decoding, thinking that is on asks for thoughts (``include_thoughts``) unless ``display`` is
  ``omitted``.
* Thinking replayed in requests keeps only Anthropic signatures: unsigned thinking and OpenAI
  encrypted reasoning (``gAAAAA...``) are dropped.
* Server tools (``web_search_20250305`` ...) live in ``extras["tools"]`` and are written only by
  this codec; other top-level fields are restored only if Anthropic defines them.
* Usage: IR input = input + cache_read + cache_creation; back: input − cached − creation.
* Other formats' quirks are smoothed on encode: temperature is clamped to Anthropic's 0..1 and
  wins over top_p (recent models refuse both), tool
  ids are made ``[a-zA-Z0-9_-]``, tool results are put first in their user turn, empty text and
  unsigned thinking blocks (Anthropic rejects both in requests) are dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from cliproxyd.errors import ErrorKind, ProxyError, anthropic_type_for
from cliproxyd.formats import ir
from cliproxyd.formats._claude_blocks import (
    bad,
    decode_blocks,
    encode_part,
    encode_parts,
    error_from_claude,
    freeze,
    pick,
    safe_tool_id,
    stop_from_claude,
    stop_to_claude,
    tool_input,
    usage_from_claude,
    usage_to_claude,
)
from cliproxyd.formats._claude_stream import StreamDecoder, StreamEncoder, StreamWatcher
from cliproxyd.formats.reasoning import level_to_budget

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "StreamDecoder",
    "StreamEncoder",
    "StreamWatcher",
    "decode_count_tokens_response",
    "decode_request",
    "decode_request_head",
    "decode_response",
    "encode_count_tokens_request",
    "encode_count_tokens_response",
    "encode_request",
    "encode_response",
    "render_error",
    "watch_response",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 8192
MIN_THINKING_BUDGET = 1024
_CLAUDE_EFFORTS = ("low", "medium", "high", "xhigh", "max")
_MODELLED = frozenset({
    "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k",
    "stop_sequences", "tools", "tool_choice", "thinking", "output_config", "metadata", "stream",
})
# Top-level request fields Anthropic defines that the IR does not model: restored from extras.
_PASSTHROUGH = ("cache_control", "container", "context_management", "diagnostics",
                "inference_geo", "mcp_servers", "service_tier", "speed", "user_profile_id",
                "workspace_id")
_COUNT_TOKENS_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking",
                        "output_config", "cache_control", "context_management", "mcp_servers",
                        "speed", "user_profile_id", "workspace_id")
_TOOL_EXTRAS = ("cache_control", "strict", "input_examples", "defer_loading",
                "eager_input_streaming", "allowed_callers")
_SERVER_TOOL_TYPE = re.compile(r"^[a-z_]+_\d{8}$|^mcp_toolset$")


# ---------------------------------------------------------------------------------------------
# Request decoding


def _number(body: Mapping[str, Any], key: str, kind: type = float) -> Any:
    value = body.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if not ok or isinstance(value, bool):
        raise bad(f"{key}: must be {'an integer' if kind is int else 'a number'}", key)
    if kind is int and value < 0:
        raise bad(f"{key}: must be >= 0", key)
    return value


def _decode_system(system: Any) -> tuple[ir.TextPart, ...]:
    if system is None:
        return ()
    if isinstance(system, str):
        return (ir.TextPart(system),) if system else ()
    if not isinstance(system, list):
        raise bad("system: must be a string or an array of text blocks", "system")
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, ir.MAPPING) or block.get("type") != "text" \
                or not isinstance(block.get("text"), str):
            raise bad(f"system[{i}]: must be a text block", f"system[{i}]")
        parts.append(ir.TextPart(block["text"], extras=pick(block, ("cache_control", "citations"))))
    return tuple(parts)


def _decode_messages(messages: Any) -> tuple[ir.Message, ...]:
    if not isinstance(messages, list):
        raise bad("messages: field required (an array)", "messages")
    names: dict[str, str] = {}
    out = []
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, ir.MAPPING) or message.get("role") not in ("user", "assistant"):
            raise bad(f"{param}: must be an object with role 'user' or 'assistant'", param)
        content = message.get("content")
        if isinstance(content, str):
            parts, extras = (ir.TextPart(content),), ir.EMPTY
        elif isinstance(content, list):
            parts, extras = decode_blocks(content, f"{param}.content", names)
        else:
            raise bad(f"{param}.content: must be a string or an array", f"{param}.content")
        out.append(ir.Message(role=message["role"], parts=parts, extras=extras))
    return tuple(out)


def _decode_tools(tools: Any) -> tuple[tuple[ir.Tool, ...], list[Any]]:
    """(function tools, server tools kept raw)."""
    if tools is None:
        return (), []
    if not isinstance(tools, list):
        raise bad("tools: must be an array", "tools")
    functions, server = [], []
    for i, tool in enumerate(tools):
        if not isinstance(tool, ir.MAPPING):
            raise bad(f"tools[{i}]: must be an object", f"tools[{i}]")
        if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            server.append(dict(tool))
            continue
        if not isinstance(tool.get("name"), str) or not isinstance(tool["input_schema"], ir.MAPPING):
            raise bad(f"tools[{i}]: needs a name and an input_schema object", f"tools[{i}]")
        description = tool.get("description")
        functions.append(ir.Tool(
            name=tool["name"], description=description if isinstance(description, str) else None,
            parameters=tool["input_schema"], extras=pick(tool, _TOOL_EXTRAS)))
    return tuple(functions), server


def _decode_tool_choice(choice: Any) -> tuple[ir.ToolChoice | None, bool | None]:
    """(tool choice, parallel_tool_calls)."""
    if choice is None:
        return None, None
    if not isinstance(choice, ir.MAPPING):
        raise bad("tool_choice: must be an object", "tool_choice")
    ctype = choice.get("type")
    if ctype == "tool":
        if not isinstance(choice.get("name"), str):
            raise bad("tool_choice.name: required for type 'tool'", "tool_choice.name")
        result = ir.ToolChoice("tool", choice["name"])
    elif ctype in ("auto", "any", "none"):
        result = ir.ToolChoice({"any": "required"}.get(ctype, ctype))
    else:
        raise bad("tool_choice.type: must be auto, any, tool or none", "tool_choice.type")
    disable = choice.get("disable_parallel_tool_use")
    return result, (not disable) if isinstance(disable, bool) else None


def _decode_reasoning(thinking: Any, output_config: Any) -> ir.Reasoning | None:
    if output_config is not None and not isinstance(output_config, ir.MAPPING):
        raise bad("output_config: must be an object", "output_config")
    effort = output_config.get("effort") if isinstance(output_config, ir.MAPPING) else None
    effort = effort if isinstance(effort, str) else None
    if thinking is None:
        return ir.Reasoning(effort=effort) if effort else None
    if not isinstance(thinking, ir.MAPPING):
        raise bad("thinking: must be an object", "thinking")
    ttype, display = thinking.get("type"), thinking.get("display")
    # Thinking that is on is shown to the client unless it says "omitted" (the API's default
    # display), so other upstreams are asked for their thoughts / reasoning summaries too.
    include = display != "omitted"
    if ttype == "disabled":
        return ir.Reasoning(effort="none", budget=0)
    if ttype in ("adaptive", "auto"):
        return ir.Reasoning(effort=effort or "auto", include_thoughts=include)
    if ttype == "enabled":
        budget = thinking.get("budget_tokens")
        if budget is None:
            return ir.Reasoning(effort=effort or "auto", budget=-1, include_thoughts=include)
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise bad("thinking.budget_tokens: must be an integer", "thinking.budget_tokens")
        return ir.Reasoning(effort=effort, budget=budget, include_thoughts=include)
    raise bad("thinking.type: must be enabled, disabled or adaptive", "thinking.type")


def _decode_response_format(output_config: Any) -> ir.ResponseFormat | None:
    fmt = output_config.get("format") if isinstance(output_config, ir.MAPPING) else None
    if isinstance(fmt, ir.MAPPING) and fmt.get("type") == "json_schema" \
            and isinstance(fmt.get("schema"), ir.MAPPING):
        return ir.ResponseFormat(type="json_schema", schema=fmt["schema"])
    return None


def _decode_stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise bad("stop_sequences: must be an array of strings", "stop_sequences")
    return tuple(value)


def _decode_metadata(metadata: Any) -> tuple[str | None, Mapping[str, Any]]:
    if metadata is None:
        return None, ir.EMPTY
    if not isinstance(metadata, ir.MAPPING):
        raise bad("metadata: must be an object", "metadata")
    user = metadata.get("user_id")
    rest = {k: v for k, v in metadata.items() if k != "user_id"}
    return (user if isinstance(user, str) else None), freeze(rest)


def _request_extras(body: Mapping[str, Any], server_tools: list[Any]) -> Mapping[str, Any]:
    extras = {k: v for k, v in body.items() if k not in _MODELLED}
    for key in ("thinking", "output_config"):  # shape hints for a Claude encode (module doc)
        if isinstance(body.get(key), ir.MAPPING):
            extras[key] = dict(body[key])
    if server_tools:
        extras["tools"] = server_tools
    return freeze(extras)


def decode_request_head(body: Mapping[str, Any], *, model: str | None = None) -> tuple[str, bool]:
    """(model, stream) of a client's Messages body, checked as `decode_request` checks them:
    all a request passed through to a Claude upstream needs before it is sent."""
    if not isinstance(body, ir.MAPPING):
        raise bad("request body must be a JSON object")
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model: field required", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream: must be a boolean", "stream")
    return model, stream


def decode_request(body: Mapping[str, Any], *, model: str | None = None) -> ir.Request:
    """A client's Messages (or count_tokens) body → IR request.  ``max_tokens`` is optional."""
    model, stream = decode_request_head(body, model=model)
    tools, server_tools = _decode_tools(body.get("tools"))
    tool_choice, parallel = _decode_tool_choice(body.get("tool_choice"))
    user, metadata = _decode_metadata(body.get("metadata"))
    return ir.Request(
        model=model, messages=_decode_messages(body.get("messages")),
        system=_decode_system(body.get("system")), tools=tools, tool_choice=tool_choice,
        parallel_tool_calls=parallel, max_output_tokens=_number(body, "max_tokens", int),
        temperature=_number(body, "temperature"), top_p=_number(body, "top_p"),
        top_k=_number(body, "top_k", int), stop=_decode_stop(body.get("stop_sequences")),
        response_format=_decode_response_format(body.get("output_config")),
        reasoning=_decode_reasoning(body.get("thinking"), body.get("output_config")),
        stream=stream, user=user, metadata=metadata,
        extras=_request_extras(body, server_tools))


# ---------------------------------------------------------------------------------------------
# Request encoding


def _encode_system(system: tuple[ir.TextPart, ...]) -> Any:
    if len(system) == 1 and not system[0].extras:
        return system[0].text
    return [b for b in (encode_part(p) for p in system) if b is not None]


def _encode_messages(messages: tuple[ir.Message, ...]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        role = message.role if message.role in ("user", "assistant") else "user"
        parts = message.parts
        if len(parts) == 1 and isinstance(parts[0], ir.TextPart) and not parts[0].extras \
                and parts[0].text and not message.extras:
            out.append({"role": role, "content": parts[0].text})
            continue
        blocks = encode_parts(parts, message.extras)
        if role == "user":  # Anthropic wants tool results before any other block of the turn
            blocks.sort(key=lambda b: b.get("type") != "tool_result")
        if blocks:
            out.append({"role": role, "content": blocks})
        else:
            logger.debug("dropping a %s message with nothing Anthropic can express", role)
    return out


def _encode_tools(request: ir.Request) -> list[dict[str, Any]]:
    tools = []
    for tool in request.tools:
        schema = dict(tool.parameters) if tool.parameters else {"type": "object", "properties": {}}
        schema.setdefault("type", "object")
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        entry["input_schema"] = schema
        entry.update(pick(tool.extras, _TOOL_EXTRAS))
        tools.append(entry)
    server = request.extras.get("tools")
    for tool in server if isinstance(server, list) else ():
        if isinstance(tool, ir.MAPPING) and _SERVER_TOOL_TYPE.match(str(tool.get("type", ""))):
            tools.append(dict(tool))
        else:
            logger.debug("dropping a non-Anthropic built-in tool")
    return tools


def _encode_tool_choice(request: ir.Request, has_tools: bool) -> dict[str, Any] | None:
    choice, parallel = request.tool_choice, request.parallel_tool_calls
    if not has_tools:
        if choice is not None:
            logger.debug("dropping tool_choice: no tools")
        return None
    if choice is None and parallel is not False:
        return None
    mode = choice.mode if choice else "auto"
    if mode == "tool" and choice and choice.name:
        out: dict[str, Any] = {"type": "tool", "name": choice.name}
    else:
        out = {"type": {"required": "any", "none": "none"}.get(mode, "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _thinking_hint(request: ir.Request) -> str | None:
    raw = request.extras.get("thinking")
    if isinstance(raw, ir.MAPPING) and isinstance(raw.get("type"), str):
        return raw["type"]
    config = request.extras.get("output_config")
    return "effort-only" if isinstance(config, ir.MAPPING) and "effort" in config else None


def _encode_reasoning(request: ir.Request) -> tuple[dict[str, Any] | None, str | None]:
    """(``thinking`` object, ``output_config.effort``) per the module docstring's rule."""
    reasoning = request.reasoning
    if reasoning is None:
        return None, None
    effort, budget, hint = reasoning.effort, reasoning.budget, _thinking_hint(request)
    claude_effort = effort if effort in _CLAUDE_EFFORTS else (
        "low" if effort == "minimal" else None)
    if effort == "none" or budget == 0:
        return {"type": "disabled"}, None
    if budget is not None and budget > 0:
        return {"type": "enabled", "budget_tokens": budget}, claude_effort if hint else None
    if effort == "auto" or budget == -1 or (hint == "adaptive" and claude_effort):
        return {"type": "adaptive"}, claude_effort
    if hint == "effort-only":
        return None, claude_effort
    if effort in ("minimal", "low", "medium", "high", "xhigh", "max"):
        return {"type": "enabled", "budget_tokens": level_to_budget(effort)}, None
    return None, None


def _display(request: ir.Request, thinking: dict[str, Any]) -> None:
    """``display``: "omitted" when thoughts are not wanted; "summarized" (the default) is
    written only when a Claude client wrote it, since older models do not know the field."""
    include = request.reasoning.include_thoughts if request.reasoning else None
    raw = request.extras.get("thinking")
    asked = raw.get("display") if isinstance(raw, ir.MAPPING) else None
    if thinking["type"] not in ("enabled", "adaptive") or include is None:
        return
    if not include:
        thinking["display"] = "omitted"
    elif asked == "summarized":
        thinking["display"] = "summarized"


def _fit_thinking(thinking: dict[str, Any] | None, max_tokens: int | None
                  ) -> tuple[dict[str, Any] | None, int]:
    """Apply the budget / max_tokens rule of the module docstring."""
    if thinking is None or thinking["type"] != "enabled":
        return thinking, max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    budget = max(thinking["budget_tokens"], MIN_THINKING_BUDGET)
    if max_tokens is None:
        return {**thinking, "budget_tokens": budget}, budget + DEFAULT_MAX_TOKENS
    if max_tokens <= MIN_THINKING_BUDGET:
        logger.debug("dropping thinking: max_tokens %d leaves no room for it", max_tokens)
        return None, max_tokens
    return {**thinking, "budget_tokens": min(budget, max_tokens - 1)}, max_tokens


def _encode_sampling(request: ir.Request, body: dict[str, Any], thinking_on: bool) -> None:
    if request.temperature is not None and not thinking_on:
        # Anthropic takes 0..1; OpenAI's 0..2 is clamped rather than rejected upstream.
        body["temperature"] = min(max(request.temperature, 0.0), 1.0)
    if request.top_p is not None and "temperature" in body:
        # Claude 4.5 and later: "temperature and top_p cannot both be specified for this
        # model" (Gemini CLI and many chat apps send both); temperature says more.
        logger.debug("dropping top_p: Anthropic takes temperature or top_p, not both")
    elif request.top_p is not None and (not thinking_on or request.top_p >= 0.95):
        body["top_p"] = request.top_p
    if request.top_k is not None and not thinking_on:
        body["top_k"] = request.top_k
    if thinking_on and (request.temperature is not None or request.top_k is not None):
        logger.debug("dropping temperature/top_k: Anthropic rejects them with thinking")
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    for name in ("seed", "presence_penalty", "frequency_penalty"):
        if getattr(request, name) is not None:
            logger.debug("dropping %s: Anthropic has no such setting", name)


def _output_config(request: ir.Request, effort: str | None) -> dict[str, Any] | None:
    raw = request.extras.get("output_config")
    config = {k: v for k, v in raw.items() if k not in ("effort", "format")} \
        if isinstance(raw, ir.MAPPING) else {}
    if effort:
        config["effort"] = effort
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.schema is not None:
        config["format"] = {"type": "json_schema", "schema": dict(fmt.schema)}
    elif fmt is not None and fmt.type != "text":
        logger.debug("dropping response_format %s: Anthropic needs a JSON schema", fmt.type)
    return config or None


def _unsigned_tool_turn(messages: list[dict[str, Any]]) -> bool:
    """Whether the last assistant turn calls tools without starting with a thinking block:
    with thinking on, Anthropic rejects that ("a final assistant message must start with a
    thinking block"), which is what a history from a client or provider without Anthropic
    signatures looks like."""
    last = next((m for m in reversed(messages) if m["role"] == "assistant"), None)
    blocks = last["content"] if last is not None and isinstance(last["content"], list) else []
    if not any(b.get("type") == "tool_use" for b in blocks):
        return False
    return blocks[0].get("type") not in ("thinking", "redacted_thinking")


def _encode_thinking(request: ir.Request, body: dict[str, Any], tool_choice: Any) -> None:
    thinking, effort = _encode_reasoning(request)
    if thinking is not None and thinking["type"] != "disabled" and tool_choice \
            and tool_choice["type"] in ("any", "tool"):
        logger.debug("dropping thinking: Anthropic rejects it with a forced tool_choice")
        thinking = None
    if thinking is not None and thinking["type"] != "disabled" \
            and _unsigned_tool_turn(body["messages"]):
        logger.debug("dropping thinking: the last tool-calling turn has no signed thinking")
        thinking = None
    thinking, body["max_tokens"] = _fit_thinking(thinking, request.max_output_tokens)
    if thinking is not None:
        _display(request, thinking)
        body["thinking"] = thinking
    if config := _output_config(request, effort):
        body["output_config"] = config
    _encode_sampling(request, body, thinking is not None and thinking["type"] != "disabled")


def encode_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """IR request → an Anthropic Messages body for ``model`` (``max_tokens`` always set)."""
    body: dict[str, Any] = {"model": model}
    if request.system:
        body["system"] = _encode_system(request.system)
    body["messages"] = _encode_messages(request.messages)
    tools = _encode_tools(request)
    if tools:
        body["tools"] = tools
    tool_choice = _encode_tool_choice(request, bool(tools))
    if tool_choice:
        body["tool_choice"] = tool_choice
    _encode_thinking(request, body, tool_choice)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.metadata:
        logger.debug("dropping metadata keys other than user_id: Anthropic accepts only that")
    if request.stream:
        body["stream"] = True
    for key in _PASSTHROUGH:
        if key in request.extras and _passthrough_ok(key, request.extras[key]):
            body[key] = request.extras[key]
    return body


def _passthrough_ok(key: str, value: Any) -> bool:
    # Another format may use the same wire name with other values (OpenAI service_tier "flex",
    # Responses' context_management list where Anthropic takes an object).
    if key == "context_management":
        return isinstance(value, ir.MAPPING)
    return key != "service_tier" or value in ("auto", "standard_only")


# ---------------------------------------------------------------------------------------------
# Responses


def _check_response(body: Any) -> None:
    if isinstance(body, ir.MAPPING) and body.get("type") == "error":
        raise error_from_claude(body)
    if not isinstance(body, ir.MAPPING) or not isinstance(body.get("content"), list):
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, "upstream response has no content array")


def watch_response(body: Mapping[str, Any]) -> ir.Usage:
    """Passthrough: the usage of an upstream Messages body that goes to the client as it came,
    checked as `decode_response` checks it; its blocks are the client's to read."""
    _check_response(body)
    return usage_from_claude(body.get("usage"))


def decode_response(body: Mapping[str, Any]) -> ir.Response:
    """An upstream Messages response body → IR response."""
    _check_response(body)
    try:
        parts, extras = decode_blocks(body["content"], "content", {})
    except ProxyError as err:
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, f"malformed upstream response: {err.message}")
    native = body.get("stop_reason")
    stop_sequence = body.get("stop_sequence")
    return ir.Response(
        id=str(body.get("id") or ""), model=str(body.get("model") or ""), parts=parts,
        stop_reason=stop_from_claude(native),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        native_stop_reason=native if isinstance(native, str) else None,
        usage=usage_from_claude(body.get("usage")), extras=extras)


def _response_block(part: ir.Part) -> dict[str, Any] | None:
    if isinstance(part, ir.ThinkingPart):  # a client response may carry unsigned thinking
        return {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
    if isinstance(part, ir.ToolCallPart):
        return {"type": "tool_use", "id": safe_tool_id(part.id), "name": part.name,
                "input": tool_input(part.arguments)}
    if isinstance(part, (ir.TextPart, ir.RedactedThinkingPart)):
        return encode_part(part)
    logger.debug("dropping a %s from a Messages response", type(part).__name__)
    return None


def encode_response(response: ir.Response, ctx: ir.EncodeContext) -> dict[str, Any]:
    """IR response → the Messages body a Claude client expects (``model`` is ctx.model)."""
    content = [b for b in (_response_block(p) for p in response.parts) if b is not None]
    kept = response.extras.get("unmodelled_blocks")
    for entry in kept if isinstance(kept, list) else ():
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int):
            content.insert(min(entry[0], len(content)), entry[1])
    saw_tool = any(isinstance(p, ir.ToolCallPart) for p in response.parts)
    reason = stop_to_claude(response.stop_reason, response.native_stop_reason, saw_tool)
    return {
        "id": response.id or ctx.response_id, "type": "message", "role": "assistant",
        "model": ctx.model, "content": content, "stop_reason": reason,
        "stop_sequence": response.stop_sequence if reason == "stop_sequence" else None,
        "usage": usage_to_claude(response.usage),
    }


def render_error(error: ProxyError) -> dict[str, Any]:
    """Anthropic's error body; the HTTP status is ``error.status``."""
    return {"type": "error", "error": {"type": anthropic_type_for(error), "message": error.message}}


# ---------------------------------------------------------------------------------------------
# Token counting (POST /v1/messages/count_tokens)


def encode_count_tokens_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """IR request → a count_tokens body (no max_tokens, stream or sampling settings)."""
    body = encode_request(request, model=model)
    return {k: body[k] for k in _COUNT_TOKENS_FIELDS if k in body}


def decode_count_tokens_response(body: Mapping[str, Any]) -> int:
    """``{"input_tokens": N}`` → N."""
    value = body.get("input_tokens") if isinstance(body, ir.MAPPING) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, "upstream count_tokens answer has no input_tokens")
    return value


def encode_count_tokens_response(n: int) -> dict[str, Any]:
    """N → the count_tokens body a Claude client expects."""
    return {"input_tokens": n}

