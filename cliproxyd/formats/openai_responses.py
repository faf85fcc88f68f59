"""The OpenAI Responses codec (``POST /v1/responses``, its WebSocket, and the Codex upstream).

Owns the mapping between Responses bodies and the IR: requests (``input`` items, ``instructions``,
tools, ``text.format``, ``reasoning``), response objects, the error body, and `apply_turn`
(WebSocket conversation continuation).  Stream codecs live in `_openai_responses_stream`, the
shared tables (stop reasons, usage, output items, the echoed response object) in
`_openai_responses_common`.  Pure: no I/O, no clock, no module-level mutable state.

Mapping notes:
* ``instructions`` and ``system``/``developer`` input messages → `Request.system` (the latter
  tagged ``extras["role"]`` so a Responses encode puts them back as input messages).
* ``reasoning`` items → `ThinkingPart` (summary text, ``encrypted_content`` as signature) or
  `RedactedThinkingPart` (encrypted content only).  On encode only OpenAI-shaped encrypted
  content is sent back: other providers' signatures would be rejected.
* Stop sequences, seed, penalties and top_k have no Responses field: dropped with a debug log.
  Temperature and top_p from another format are dropped when reasoning is on (effort other than
  none, or a budget): OpenAI's reasoning models refuse them then (a Responses client's own
  combination is kept).
* The request is always encoded with ``stream: true`` (Codex only streams; the pipeline
  aggregates for non-stream clients).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import _openai_responses_common as common
from cliproxyd.formats import ir
from cliproxyd.formats import reasoning as levels
from cliproxyd.formats._openai_chat_common import openai_user
from cliproxyd.formats._openai_responses_common import render_error
from cliproxyd.formats._openai_responses_stream import StreamDecoder, StreamEncoder, StreamWatcher

__all__ = ["decode_request", "decode_request_head", "encode_request", "decode_response", "watch_response",
           "encode_response", "render_error", "StreamDecoder", "StreamEncoder", "StreamWatcher", "apply_turn",
           "stop_reason_from_wire", "status_for_stop", "usage_from_wire", "usage_to_wire"]

logger = logging.getLogger(__name__)

stop_reason_from_wire = common.stop_reason_from_wire
status_for_stop = common.status_for_stop
usage_from_wire = common.usage_from_wire
usage_to_wire = common.usage_to_wire

# Top-level request fields decode_request maps to IR fields; every other field goes to extras.
_MAPPED = frozenset({"model", "input", "instructions", "tools", "tool_choice",
                     "parallel_tool_calls", "max_output_tokens", "temperature", "top_p", "text",
                     "reasoning", "stream", "user", "metadata"})

# Extras restored on encode: Responses fields, some shared with OpenAI Chat under the same
# meaning (store, prompt_cache_key, safety_identifier, top_logprobs).  Chat's differently shaped
# stream_options is deliberately absent; service_tier is checked against Responses' values
# because Anthropic uses the same name for other ones.
_RESTORED_EXTRAS = ("background", "conversation", "context_management", "include",
                    "max_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
                    "prompt_cache_retention", "safety_identifier", "store", "top_logprobs",
                    "truncation")
_EFFORTS = ("none", "auto") + levels.LEVELS
_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")


def _bad(message: str, param: str) -> ProxyError:
    return ProxyError(ErrorKind.INVALID_REQUEST, message, param=param)


# ---------------------------------------------------------------------------------------------
# Request decoding


def decode_request_head(body: Mapping[str, Any], *, model: str | None = None) -> tuple[str, bool]:
    """(model, stream) of a Responses request body, checked as `decode_request` checks them:
    all a request passed through to a Responses upstream needs before it is sent."""
    if not isinstance(body, ir.MAPPING):
        raise _bad("request body must be a JSON object", "body")
    model = model or body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("you must provide a model parameter", "model")
    return model, bool(_opt(body, "stream", bool))


def decode_request(body: Mapping[str, Any], *, model: str | None = None) -> ir.Request:
    """A Responses request body → IR.  Raises ProxyError(invalid_request) for a bad body."""
    model, stream = decode_request_head(body, model=model)
    raw_input = body.get("input")
    system, messages = _decode_input([] if raw_input is None else raw_input)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad("instructions must be a string", "instructions")
    if instructions:
        system.insert(0, ir.TextPart(instructions))
    tools, hosted = _decode_tools(body.get("tools"))
    extras = {k: v for k, v in body.items() if k not in _MAPPED}
    if hosted:
        extras["tools"] = hosted
    tool_choice = _decode_tool_choice(body.get("tool_choice"), extras)
    response_format = _decode_text(body.get("text"), extras)
    reasoning = _decode_reasoning(body.get("reasoning"), extras)
    return ir.Request(
        model=model, messages=tuple(messages), system=tuple(system), tools=tuple(tools),
        tool_choice=tool_choice,
        parallel_tool_calls=_opt(body, "parallel_tool_calls", bool),
        max_output_tokens=_opt(body, "max_output_tokens", int),
        temperature=_opt_number(body, "temperature"), top_p=_opt_number(body, "top_p"),
        response_format=response_format, reasoning=reasoning,
        stream=stream, user=_opt(body, "user", str),
        metadata=dict(_opt(body, "metadata", Mapping) or {}), extras=extras)


def _opt(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad(f"{key} must be of type {kind.__name__}", key)
    return value


def _opt_number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"{key} must be a number", key)
    return value


def _decode_input(raw: Any) -> tuple[list[ir.TextPart], list[ir.Message]]:
    """(system parts, messages) for ``input``: a string or a list of items."""
    if isinstance(raw, str):
        return [], [ir.Message("user", (ir.TextPart(raw),))]
    if not isinstance(raw, list):
        raise _bad("input must be a string or an array of items", "input")
    builder = _MessageBuilder()
    for i, item in enumerate(raw):
        if not isinstance(item, ir.MAPPING):
            raise _bad("input items must be objects", f"input[{i}]")
        builder.add(item, f"input[{i}]")
    return builder.system, builder.messages


class _MessageBuilder:
    """Groups input items into IR messages: a role change, or a ``message`` item following a
    ``message`` item, starts a new message; calls/outputs/reasoning join their neighbours."""

    def __init__(self) -> None:
        self.system: list[ir.TextPart] = []
        self.messages: list[ir.Message] = []
        self._last_was_message = False
        self._call_names: dict[str, str] = {}

    def add(self, item: Mapping[str, Any], param: str) -> None:
        """Fold one input item into the messages (or the system parts)."""
        kind = item.get("type", "message" if "role" in item else None)
        if not isinstance(kind, str):
            raise _bad("input items need a string type", f"{param}.type")
        if kind == "message":
            self._message(item, param)
            return
        handler = {
            "function_call": self._function_call, "custom_tool_call": self._function_call,
            "function_call_output": self._call_output,
            "custom_tool_call_output": self._call_output, "reasoning": self._reasoning,
        }.get(kind)
        if handler is None:
            logger.debug("responses input item type %r has no IR form; dropped", kind)
            return
        handler(item, param)

    def _append(self, role: str, parts: list[ir.Part], new: bool,
                extras: Mapping[str, Any] = ir.EMPTY) -> None:
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == role and not new:
            self.messages[-1] = ir.Message(role, last.parts + tuple(parts), last.extras)
        else:
            self.messages.append(ir.Message(role, tuple(parts), extras))

    def _message(self, item: Mapping[str, Any], param: str) -> None:
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise _bad(f"invalid role {role!r}", f"{param}.role")
        parts = _decode_content(item.get("content"), f"{param}.content")
        if role in ("system", "developer"):
            self.system.extend(ir.TextPart(p.text, extras={"role": role})
                               for p in parts if isinstance(p, ir.TextPart))
            return
        extras = {"phase": item["phase"]} if isinstance(item.get("phase"), str) else ir.EMPTY
        if role == "assistant" and isinstance(item.get("id"), str) and parts \
                and isinstance(parts[0], ir.TextPart):
            parts[0] = ir.TextPart(parts[0].text, extras={**parts[0].extras, "id": item["id"]})
        self._append(role, parts, new=self._last_was_message, extras=extras)
        self._last_was_message = True

    def _function_call(self, item: Mapping[str, Any], param: str) -> None:
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise _bad("function_call items need string call_id and name", param)
        extras: dict[str, Any] = {}
        if isinstance(item.get("id"), str):
            extras["id"] = item["id"]
        if item.get("type") == "custom_tool_call":
            extras["type"] = "custom_tool_call"
            arguments = common.dumps({"input": item.get("input", "")})
        else:
            arguments = item.get("arguments", "{}")
            if not isinstance(arguments, str):
                raise _bad("function_call arguments must be a string", f"{param}.arguments")
        self._call_names[call_id] = name
        self._append("assistant", [ir.ToolCallPart(call_id, name, arguments, extras=extras)],
                     new=False)
        self._last_was_message = False

    def _call_output(self, item: Mapping[str, Any], param: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            raise _bad("function_call_output items need a string call_id", f"{param}.call_id")
        output = item.get("output", "")
        if isinstance(output, str):
            content: tuple = (ir.TextPart(output),)
        elif isinstance(output, list):
            content = tuple(p for p in _decode_content(output, f"{param}.output")
                            if isinstance(p, (ir.TextPart, ir.ImagePart)))
        else:
            raise _bad("function_call_output output must be a string or an array",
                       f"{param}.output")
        extras = {"type": item["type"]} if item.get("type") != "function_call_output" else {}
        part = ir.ToolResultPart(call_id, content, name=self._call_names.get(call_id),
                                 extras=extras)
        self._append("user", [part], new=False)
        self._last_was_message = False

    def _reasoning(self, item: Mapping[str, Any], param: str) -> None:
        parts = common.parts_from_reasoning_item(item)
        if parts:
            self._append("assistant", list(parts), new=False)
        self._last_was_message = False


def _decode_content(content: Any, param: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.TextPart(content)]
    if not isinstance(content, list):
        raise _bad("content must be a string or an array of parts", param)
    parts: list[ir.Part] = []
    for i, raw in enumerate(content):
        if not isinstance(raw, ir.MAPPING):
            raise _bad("content parts must be objects", f"{param}[{i}]")
        part = _decode_part(raw, f"{param}[{i}]")
        if part is not None:
            parts.append(part)
    return parts


def _decode_part(raw: Mapping[str, Any], param: str) -> ir.Part | None:
    kind = raw.get("type")
    if kind in ("input_text", "output_text", "text", "summary_text"):
        if not isinstance(raw.get("text"), str):
            raise _bad("text parts need a string text", f"{param}.text")
        extras = {}
        if isinstance(raw.get("annotations"), list) and raw["annotations"]:
            extras["annotations"] = list(raw["annotations"])
        return ir.TextPart(raw["text"], extras=extras)
    if kind == "refusal" and isinstance(raw.get("refusal"), str):
        return ir.TextPart(raw["refusal"], extras={"type": "refusal"})
    if kind == "input_image":
        return _decode_image(raw, param)
    if kind == "input_file":
        return _decode_file(raw, param)
    logger.debug("responses content part %r has no IR form; dropped", kind)
    return None


def _decode_image(raw: Mapping[str, Any], param: str) -> ir.Part:
    # "auto" is the API default and what encode writes: keep only a real choice.
    detail = raw.get("detail")
    extras = {"detail": detail} if isinstance(detail, str) and detail != "auto" else {}
    url = raw.get("image_url")
    if isinstance(url, str) and url:
        inline = common.parse_data_url(url, f"{param}.image_url")
        if inline is not None:
            return ir.ImagePart(data=inline[0], mime_type=inline[1], extras=extras)
        return ir.ImagePart(url=url, extras=extras)
    if isinstance(raw.get("file_id"), str):
        # An uploaded image only the provider knows: a file reference in the IR.
        return ir.FilePart(file_id=raw["file_id"], extras={**extras, "type": "input_image"})
    raise _bad("input_image needs image_url or file_id", param)


def _decode_file(raw: Mapping[str, Any], param: str) -> ir.FilePart:
    filename = raw.get("filename") if isinstance(raw.get("filename"), str) else None
    if isinstance(raw.get("file_data"), str):
        inline = common.parse_data_url(raw["file_data"], f"{param}.file_data")
        if inline is None:
            raise _bad("file_data must be a base64 data URL", f"{param}.file_data")
        return ir.FilePart(data=inline[0], mime_type=inline[1], filename=filename)
    if isinstance(raw.get("file_url"), str):
        return ir.FilePart(url=raw["file_url"], filename=filename)
    if isinstance(raw.get("file_id"), str):
        return ir.FilePart(file_id=raw["file_id"], filename=filename)
    raise _bad("input_file needs file_data, file_url or file_id", param)


def _decode_tools(raw: Any) -> tuple[list[ir.Tool], list[dict[str, Any]]]:
    """(function tools, other tools kept verbatim for a Responses upstream)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise _bad("tools must be an array", "tools")
    tools, hosted = [], []
    for i, t in enumerate(raw):
        if not isinstance(t, ir.MAPPING) or not isinstance(t.get("type"), str):
            raise _bad("each tool must be an object with a type", f"tools[{i}]")
        if t["type"] != "function":
            hosted.append(dict(t))
            continue
        fn = t["function"] if isinstance(t.get("function"), ir.MAPPING) else t  # Chat shape, leniently
        name, params = fn.get("name"), fn.get("parameters")
        if not isinstance(name, str) or not name:
            raise _bad("function tools need a name", f"tools[{i}].name")
        if params is not None and not isinstance(params, ir.MAPPING):
            raise _bad("function parameters must be an object", f"tools[{i}].parameters")
        desc = fn.get("description") if isinstance(fn.get("description"), str) else None
        extras = {"strict": fn["strict"]} if isinstance(fn.get("strict"), bool) else {}
        tools.append(ir.Tool(name, desc, params, extras=extras))
    return tools, hosted


def _decode_tool_choice(raw: Any, extras: dict[str, Any]) -> ir.ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in ("auto", "none", "required"):
            raise _bad(f"invalid tool_choice {raw!r}", "tool_choice")
        return ir.ToolChoice(raw)
    if isinstance(raw, ir.MAPPING) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        return ir.ToolChoice("tool", raw["name"])
    if isinstance(raw, ir.MAPPING):
        extras["tool_choice"] = dict(raw)  # allowed_tools, hosted tools: Responses-only
        return None
    raise _bad("tool_choice must be a string or an object", "tool_choice")


def _decode_text(raw: Any, extras: dict[str, Any]) -> ir.ResponseFormat | None:
    if raw is None:
        return None
    if not isinstance(raw, ir.MAPPING):
        raise _bad("text must be an object", "text")
    rest = {k: v for k, v in raw.items() if k != "format"}
    if rest:
        extras["text"] = rest  # verbosity etc.
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, ir.MAPPING) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise _bad("text.format.type must be text, json_object or json_schema", "text.format")
    if fmt["type"] != "json_schema":
        return ir.ResponseFormat(fmt["type"])
    if not isinstance(fmt.get("schema"), ir.MAPPING):
        raise _bad("json_schema format needs a schema object", "text.format.schema")
    return ir.ResponseFormat("json_schema", schema=fmt["schema"],
                             name=fmt.get("name") if isinstance(fmt.get("name"), str) else None,
                             strict=fmt.get("strict") if isinstance(fmt.get("strict"), bool) else None)


def _decode_reasoning(raw: Any, extras: dict[str, Any]) -> ir.Reasoning | None:
    if raw is None:
        return None
    if not isinstance(raw, ir.MAPPING):
        raise _bad("reasoning must be an object", "reasoning")
    effort = raw.get("effort")
    # Other codecs turn the level into budgets (formats.reasoning): only known levels pass.
    if effort is not None and effort not in _EFFORTS:
        raise _bad(f"invalid reasoning.effort {effort!r}", "reasoning.effort")
    summary = raw.get("summary", raw.get("generate_summary"))
    include = True if summary in ("auto", "detailed", "concise") else None
    if summary == "none":
        include = False
    extras["reasoning"] = dict(raw)  # summary style, mode, context: restored for Responses
    if effort is None and include is None:
        return None
    return ir.Reasoning(effort=effort, include_thoughts=include)


# ---------------------------------------------------------------------------------------------
# Request encoding


def encode_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """IR → a Responses request body for ``model`` (always ``stream: true``)."""
    _log_dropped(request)
    body: dict[str, Any] = {"model": model}
    body["instructions"] = "\n\n".join(p.text for p in request.system
                                       if p.extras.get("role") not in ("system", "developer"))
    body["input"] = [{"type": "message", "role": p.extras["role"],
                      "content": [{"type": "input_text", "text": p.text}]}
                     for p in request.system if p.extras.get("role") in ("system", "developer")]
    for message in request.messages:
        body["input"].extend(_encode_message(message))
    tools = common.tools_to_wire(request)
    if tools:
        body["tools"] = tools
    choice = common.tool_choice_to_wire(request)
    if choice is not None:
        body["tool_choice"] = choice
    _set_scalars(body, request)
    body["stream"] = True
    # A proxy keeps no server-side state: ask for encrypted reasoning so the next turn can
    # send it back, unless the Responses client chose storage itself.
    body.setdefault("store", False)
    if body["store"] is False:
        include = list(body.get("include") or [])
        if "reasoning.encrypted_content" not in include:
            include.append("reasoning.encrypted_content")
        body["include"] = include
    return body


def _log_dropped(request: ir.Request) -> None:
    for name in ("top_k", "seed", "presence_penalty", "frequency_penalty"):
        if getattr(request, name) is not None:
            logger.debug("responses has no %s; dropped", name)
    if request.stop:
        logger.debug("responses has no stop sequences; dropped %d", len(request.stop))


def _foreign_thinking(request: ir.Request) -> bool:
    """Reasoning is on and was not set by a Responses client (whose ``reasoning`` object this
    codec keeps in extras): its sampling settings are then not meant for an OpenAI model."""
    r = request.reasoning
    on = r is not None and r.effort != "none" and r.budget != 0 \
        and (r.effort is not None or r.budget is not None)
    return on and not isinstance(request.extras.get("reasoning"), ir.MAPPING)


def _set_scalars(body: dict[str, Any], request: ir.Request) -> None:
    for key in ("parallel_tool_calls", "max_output_tokens", "temperature", "top_p", "user"):
        if getattr(request, key) is None:
            continue
        if key in ("temperature", "top_p") and _foreign_thinking(request):
            # OpenAI reasoning models refuse sampling settings while they reason
            # ("Unsupported parameter: 'temperature'"); Gemini CLI always sends both.
            logger.debug("responses: %s dropped while reasoning is on", key)
            continue
        body[key] = getattr(request, key)
    if "user" in body:
        body["user"] = openai_user(body["user"])
    text = common.text_to_wire(request)
    if text:
        body["text"] = text
    reasoning = common.reasoning_to_wire(request)
    if reasoning:
        body["reasoning"] = reasoning
    if request.metadata:
        if all(isinstance(v, str) for v in request.metadata.values()):
            body["metadata"] = dict(request.metadata)
        else:
            logger.debug("responses metadata values must be strings; metadata dropped")
    for key in _RESTORED_EXTRAS:
        if key in request.extras:
            body[key] = copy.deepcopy(request.extras[key])
    if not isinstance(body.get("context_management", []), list):
        del body["context_management"]  # Anthropic's object form (Claude Code): not ours
    if request.extras.get("service_tier") in _SERVICE_TIERS:
        body["service_tier"] = request.extras["service_tier"]


def _encode_message(message: ir.Message) -> list[dict[str, Any]]:
    """Input items for one IR message, in part order (content runs become message items)."""
    items: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    run_id: str | None = None

    def flush() -> None:
        nonlocal run, run_id
        if run:
            item = {"type": "message", "role": message.role, "content": run}
            if run_id:
                item["id"] = run_id
            if isinstance(message.extras.get("phase"), str):
                item["phase"] = message.extras["phase"]
            items.append(item)
        run, run_id = [], None

    for part in message.parts:
        own = part.extras.get("id")
        if isinstance(part, ir.TextPart) and isinstance(own, str) and own.startswith("msg_"):
            flush()
            run_id = own
        if message.role == "assistant" and isinstance(part, (ir.ImagePart, ir.FilePart)):
            logger.debug("responses assistant messages carry no images or files; dropped")
            continue
        content = _encode_content_part(part, message.role)
        if content is not None:
            run.append(content)
            continue
        item = _encode_item_part(part)
        if item is not None:
            flush()
            items.append(item)
    flush()
    return items


def _encode_content_part(part: ir.Part, role: str) -> dict[str, Any] | None:
    if isinstance(part, ir.TextPart):
        if role == "assistant":
            if part.extras.get("type") == "refusal":
                return {"type": "refusal", "refusal": part.text}
            return {"type": "output_text", "text": part.text,
                    "annotations": list(part.extras.get("annotations") or [])}
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ir.ImagePart):
        return _encode_image(part)
    if isinstance(part, ir.FilePart):
        return _encode_file(part)
    return None


def _encode_image(part: ir.ImagePart) -> dict[str, Any] | None:
    detail = part.extras.get("detail") if isinstance(part.extras.get("detail"), str) else "auto"
    if part.data is not None:
        return {"type": "input_image", "image_url": common.data_url(part.data, part.mime_type),
                "detail": detail}
    if part.url:
        return {"type": "input_image", "image_url": part.url, "detail": detail}
    logger.debug("image part without data or url; dropped")
    return None


def _encode_file(part: ir.FilePart) -> dict[str, Any] | None:
    if part.extras.get("type") == "input_image" and part.file_id:
        detail = part.extras.get("detail") if isinstance(part.extras.get("detail"), str) else "auto"
        return {"type": "input_image", "file_id": part.file_id, "detail": detail}
    out: dict[str, Any] = {"type": "input_file"}
    if part.data is not None:
        out["file_data"] = common.data_url(part.data, part.mime_type)
    elif part.file_id:
        out["file_id"] = part.file_id
    elif part.url:
        out["file_url"] = part.url
    else:
        logger.debug("file part without data, id or url; dropped")
        return None
    if part.filename:
        out["filename"] = part.filename
    elif part.data is not None:
        out["filename"] = "file.pdf" if part.mime_type == "application/pdf" else "file"
    return out


def _encode_item_part(part: ir.Part) -> dict[str, Any] | None:
    if isinstance(part, ir.ToolCallPart):
        return _encode_tool_call(part)
    if isinstance(part, ir.ToolResultPart):
        return _encode_tool_result(part)
    if isinstance(part, (ir.ThinkingPart, ir.RedactedThinkingPart)):
        return _encode_reasoning(part)
    logger.debug("responses input cannot carry a %s part; dropped", type(part).__name__)
    return None


def _call_id(call_id: str) -> str:
    """``call_id`` if the API takes it (at most 64 characters, "string too long" otherwise),
    else a stable stand-in; a call and its output map alike."""
    if len(call_id) <= 64:
        return call_id
    return "call_" + hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:40]


def _encode_tool_call(part: ir.ToolCallPart) -> dict[str, Any]:
    own = part.extras.get("id")
    if part.extras.get("type") == "custom_tool_call":
        item: dict[str, Any] = {"type": "custom_tool_call", "call_id": _call_id(part.id),
                                "name": part.name, "input": _custom_input(part.arguments)}
    else:
        item = {"type": "function_call", "call_id": _call_id(part.id), "name": part.name,
                "arguments": part.arguments}
    if isinstance(own, str) and own.startswith(("fc_", "ctc_")):
        item["id"] = own
    return item


def _custom_input(arguments: str) -> str:
    try:
        value = jsontext.loads(arguments)
    except ValueError:
        return arguments
    return value["input"] if isinstance(value, dict) and isinstance(value.get("input"), str) \
        else arguments


def _encode_tool_result(part: ir.ToolResultPart) -> dict[str, Any]:
    if part.is_error:
        logger.debug("responses function_call_output has no error flag; sent as plain output")
    if all(isinstance(c, ir.TextPart) for c in part.content):
        # Several text blocks (an Anthropic tool_result list) are lines, not one run-on word.
        output: Any = "\n".join(c.text for c in part.content)
    else:
        output = [c for c in (_encode_content_part(c, "user") for c in part.content) if c]
    kind = part.extras.get("type") if part.extras.get("type") == "custom_tool_call_output" \
        else "function_call_output"
    return {"type": kind, "call_id": _call_id(part.tool_call_id), "output": output}


def _encode_reasoning(part: ir.ThinkingPart | ir.RedactedThinkingPart) -> dict[str, Any] | None:
    blob = part.signature if isinstance(part, ir.ThinkingPart) else part.data
    own = part.extras.get("id")
    # A stored item referenced by id alone is fine; another provider's signature (a Claude
    # thought relayed to a Responses client and sent back) would be rejected upstream.
    stored_ref = not blob and isinstance(own, str) and own.startswith("rs_")
    if not (common.looks_like_openai_encrypted(blob) or stored_ref):
        logger.debug("reasoning without OpenAI encrypted content; dropped from input")
        return None
    item: dict[str, Any] = {"type": "reasoning", "id": common.reasoning_item_id(part, blob or ""),
                            "summary": []}
    if isinstance(part, ir.ThinkingPart) and part.text:
        summaries = part.extras.get("summary")
        texts = summaries if isinstance(summaries, list) else [part.text]
        item["summary"] = [{"type": "summary_text", "text": t} for t in texts]
    if blob:
        item["encrypted_content"] = blob
    return item


# ---------------------------------------------------------------------------------------------
# Responses


def _check_response(body: Any) -> None:
    if not isinstance(body, ir.MAPPING):
        raise ProxyError(ErrorKind.UPSTREAM_ERROR, "upstream response is not a JSON object")


def watch_response(body: Mapping[str, Any]) -> ir.Usage:
    """Passthrough: the usage of an upstream ``response`` object that goes to the client as it
    came, checked as `decode_response` checks it; its output items are the client's to read."""
    _check_response(body)
    return common.usage_from_wire(body.get("usage"))


def decode_response(body: Mapping[str, Any]) -> ir.Response:
    """A Responses ``response`` object → IR (a ``failed`` one becomes stop reason ERROR)."""
    _check_response(body)
    parts = common.parts_from_output(body.get("output"))
    details = body.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, ir.MAPPING) else None
    has_call = any(isinstance(p, ir.ToolCallPart) for p in parts)
    stop, native = common.stop_reason_from_wire(body.get("status"), reason, has_call)
    extras = {k: body[k] for k in ("service_tier", "error") if body.get(k) is not None}
    return ir.Response(id=str(body.get("id") or ""), model=str(body.get("model") or ""),
                       parts=tuple(parts), stop_reason=stop, native_stop_reason=native,
                       usage=common.usage_from_wire(body.get("usage")), extras=extras)


def encode_response(response: ir.Response, ctx: ir.EncodeContext) -> dict[str, Any]:
    """IR → a Responses ``response`` object (echoing ``ctx.request``)."""
    resp_id = response.id if response.id.startswith("resp_") else ctx.response_id
    status, reason = common.status_for_stop(response.stop_reason)
    error = None
    if status == "failed":
        raw = response.extras.get("error")
        error = dict(raw) if isinstance(raw, ir.MAPPING) else \
            {"code": "server_error", "message": "The model failed to generate a response."}
    return common.response_object(ctx, resp_id, status,
                                  common.output_items(response.parts, resp_id), response.usage,
                                  incomplete_reason=reason, error=error)


# ---------------------------------------------------------------------------------------------
# WebSocket continuation


def apply_turn(previous_request_body: Mapping[str, Any], previous_output_items: list,
               new_body: Mapping[str, Any]) -> dict[str, Any]:
    """The stateless request for a follow-up turn: previous input + previous output + new input.

    ``model`` and ``instructions`` are inherited when ``new_body`` has none;
    ``previous_response_id`` is removed (the transcript replaces it); items of the new input
    whose ``id`` (or a function call's ``call_id``) is already in the transcript are skipped,
    since clients may resend them.  A ``type`` such as ``response.create`` is removed.  Pure:
    the arguments are not modified.
    """
    body = copy.deepcopy(dict(new_body))
    if str(body.get("type", "")).startswith("response."):
        body.pop("type")
    body.pop("previous_response_id", None)
    for key in ("model", "instructions"):
        if body.get(key) is None and previous_request_body.get(key) is not None:
            body[key] = copy.deepcopy(previous_request_body[key])
    transcript = _as_items(previous_request_body.get("input")) + \
        copy.deepcopy([i for i in previous_output_items if isinstance(i, ir.MAPPING)])
    seen = {_identity(i) for i in transcript} - {None}
    for item in _as_items(body.get("input")):
        if _identity(item) is None or _identity(item) not in seen:
            transcript.append(item)
    body["input"] = transcript
    return body


def _as_items(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return copy.deepcopy([i for i in raw if isinstance(i, ir.MAPPING)]) if isinstance(raw, list) else []


def _identity(item: Mapping[str, Any]) -> tuple[str, str] | None:
    if item.get("type") in ("function_call", "custom_tool_call") and isinstance(item.get("call_id"), str):
        return ("call", item["call_id"])
    return ("id", item["id"]) if isinstance(item.get("id"), str) else None
