"""Shared pieces of the Gemini codec: finish-reason and usage tables, key lookup (camelCase or
snake_case), function-name sanitising, deterministic tool-call ids and part conversion.

Used by `cliproxyd.formats.gemini` (requests, responses) and `_gemini_stream` (streams); see
the `gemini` module docstring for the mapping rules.  Pure: no I/O, no clock, no global state.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError, google_status_for
from cliproxyd.formats import ir

logger = logging.getLogger("cliproxyd.formats.gemini")

BYPASS_SIGNATURE = "skip_thought_signature_validator"

# ---------------------------------------------------------------------------------------------
# Tables: finish reasons and usage


_FINISH_TO_STOP = {
    "STOP": ir.StopReason.END_TURN,
    "MAX_TOKENS": ir.StopReason.MAX_TOKENS,
    "SAFETY": ir.StopReason.CONTENT_FILTER,
    "RECITATION": ir.StopReason.CONTENT_FILTER,
    "BLOCKLIST": ir.StopReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": ir.StopReason.CONTENT_FILTER,
    "SPII": ir.StopReason.CONTENT_FILTER,
    "IMAGE_SAFETY": ir.StopReason.CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": ir.StopReason.CONTENT_FILTER,
    "IMAGE_RECITATION": ir.StopReason.CONTENT_FILTER,
    "LANGUAGE": ir.StopReason.REFUSAL,  # the model declines an unsupported language
    "MALFORMED_FUNCTION_CALL": ir.StopReason.ERROR,
    "UNEXPECTED_TOOL_CALL": ir.StopReason.ERROR,
    "TOO_MANY_TOOL_CALLS": ir.StopReason.ERROR,
    "MISSING_THOUGHT_SIGNATURE": ir.StopReason.ERROR,
    "MALFORMED_RESPONSE": ir.StopReason.ERROR,
    "IMAGE_OTHER": ir.StopReason.ERROR,
    "NO_IMAGE": ir.StopReason.ERROR,
    "OTHER": ir.StopReason.ERROR,
    "FINISH_REASON_UNSPECIFIED": ir.StopReason.ERROR,
}

_STOP_TO_FINISH = {
    ir.StopReason.END_TURN: "STOP",
    ir.StopReason.STOP_SEQUENCE: "STOP",
    ir.StopReason.TOOL_USE: "STOP",
    ir.StopReason.PAUSE_TURN: "STOP",
    ir.StopReason.MAX_TOKENS: "MAX_TOKENS",
    ir.StopReason.CONTENT_FILTER: "SAFETY",
    ir.StopReason.REFUSAL: "SAFETY",
    ir.StopReason.ERROR: "OTHER",
}


def stop_reason_from_gemini(finish: str | None, has_tool_call: bool = False) -> ir.StopReason:
    """IR stop reason for a Gemini ``finishReason`` (a normal stop with a function call is
    TOOL_USE; an unknown reason is END_TURN)."""
    stop = _FINISH_TO_STOP.get(finish or "STOP", ir.StopReason.END_TURN)
    if has_tool_call and stop is ir.StopReason.END_TURN:
        return ir.StopReason.TOOL_USE
    return stop


def finish_reason_for(stop: ir.StopReason, native: str | None = None) -> str:
    """Gemini ``finishReason`` for an IR stop reason; a Gemini upstream's own word is kept."""
    if native in _FINISH_TO_STOP and native != "FINISH_REASON_UNSPECIFIED":
        return native
    return _STOP_TO_FINISH.get(stop, "STOP")


def usage_from_gemini(meta: Any) -> ir.Usage:
    """IR usage from ``usageMetadata``: output = candidates + thoughts, reasoning = thoughts,
    input = prompt (which includes cached content) + tool-use prompt."""
    if not isinstance(meta, ir.MAPPING):
        return ir.Usage()
    prompt, cands = _count(meta, "promptTokenCount"), _count(meta, "candidatesTokenCount")
    thoughts, tool = _count(meta, "thoughtsTokenCount"), _count(meta, "toolUsePromptTokenCount")
    output = None if cands is None and thoughts is None else (cands or 0) + (thoughts or 0)
    return ir.Usage(
        input_tokens=None if prompt is None and tool is None else (prompt or 0) + (tool or 0),
        output_tokens=output,
        cached_input_tokens=_count(meta, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
        total_tokens=_count(meta, "totalTokenCount"),
    )


def usage_to_gemini(usage: ir.Usage) -> dict[str, int]:
    """``usageMetadata`` for IR usage (candidates exclude thoughts; unreported counts are
    left out, as Gemini does for a blocked prompt)."""
    reasoning = usage.reasoning_tokens or 0
    out: dict[str, int] = {}
    if usage.input_tokens is not None:
        out["promptTokenCount"] = usage.input_tokens
    if usage.output_tokens is not None:
        out["candidatesTokenCount"] = max(0, usage.output_tokens - reasoning)
    out["totalTokenCount"] = usage.total
    if reasoning:
        out["thoughtsTokenCount"] = reasoning
    if usage.cached_input_tokens:
        out["cachedContentTokenCount"] = usage.cached_input_tokens
    return out


def _count(meta: Mapping[str, Any], key: str) -> int | None:
    value = get(meta, key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------------------
# Small helpers: key lookup, validation, names, ids


@functools.lru_cache(maxsize=512)
def _snake(key: str) -> str:
    # Cached: every field lookup tries the snake_case spelling, over a small fixed set of keys.
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


_ABSENT = object()


def get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` accepting the snake_case spelling too (the REST API takes both); one lookup
    when the key is there as spelled."""
    if not isinstance(obj, ir.MAPPING):
        return default
    value = obj.get(key, _ABSENT)
    if value is _ABSENT:
        return obj.get(_snake(key), default)
    return value


def render_error(error: ProxyError) -> dict[str, Any]:
    """Google's error body: ``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": error.status, "message": error.message,
                      "status": google_status_for(error.status)}}


def bad(message: str, param: str) -> ProxyError:
    return ProxyError(ErrorKind.INVALID_REQUEST, message, param=param)


def upstream_error(message: str) -> ProxyError:
    return ProxyError(ErrorKind.UPSTREAM_ERROR, f"invalid Gemini response: {message}")


_NAME_BAD = re.compile(r"[^A-Za-z0-9_.:-]")


def sanitize_function_name(name: str) -> str:
    """A name Gemini accepts (reference §4.0): ``[A-Za-z0-9_.:-]``, starting with a letter or
    ``_``, at most 64 characters."""
    out = _NAME_BAD.sub("_", name)
    if not out:
        return "_"
    if not (out[0].isascii() and (out[0].isalpha() or out[0] == "_")):
        out = "_" + out[:63]
    return out[:64]


def tool_name_map(request: ir.Request) -> dict[str, str]:
    """Sanitised → original function names for every tool and tool call of ``request``; pass it
    to `decode_response` / `StreamDecoder` to restore the client's names."""
    names = {tool.name for tool in request.tools}
    for msg in request.messages:
        names.update(p.name for p in msg.parts if isinstance(p, ir.ToolCallPart))
    return {sanitize_function_name(n): n for n in sorted(names) if sanitize_function_name(n) != n}


class CallIds:
    """Deterministic ids for calls and the pairing of function responses with them."""

    def __init__(self, salt: str = "") -> None:
        self.count = 0
        self.salt = salt  # see `answer_call_ids`
        self.pending: dict[str, list[str]] = {}

    def call(self, name: str, wire_id: Any) -> str:
        call_id = wire_id if isinstance(wire_id, str) and wire_id \
            else f"call_{name}_{self.salt}{self.count}"
        self.count += 1
        self.pending.setdefault(name, []).append(call_id)
        return call_id

    def result(self, name: str, wire_id: Any) -> str:
        queue = self.pending.get(name, [])
        if isinstance(wire_id, str) and wire_id:
            if wire_id in queue:
                queue.remove(wire_id)
            return wire_id
        if queue:
            return queue.pop(0)
        self.count += 1
        return f"call_{name}_{self.salt}{self.count - 1}"


def answer_call_ids(response_id: Any) -> CallIds:
    """Ids for the calls of one answer: ``call_<name>_<h>_<n>``, ``h`` from the answer's
    ``responseId``.  Counting from 0 in every answer alone would give the same id to calls of
    different turns, and clients need them unique across a conversation (Anthropic rejects a
    history whose tool_use ids repeat).  Deterministic: the same answer gets the same ids."""
    if not isinstance(response_id, str) or not response_id:
        return CallIds()
    return CallIds(hashlib.sha256(response_id.encode()).hexdigest()[:8] + "_")


# ---------------------------------------------------------------------------------------------
# Parts: wire → IR


PART_EXTRAS = ("thoughtSignature", "videoMetadata", "mediaResolution", "partMetadata")
# The snake_case spellings of the part fields read here.  A part with none of them (as Google's
# own clients and servers write parts) is read with plain dict lookups: `get` tries a second
# spelling for every absent field, and most fields of a part are absent.
_SNAKE_PART_KEYS = frozenset(_snake(k) for k in (
    *PART_EXTRAS, "inlineData", "fileData", "functionCall", "functionResponse"))


def _reader(part: Mapping[str, Any]) -> Callable[[str], Any]:
    """A field lookup for ``part`` (a mapping), as `get` does it."""
    if type(part) is dict and part.keys().isdisjoint(_SNAKE_PART_KEYS):
        return part.get
    return functools.partial(get, part)


def part_extras(part: Mapping[str, Any], wire_id: Any = None,
                field: Callable[[str], Any] | None = None) -> Mapping[str, Any]:
    field = field or _reader(part)
    extras = {k: v for k in PART_EXTRAS if (v := field(k)) is not None}
    if isinstance(wire_id, str) and wire_id:
        extras["id"] = wire_id
    return extras or ir.EMPTY


def _b64(data: Any, where: str, err) -> bytes:
    if not isinstance(data, str):
        raise err(f"{where}.data must be a base64 string", where)
    try:
        return base64.b64decode(data, validate=False, altchars=b"-_" if "-" in data or "_" in data
                                else None)
    except (binascii.Error, ValueError):
        raise err(f"{where}.data is not valid base64", where) from None


def _media_part(blob: Any, *, inline: bool, extras, where: str, err) -> ir.Part:
    if not isinstance(blob, ir.MAPPING):
        raise err(f"{where} must be an object", where)
    mime = get(blob, "mimeType")
    mime = mime if isinstance(mime, str) else None
    if inline:
        data = _b64(get(blob, "data"), where, err)
        if mime and mime.startswith("image/"):
            return ir.ImagePart(data=data, mime_type=mime, extras=extras)
        return ir.FilePart(data=data, mime_type=mime, extras=extras)
    uri = get(blob, "fileUri")
    if not isinstance(uri, str):
        raise err(f"{where}.fileUri must be a string", where)
    if mime and mime.startswith("image/"):
        return ir.ImagePart(url=uri, mime_type=mime, extras=extras)
    return ir.FilePart(url=uri, mime_type=mime, extras=extras)


def _call_part(call: Any, ids: CallIds, extras_of, names: Mapping[str, str], where: str,
               err) -> ir.ToolCallPart:
    wire_name = get(call, "name")
    if not isinstance(wire_name, str):  # (also when ``call`` is not an object)
        raise err(f"{where}.name must be a string", where)
    name = names.get(wire_name, wire_name)
    args = get(call, "args")
    args = args if isinstance(args, ir.MAPPING) else {}
    wire_id = get(call, "id")
    return ir.ToolCallPart(id=ids.call(name, wire_id), name=name,
                           arguments=jsontext.dumps(args),
                           extras=extras_of(wire_id))


def _result_part(resp: Any, ids: CallIds, extras_of, where: str, err=bad) -> ir.ToolResultPart:
    name = get(resp, "name")
    if not isinstance(name, str):  # (also when ``resp`` is not an object)
        raise err(f"{where}.name must be a string", where)
    body = get(resp, "response")
    body = body if isinstance(body, ir.MAPPING) else {}
    is_error = set(body) == {"error"}
    if set(body) in ({"result"}, {"error"}) and isinstance(next(iter(body.values())), str):
        text = next(iter(body.values()))  # the shape our encoder gives a plain-text result
    elif is_error:
        text = jsontext.dumps(body["error"])
    else:
        text = jsontext.dumps(body)
    content: list[ir.TextPart | ir.ImagePart] = [ir.TextPart(text)]
    for i, sub in enumerate(get(resp, "parts") or ()):
        blob = get(sub, "inlineData")
        if blob is not None:
            part = _media_part(blob, inline=True, extras=ir.EMPTY, where=f"{where}.parts[{i}]",
                               err=err)
            if isinstance(part, ir.ImagePart):
                content.append(part)
    wire_id = get(resp, "id")
    return ir.ToolResultPart(tool_call_id=ids.result(name, wire_id), content=tuple(content),
                             is_error=is_error, name=name, extras=extras_of(wire_id))


def decode_part(part: Any, ids: CallIds, where: str, *, names: Mapping[str, str] = ir.EMPTY,
                err=bad) -> ir.Part | None:
    """One wire part → IR part (None for kinds the IR does not model)."""
    if not isinstance(part, ir.MAPPING):
        raise err(f"{where} must be an object", where)
    field = _reader(part)
    text = field("text")
    if field("thought") is True:
        text = text or ""
        if not isinstance(text, str):
            raise err(f"{where}.text must be a string", where)
        signature = field("thoughtSignature")
        return ir.ThinkingPart(text=text, signature=signature if isinstance(signature, str)
                               else None, extras={"thought": True})
    if text is not None:
        if not isinstance(text, str):
            raise err(f"{where}.text must be a string", where)
        return ir.TextPart(text, extras=part_extras(part, field=field))
    if (blob := field("inlineData")) is not None:
        return _media_part(blob, inline=True, extras=part_extras(part, field=field),
                           where=f"{where}.inlineData", err=err)
    if (blob := field("fileData")) is not None:
        return _media_part(blob, inline=False, extras=part_extras(part, field=field),
                           where=f"{where}.fileData", err=err)
    if (call := field("functionCall")) is not None:
        return _call_part(call, ids, lambda i: part_extras(part, i, field), names,
                          f"{where}.functionCall", err)
    if (answer := field("functionResponse")) is not None:
        return _result_part(answer, ids, lambda i: part_extras(part, i, field),
                            f"{where}.functionResponse", err)
    logger.debug("gemini: dropping part of unmodelled kind %s", sorted(part))
    return None


# ---------------------------------------------------------------------------------------------
# Parts: IR → wire


def with_extras(wire: dict[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
    for key in PART_EXTRAS:
        if key in extras:
            wire[key] = extras[key]
    return wire


_EXT_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
             "webp": "image/webp", "heic": "image/heic", "heif": "image/heif",
             "pdf": "application/pdf"}


def encode_media(part: ir.ImagePart | ir.FilePart) -> dict[str, Any] | None:
    default = "image/png" if isinstance(part, ir.ImagePart) else "application/octet-stream"
    if part.data is not None:
        return {"inlineData": {"mimeType": part.mime_type or default,
                               "data": base64.b64encode(part.data).decode("ascii")}}
    file_id = part.file_id if isinstance(part, ir.FilePart) else None
    if file_id and not (file_id.startswith("files/") or "://" in file_id):
        file_id = None  # another provider's file id means nothing to Gemini
    url = part.url or file_id
    if not url:
        return None
    match = re.match(r"data:([^;,]+)?(;base64)?,(.*)$", url, re.S)
    if match and match.group(2):
        return {"inlineData": {"mimeType": match.group(1) or part.mime_type or default,
                               "data": match.group(3)}}
    mime = part.mime_type or _EXT_MIME.get(url.rsplit(".", 1)[-1].lower().split("?")[0])
    return {"fileData": {"mimeType": mime, "fileUri": url} if mime else {"fileUri": url}}


def encode_call(part: ir.ToolCallPart, *, upstream: bool) -> dict[str, Any]:
    try:
        args = jsontext.loads(part.arguments or "{}")
    except ValueError:
        logger.debug("gemini: tool call %s has invalid JSON arguments, sent as {}", part.id)
        args = {}
    call: dict[str, Any] = {"name": sanitize_function_name(part.name) if upstream else part.name,
                            "args": args if isinstance(args, dict) else {"value": args}}
    if not upstream or part.extras.get("id") == part.id:
        call["id"] = part.id
    wire = {"functionCall": call}
    if "thoughtSignature" in part.extras:
        wire["thoughtSignature"] = part.extras["thoughtSignature"]
    return wire


def response_part(part: ir.Part) -> list[dict[str, Any]]:
    """A part of an answer to a client (thinking from any provider is shown)."""
    if isinstance(part, ir.ThinkingPart):
        wire: dict[str, Any] = {"text": part.text, "thought": True}
        if part.signature:
            wire["thoughtSignature"] = part.signature
        return [wire]
    if isinstance(part, ir.ToolCallPart):
        return [encode_call(part, upstream=False)]
    if isinstance(part, ir.TextPart):
        return [with_extras({"text": part.text}, part.extras)]
    if isinstance(part, (ir.ImagePart, ir.FilePart)):
        media = encode_media(part)
        return [with_extras(media, part.extras)] if media else []
    logger.debug("gemini: %s not expressible in a response, dropped", type(part).__name__)
    return []
