"""Gemini ``generateContent`` codec: requests, responses, streams, errors and ``countTokens``.

Clients call ``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent``; the
upstream is ``{base}/v1beta/models/{model}:generateContent`` / ``:streamGenerateContent?alt=sse``.
The model lives in the URL: `decode_request` takes it as ``model=`` and `encode_request` never
writes it into the body.  This module does no I/O, reads no clock and keeps no global state.

Mapping rules that are not obvious (issue 3; reference §4.0, §4.4, §6, §7.3):

* Keys are accepted in camelCase and snake_case (the REST API takes both); output is camelCase.
* Tool call ids: Gemini's ``functionCall.id`` is optional.  Missing ids are generated as
  ``call_<name>_<n>`` (``n`` counts calls in the request), in an answer as
  ``call_<name>_<h>_<n>`` (``h`` hashed from its ``responseId``, so that calls of different
  turns never share an id: see `_gemini_common.answer_call_ids`), and each
  ``functionResponse`` without an id is matched to the oldest unanswered call of the same name.
  An id that was on the wire is remembered in the part's ``extras["id"]`` and sent upstream again;
  generated or foreign ids are not sent to Gemini (its results are matched by name).  Responses
  to *clients* always carry ``functionCall.id`` so a Gemini client can echo foreign ids back.
* Tool results: ``functionResponse.response`` must be an object.  A text result that is a JSON
  object is sent as that object, any other text as ``{"result": text}`` (never a double-encoded
  JSON string, unlike CLIProxyAPI), an error as ``{"error": ...}``; images in a result become
  ``inlineData`` parts after the ``functionResponse``.  Decoding reverses this.
* Thinking: Gemini thought parts decode to `ThinkingPart` with ``extras["thought"]=True`` and the
  ``thoughtSignature`` as ``signature``.  When encoding a request, only thinking parts carrying
  that marker are replayed; thinking from other providers is dropped (Gemini rejects foreign
  signatures and unsigned replayed thoughts are useless).  A ``thoughtSignature`` on any other
  part is kept in that part's ``extras``.  A model turn with function calls but no signature gets
  Google's documented placeholder ``skip_thought_signature_validator`` on its first call, since
  Gemini 3 rejects unsigned function-call history (reference §4.0 "thought-signature bypass").
* Thinking: an effort level goes out as ``thinkingLevel`` (Gemini 3), except for models before
  Gemini 3 (``gemini-1.x`` / ``gemini-2.x``, told by the upstream model name), which refuse that
  field and get the level's budget (capped at 24576) instead.
* Function names are sanitised for Gemini (reference §4.0).  To restore the client's names in
  responses, the caller computes ``names = tool_name_map(ir_request)`` from the *original* IR
  request and passes it to ``decode_response(body, tool_names=names)`` /
  ``StreamDecoder(tool_names=names)``; both default to no mapping, so the codec stays pure.
* Tool schemas go through `gemini_schema.clean`; tools decoded from a Gemini client are turned
  back into ordinary JSON Schema with `gemini_schema.to_json_schema`.
* Gemini-only fields (``safetySettings``, ``cachedContent``, ``labels``, non-function tools such
  as ``googleSearch``, unmodelled ``generationConfig`` and ``toolConfig`` keys) travel in
  ``Request.extras`` under their wire names and are written again only by this encoder.
* ``Request.stream`` is not part of a Gemini body (the method in the URL says it): the handler
  sets it.  Unlike CLIProxyAPI, this codec adds no default ``safetySettings`` and does not strip
  a trailing model turn; those are provider policy, not format mapping.
* In-stream errors are sent as a plain ``data: {"error": {"code", "message", "status"}}`` event:
  google-genai raises ``APIError`` for a chunk that starts with ``{"error":``, while an
  ``event:`` line (what CLIProxyAPI writes) makes it fail to parse the stream.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from cliproxyd import jsontext
from cliproxyd.formats import ir
from cliproxyd.formats._gemini_common import (
    BYPASS_SIGNATURE,
    CallIds,
    answer_call_ids,
    bad,
    decode_part,
    encode_call,
    encode_media,
    finish_reason_for,
    get,
    render_error,
    response_part,
    sanitize_function_name,
    stop_reason_from_gemini,
    tool_name_map,
    upstream_error,
    usage_from_gemini,
    usage_to_gemini,
    with_extras,
)
from cliproxyd.formats._gemini_stream import StreamDecoder, StreamEncoder, StreamWatcher
from cliproxyd.formats.gemini_schema import clean, to_json_schema
from cliproxyd.formats.reasoning import level_to_budget

__all__ = [
    "decode_request", "decode_request_head", "encode_request", "decode_response", "watch_response", "encode_response",
    "render_error",
    "StreamDecoder", "StreamEncoder", "StreamWatcher", "stop_reason_from_gemini",
    "finish_reason_for",
    "usage_from_gemini", "usage_to_gemini", "sanitize_function_name", "tool_name_map",
    "decode_count_tokens_request", "encode_count_tokens_request",
    "decode_count_tokens_response", "encode_count_tokens_response",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Request: wire → IR


_ROLES = {"user": "user", "function": "user", "model": "assistant", None: "user", "": "user"}


def decode_request_head(body: Mapping[str, Any], *, model: str | None = None) -> tuple[str, bool]:
    """(model, stream) of a ``GenerateContentRequest``, as `decode_request` reads them: all a
    request passed through to a Gemini upstream needs before it is sent.  The stream flag is
    always False: the method in the URL says it."""
    if not isinstance(body, ir.MAPPING):
        raise bad("request body must be a JSON object", "body")
    body_model = body.get("model") if isinstance(body.get("model"), str) else ""
    return _model_name(model or body_model), False


def decode_request(body: Mapping[str, Any], *, model: str | None = None) -> ir.Request:
    """A Gemini ``GenerateContentRequest`` → IR (``model`` comes from the URL)."""
    fields: dict[str, Any] = {"model": decode_request_head(body, model=model)[0]}
    fields["messages"] = _decode_contents(get(body, "contents"))
    fields["system"] = _decode_system(get(body, "systemInstruction"))
    tools, extra_tools = _decode_tools(get(body, "tools"))
    fields["tools"] = tools
    extras: dict[str, Any] = {}
    if extra_tools:
        extras["tools"] = extra_tools
    fields["tool_choice"] = _decode_tool_config(get(body, "toolConfig"), extras)
    fields.update(_decode_generation(get(body, "generationConfig"), extras))
    for key in ("safetySettings", "cachedContent", "labels"):
        if get(body, key) is not None:
            extras[key] = get(body, key)
    return ir.Request(**fields, extras=extras or ir.EMPTY)


def _model_name(model: str) -> str:
    return model[len("models/"):] if model.startswith("models/") else model


def _decode_contents(contents: Any) -> tuple[ir.Message, ...]:
    if not isinstance(contents, list) or not contents:
        raise bad("contents must be a non-empty array", "contents")
    ids = CallIds()
    messages = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, ir.MAPPING):
            raise bad(f"{where} must be an object", where)
        role = get(content, "role")
        if not (role is None or isinstance(role, str)) or role not in _ROLES:
            raise bad(f"{where}.role must be 'user' or 'model'", f"{where}.role")
        parts = get(content, "parts")
        if not isinstance(parts, list):
            raise bad(f"{where}.parts must be an array", f"{where}.parts")
        decoded = [decode_part(p, ids, f"{where}.parts[{j}]") for j, p in enumerate(parts)]
        messages.append(ir.Message(_ROLES[role], tuple(p for p in decoded if p is not None)))
    return tuple(messages)


def _decode_system(instruction: Any) -> tuple[ir.TextPart, ...]:
    if instruction is None:
        return ()
    if isinstance(instruction, str):
        return (ir.TextPart(instruction),)
    parts = get(instruction, "parts")
    if not isinstance(parts, list):
        raise bad("systemInstruction.parts must be an array", "systemInstruction")
    texts = [get(p, "text") for p in parts]
    if not all(isinstance(t, str) for t in texts):
        raise bad("systemInstruction parts must be text", "systemInstruction")
    return tuple(ir.TextPart(t) for t in texts)


_DECL_EXTRAS = ("behavior", "response", "responseJsonSchema")


def _decode_tools(tools: Any) -> tuple[tuple[ir.Tool, ...], list[Any]]:
    if tools is None:
        return (), []
    if not isinstance(tools, list):
        raise bad("tools must be an array", "tools")
    decoded: list[ir.Tool] = []
    others: list[Any] = []
    for i, entry in enumerate(tools):
        if not isinstance(entry, ir.MAPPING):
            raise bad(f"tools[{i}] must be an object", f"tools[{i}]")
        decls = get(entry, "functionDeclarations")
        if decls is not None:
            if not isinstance(decls, list):
                raise bad(f"tools[{i}].functionDeclarations must be an array", f"tools[{i}]")
            decoded += [_decode_declaration(d, f"tools[{i}].functionDeclarations[{j}]")
                        for j, d in enumerate(decls)]
        rest = {k: v for k, v in entry.items()
                if k not in ("functionDeclarations", "function_declarations")}
        if rest:
            others.append(_camel_keys(rest))  # googleSearch, codeExecution, ...: Gemini only
    return tuple(decoded), others


def _decode_declaration(decl: Any, where: str) -> ir.Tool:
    if not isinstance(decl, ir.MAPPING) or not isinstance(get(decl, "name"), str):
        raise bad(f"{where}.name must be a string", where)
    params = get(decl, "parametersJsonSchema")
    if params is None and get(decl, "parameters") is not None:
        params = to_json_schema(get(decl, "parameters"))
    if params is not None and not isinstance(params, ir.MAPPING):
        raise bad(f"{where}.parameters must be an object", where)
    desc = get(decl, "description")
    extras = {k: get(decl, k) for k in _DECL_EXTRAS if get(decl, k) is not None}
    return ir.Tool(name=get(decl, "name"), description=desc if isinstance(desc, str) else None,
                   parameters=params, extras=extras or ir.EMPTY)


def _decode_tool_config(config: Any, extras: dict[str, Any]) -> ir.ToolChoice | None:
    if config is None:
        return None
    fcc = get(config, "functionCallingConfig")
    if not isinstance(config, ir.MAPPING) or (fcc is not None and not isinstance(fcc, ir.MAPPING)):
        raise bad("toolConfig.functionCallingConfig must be an object", "toolConfig")
    if set(config) - {"functionCallingConfig", "function_calling_config"}:
        extras["toolConfig"] = _camel_keys(config)  # e.g. retrievalConfig: kept for Gemini
    if fcc is None:
        return None
    mode = str(get(fcc, "mode") or "AUTO").upper()
    allowed = get(fcc, "allowedFunctionNames") or []
    choice = {"AUTO": ir.ToolChoice("auto"), "NONE": ir.ToolChoice("none"),
              "ANY": ir.ToolChoice("required"), "VALIDATED": ir.ToolChoice("auto")}.get(mode)
    if choice is None:
        raise bad(f"unknown functionCallingConfig.mode {mode!r}", "toolConfig")
    if mode == "ANY" and isinstance(allowed, list) and len(allowed) == 1:
        choice = ir.ToolChoice("tool", name=str(allowed[0]))
    elif allowed or mode == "VALIDATED":
        extras["toolConfig"] = _camel_keys(config)  # more than ToolChoice says: keep for Gemini
    return choice


_GEN_FIELDS = {
    "maxOutputTokens": ("max_output_tokens", int),
    "temperature": ("temperature", float),
    "topP": ("top_p", float),
    "topK": ("top_k", int),
    "seed": ("seed", int),
    "presencePenalty": ("presence_penalty", float),
    "frequencyPenalty": ("frequency_penalty", float),
}
_PENALTIES = ("presencePenalty", "frequencyPenalty")
_GEN_HANDLED = set(_GEN_FIELDS) | {"stopSequences", "candidateCount", "responseMimeType",
                                   "responseSchema", "responseJsonSchema", "thinkingConfig"}


def _decode_generation(config: Any, extras: dict[str, Any]) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, ir.MAPPING):
        raise bad("generationConfig must be an object", "generationConfig")
    out: dict[str, Any] = {}
    for key, (name, kind) in _GEN_FIELDS.items():
        value = get(config, key)
        if value is not None:
            out[name] = _number(value, kind, f"generationConfig.{key}")
    stops = get(config, "stopSequences")
    if stops is not None:
        stops = [stops] if isinstance(stops, str) else stops
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise bad("stopSequences must be an array of strings", "generationConfig")
        out["stop"] = tuple(stops)
    count = get(config, "candidateCount")
    if count is not None and _number(count, int, "generationConfig.candidateCount") > 1:
        raise bad("candidateCount > 1 is not supported", "generationConfig.candidateCount")
    out["response_format"] = _decode_response_format(config, extras)
    out["reasoning"] = _decode_thinking(get(config, "thinkingConfig"))
    rest = {k: v for k, v in config.items()
            if k not in _GEN_HANDLED and _camel(k) not in _GEN_HANDLED}
    if rest:
        extras["generationConfig"] = _camel_keys(rest)
    return {k: v for k, v in out.items() if v is not None}


def _camel(key: str) -> str:
    head, *tail = key.split("_")
    return head + "".join(t[:1].upper() + t[1:] for t in tail)


def _camel_keys(value: Any) -> Any:
    """``value`` with every object key in camelCase (we emit camelCase).  Only used on config
    objects whose keys are all field names, never on user-named maps such as ``labels``."""
    if isinstance(value, ir.MAPPING):
        return {_camel(str(k)): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _number(value: Any, kind: type, where: str) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        raise bad(f"{where} must be {'an integer' if kind is int else 'a number'}", where)
    return kind(value)


def _decode_response_format(config: Mapping[str, Any], extras: dict[str, Any]):
    mime = get(config, "responseMimeType")
    json_schema = get(config, "responseJsonSchema", get(config, "_responseJsonSchema"))
    schema = get(config, "responseSchema")
    for value, key in ((json_schema, "responseJsonSchema"), (schema, "responseSchema")):
        if value is not None and not isinstance(value, ir.MAPPING):
            raise bad(f"generationConfig.{key} must be an object", f"generationConfig.{key}")
    if json_schema is not None:
        return ir.ResponseFormat("json_schema", schema=json_schema)
    if schema is not None:
        extras["responseSchema"] = schema  # OpenAPI-subset schema: re-sent under its own key
        return ir.ResponseFormat("json_schema", schema=to_json_schema(schema))
    if mime == "application/json":
        return ir.ResponseFormat("json_object")
    if mime is not None and mime != "text/plain":
        extras.setdefault("generationConfig", {})["responseMimeType"] = mime
    return None


def _decode_thinking(config: Any) -> ir.Reasoning | None:
    if config is None:
        return None
    if not isinstance(config, ir.MAPPING):
        raise bad("thinkingConfig must be an object", "generationConfig.thinkingConfig")
    level, budget = get(config, "thinkingLevel"), get(config, "thinkingBudget")
    include = get(config, "includeThoughts")
    effort = level.lower() if isinstance(level, str) else None
    if budget is not None:
        budget = _number(budget, int, "generationConfig.thinkingConfig.thinkingBudget")
        if effort is None and budget in (0, -1):
            effort = "none" if budget == 0 else "auto"
    if effort is None and budget is None and include is None:
        return None
    return ir.Reasoning(effort=effort, budget=budget,
                        include_thoughts=include if isinstance(include, bool) else None)


# ---------------------------------------------------------------------------------------------
# Request: IR → wire


def encode_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """IR → a Gemini ``GenerateContentRequest`` body (``model`` goes in the URL, not here)."""
    body: dict[str, Any] = {"contents": _encode_contents(request.messages)}
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": t.text} for t in request.system]}
    tools = _encode_tools(request)
    if tools:
        body["tools"] = tools
    tool_config = _encode_tool_config(request)
    if tool_config:
        body["toolConfig"] = tool_config
    generation = _encode_generation(request, model)
    if generation:
        body["generationConfig"] = generation
    for key in ("safetySettings", "cachedContent", "labels"):
        if key in request.extras:
            body[key] = request.extras[key]
    for name in ("parallel_tool_calls", "user", "metadata"):
        if getattr(request, name) not in (None, {}):
            logger.debug("gemini: %s cannot be expressed, dropped", name)
    return body


def _encode_contents(messages: tuple[ir.Message, ...]) -> list[dict[str, Any]]:
    names = {p.id: p.name for m in messages for p in m.parts if isinstance(p, ir.ToolCallPart)}
    turns: list[dict[str, Any]] = []
    for msg in messages:
        role = "model" if msg.role == "assistant" else "user"
        parts = [wire for p in msg.parts for wire in _encode_part(p, names)]
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})
    for turn in turns:
        if turn["role"] == "model":
            _sign_first_call(turn["parts"])
    if not turns or turns[0]["role"] == "model":
        turns.insert(0, {"role": "user", "parts": [{"text": ""}]})
    return turns


def _sign_first_call(parts: list[dict[str, Any]]) -> None:
    calls = [p for p in parts if "functionCall" in p]
    if calls and not any("thoughtSignature" in p for p in parts):
        calls[0]["thoughtSignature"] = BYPASS_SIGNATURE


def _encode_part(part: ir.Part, names: Mapping[str, str]) -> list[dict[str, Any]]:
    if isinstance(part, ir.TextPart):
        if not part.text and "thoughtSignature" not in part.extras:
            return []
        return [with_extras({"text": part.text}, part.extras)]
    if isinstance(part, (ir.ImagePart, ir.FilePart)):
        media = encode_media(part)
        return [with_extras(media, part.extras)] if media else []
    if isinstance(part, ir.ToolCallPart):
        return [encode_call(part, upstream=True)]
    if isinstance(part, ir.ToolResultPart):
        return _encode_result(part, names)
    if isinstance(part, ir.ThinkingPart) and part.extras.get("thought") is True:
        wire = {"text": part.text, "thought": True}
        if part.signature:
            wire["thoughtSignature"] = part.signature
        return [wire]
    logger.debug("gemini: dropping %s part (not expressible upstream)", type(part).__name__)
    return []


def _encode_result(part: ir.ToolResultPart, names: Mapping[str, str]) -> list[dict[str, Any]]:
    name = part.name or names.get(part.tool_call_id) or part.tool_call_id
    # Several text blocks (an Anthropic tool_result list) are lines, not one run-on word.
    text = "\n".join(p.text for p in part.content if isinstance(p, ir.TextPart))
    try:
        parsed = jsontext.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        parsed = None
    value: Any = parsed if isinstance(parsed, dict) else text
    if part.is_error:
        response = {"error": value}
    else:
        response = value if isinstance(value, dict) else {"result": value}
    wire: dict[str, Any] = {"name": sanitize_function_name(name), "response": response}
    if part.extras.get("id") == part.tool_call_id:
        wire["id"] = part.tool_call_id
    images = [encode_media(p) for p in part.content if isinstance(p, ir.ImagePart)]
    return [{"functionResponse": wire}] + [m for m in images if m]


def _encode_tools(request: ir.Request) -> list[dict[str, Any]]:
    decls = []
    for tool in request.tools:
        decl: dict[str, Any] = {"name": sanitize_function_name(tool.name)}
        if tool.description:
            decl["description"] = tool.description
        params = _parameters(tool.parameters)
        if params is not None:
            decl["parameters"] = params
        for key in _DECL_EXTRAS:
            if key in tool.extras:
                decl[key] = tool.extras[key]
        decls.append(decl)
    out: list[dict[str, Any]] = [{"functionDeclarations": decls}] if decls else []
    # Gemini's own tools (googleSearch, codeExecution ...) have no "type"; Anthropic server tools
    # and Responses hosted tools kept under the same extras key do, and Gemini rejects them.
    kept = request.extras.get("tools")
    return out + [dict(t) for t in kept if isinstance(t, ir.MAPPING) and "type" not in t] \
        if isinstance(kept, list) else out


def _parameters(schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``parameters`` for a tool's JSON Schema, or None when it takes no arguments (Gemini
    rejects an OBJECT schema without properties, so the key is omitted)."""
    if not schema:
        return None
    root = dict(schema)
    if not any(k in root for k in ("type", "$ref", "anyOf", "oneOf", "allOf", "const", "enum")):
        root["type"] = "object"  # function arguments are an object even when unsaid
    params = clean(root)
    if params.get("type") == "OBJECT":
        return params if params.get("properties") else None
    # Gemini requires an OBJECT root: wrap anything else as the single argument "value".
    return {"type": "OBJECT", "properties": {"value": params}, "required": ["value"]}


def _encode_tool_config(request: ir.Request) -> dict[str, Any] | None:
    if "toolConfig" in request.extras:
        return dict(request.extras["toolConfig"])
    choice = request.tool_choice
    if choice is None:
        return None
    mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}.get(choice.mode)
    if mode is None:
        logger.debug("gemini: unknown tool_choice mode %s dropped", choice.mode)
        return None
    config: dict[str, Any] = {"mode": mode}
    if choice.mode == "tool" and choice.name:
        config["allowedFunctionNames"] = [sanitize_function_name(choice.name)]
    return {"functionCallingConfig": config}


def _encode_generation(request: ir.Request, model: str) -> dict[str, Any]:
    config: dict[str, Any] = dict(request.extras.get("generationConfig", {}))
    for key, (name, _) in _GEN_FIELDS.items():
        value = getattr(request, name)
        if value is None or (value == 0 and key in _PENALTIES):
            continue  # a zero penalty (chat apps send them) is the default, and several
            # Gemini models answer any penalty with 400 "Penalty is not enabled"
        config[key] = value
    if request.stop:
        config["stopSequences"] = list(request.stop)
    fmt = request.response_format
    if fmt is not None and fmt.type in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            native = request.extras.get("responseSchema")
            if native is not None and to_json_schema(native) == fmt.schema:
                config["responseSchema"] = native
            else:
                config["responseJsonSchema"] = dict(fmt.schema)
    thinking = _encode_thinking(request.reasoning, model)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


# Gemini's thinkingLevel values stop at "high"; higher efforts ask for its most.
_GEMINI_LEVELS = {"xhigh": "high", "max": "high"}
# Models before Gemini 3 answer thinkingLevel with 400 "Thinking level is not supported for
# this model": they get the level's budget, capped at the 2.5 Flash maximum (Pro allows more).
_BUDGET_ONLY_MODEL = re.compile(r"^(?:models/)?gemini-[12](?:\.\d+)?-")
_MAX_BUDGET_ONLY = 24576


def _encode_thinking(reasoning: ir.Reasoning | None, model: str) -> dict[str, Any]:
    if reasoning is None:
        return {}
    out: dict[str, Any] = {}
    if reasoning.budget is not None:
        out["thinkingBudget"] = reasoning.budget
    elif reasoning.effort in ("none", "auto"):
        out["thinkingBudget"] = level_to_budget(reasoning.effort)
    elif reasoning.effort and _BUDGET_ONLY_MODEL.match(model):
        out["thinkingBudget"] = min(level_to_budget(reasoning.effort), _MAX_BUDGET_ONLY)
    elif reasoning.effort:
        out["thinkingLevel"] = _GEMINI_LEVELS.get(reasoning.effort, reasoning.effort)
    if reasoning.include_thoughts is not None:
        out["includeThoughts"] = reasoning.include_thoughts
    return out


# ---------------------------------------------------------------------------------------------
# Response


_CANDIDATE_EXTRAS = ("safetyRatings", "citationMetadata", "groundingMetadata", "finishMessage",
                     "urlContextMetadata", "avgLogprobs", "logprobsResult")


def _candidates(body: Any) -> list:
    if not isinstance(body, ir.MAPPING):
        raise upstream_error("body is not an object")
    candidates = get(body, "candidates") or []
    if not isinstance(candidates, list):
        raise upstream_error("candidates is not an array")
    return candidates


def watch_response(body: Mapping[str, Any]) -> ir.Usage:
    """Passthrough: the usage of an upstream ``GenerateContentResponse`` that goes to the client
    as it came, checked as `decode_response` checks it; its parts are the client's to read."""
    _candidates(body)
    return usage_from_gemini(get(body, "usageMetadata"))


def decode_response(body: Mapping[str, Any], *,
                    tool_names: Mapping[str, str] | None = None) -> ir.Response:
    """A ``GenerateContentResponse`` → IR (first candidate); ``tool_names`` restores sanitised
    function names (see `tool_name_map`)."""
    candidates = _candidates(body)
    extras: dict[str, Any] = {}
    if get(body, "promptFeedback") is not None:
        extras["promptFeedback"] = get(body, "promptFeedback")
    usage = usage_from_gemini(get(body, "usageMetadata"))
    rid, model = str(get(body, "responseId") or ""), str(get(body, "modelVersion") or "")
    if not candidates:
        block = get(get(body, "promptFeedback"), "blockReason")
        block = block if isinstance(block, str) else None
        stop = ir.StopReason.CONTENT_FILTER if block else ir.StopReason.END_TURN
        return ir.Response(id=rid, model=model, parts=(), stop_reason=stop,
                           native_stop_reason=block, usage=usage, extras=extras or ir.EMPTY)
    cand = candidates[0]
    parts = _decode_candidate_parts(cand, tool_names or {}, answer_call_ids(rid))
    extras.update({k: get(cand, k) for k in _CANDIDATE_EXTRAS if get(cand, k) is not None})
    finish = get(cand, "finishReason")
    finish = finish if isinstance(finish, str) else None
    has_call = any(isinstance(p, ir.ToolCallPart) for p in parts)
    return ir.Response(id=rid, model=model, parts=parts,
                       stop_reason=stop_reason_from_gemini(finish, has_call),
                       native_stop_reason=finish, usage=usage, extras=extras or ir.EMPTY)


def _decode_candidate_parts(cand: Any, names: Mapping[str, str],
                            ids: CallIds) -> tuple[ir.Part, ...]:
    parts = get(get(cand, "content"), "parts") or []
    if not isinstance(parts, list):
        raise upstream_error("content.parts is not an array")
    decoded = [decode_part(p, ids, f"parts[{i}]", names=names, err=lambda m, _w: upstream_error(m))
               for i, p in enumerate(parts)]
    return tuple(p for p in decoded if p is not None)


def encode_response(response: ir.Response, ctx: ir.EncodeContext) -> dict[str, Any]:
    """IR → the ``GenerateContentResponse`` a Gemini client expects."""
    body: dict[str, Any] = {}
    feedback = response.extras.get("promptFeedback")
    if response.parts or not feedback:
        candidate: dict[str, Any] = {
            "content": {"role": "model",
                        "parts": [w for p in response.parts for w in response_part(p)]},
            "finishReason": finish_reason_for(response.stop_reason,
                                              response.native_stop_reason),
            "index": 0,
        }
        candidate.update({k: response.extras[k] for k in _CANDIDATE_EXTRAS
                          if k in response.extras})
        body["candidates"] = [candidate]
    if feedback:
        body["promptFeedback"] = feedback
    body["usageMetadata"] = usage_to_gemini(response.usage)
    body["modelVersion"] = ctx.model
    body["responseId"] = response.id or ctx.response_id
    return body


# ---------------------------------------------------------------------------------------------
# countTokens


def decode_count_tokens_request(body: Mapping[str, Any], *, model: str) -> ir.Request:
    """A ``countTokens`` body (``{contents}`` or ``{generateContentRequest}``) → IR."""
    if not isinstance(body, ir.MAPPING):
        raise bad("request body must be a JSON object", "body")
    inner = get(body, "generateContentRequest")
    if inner is not None:
        if not isinstance(inner, ir.MAPPING):
            raise bad("generateContentRequest must be an object", "generateContentRequest")
        return decode_request(inner, model=model)
    return decode_request({"contents": get(body, "contents")}, model=model)


def encode_count_tokens_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """IR → a ``countTokens`` body; system and tools are counted too, so the full
    ``generateContentRequest`` form is used (it requires ``models/<model>``)."""
    full = encode_request(request, model=model)
    inner = {k: full[k] for k in ("contents", "systemInstruction", "tools") if k in full}
    return {"generateContentRequest": {"model": f"models/{_model_name(model)}", **inner}}


def decode_count_tokens_response(body: Mapping[str, Any]) -> int:
    """``totalTokens`` of a ``countTokens`` answer."""
    total = get(body, "totalTokens")
    if not isinstance(total, int) or isinstance(total, bool):
        raise upstream_error("countTokens answer has no totalTokens")
    return total


def encode_count_tokens_response(n: int) -> dict[str, Any]:
    """The ``countTokens`` answer for ``n`` tokens."""
    return {"totalTokens": n}

