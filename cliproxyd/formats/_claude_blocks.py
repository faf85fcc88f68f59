"""Anthropic Messages content blocks ↔ IR parts, and the stop-reason, usage and error tables.

Private helper of `cliproxyd.formats.claude` (shared by its request, response and stream code).
Pure: no I/O, no clock, no module-level mutable state.

Blocks the IR does not model (``server_tool_use``, ``web_search_tool_result``, ``search_result``,
``container_upload`` ...) are kept, with their position, in the owning object's ``extras`` under
``UNMODELLED`` so that a Claude → Claude trip through the IR restores them where they were; other
codecs ignore that key.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from cliproxyd import jsontext
from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir
from cliproxyd.formats._openai_responses_common import looks_like_openai_encrypted

logger = logging.getLogger("cliproxyd.formats.claude")

UNMODELLED = "unmodelled_blocks"

# Keys of a block that the IR carries in `extras` (so a Claude encode can restore them).
_TEXT_EXTRAS = ("cache_control", "citations")
_MEDIA_EXTRAS = ("cache_control", "citations", "context", "transformations")
_TOOL_USE_EXTRAS = ("cache_control", "caller")
_RESULT_EXTRAS = ("cache_control", "toolset_name")
_ID_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def bad(message: str, param: str | None = None) -> ProxyError:
    """An invalid_request error for a client body."""
    return ProxyError(ErrorKind.INVALID_REQUEST, message, param=param)


def freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """An immutable extras mapping (the shared empty one when there is nothing)."""
    return MappingProxyType(dict(mapping)) if mapping else ir.EMPTY


def pick(block: Mapping[str, Any], keys: Sequence[str]) -> Mapping[str, Any]:
    """The ``keys`` of ``block`` that are present, frozen."""
    return freeze({k: block[k] for k in keys if k in block})


def compact_json(value: Any) -> str:
    """JSON text as the IR convention writes it."""
    return jsontext.dumps(value)


def safe_tool_id(tool_id: str) -> str:
    """Anthropic requires ``^[a-zA-Z0-9_-]+$`` ids; map other characters deterministically."""
    return _ID_BAD_CHARS.sub("_", tool_id) or "toolu_0"


# ---------------------------------------------------------------------------------------------
# Stop reasons and usage (one table each, issue 3 point 4)

STOP_FROM_CLAUDE: Mapping[str, ir.StopReason] = MappingProxyType({
    "end_turn": ir.StopReason.END_TURN,
    "max_tokens": ir.StopReason.MAX_TOKENS,
    "stop_sequence": ir.StopReason.STOP_SEQUENCE,
    "tool_use": ir.StopReason.TOOL_USE,
    "refusal": ir.StopReason.REFUSAL,
    "pause_turn": ir.StopReason.PAUSE_TURN,
    "model_context_window_exceeded": ir.StopReason.MAX_TOKENS,
})

STOP_TO_CLAUDE: Mapping[ir.StopReason, str] = MappingProxyType({
    ir.StopReason.END_TURN: "end_turn",
    ir.StopReason.MAX_TOKENS: "max_tokens",
    ir.StopReason.STOP_SEQUENCE: "stop_sequence",
    ir.StopReason.TOOL_USE: "tool_use",
    ir.StopReason.CONTENT_FILTER: "refusal",
    ir.StopReason.REFUSAL: "refusal",
    ir.StopReason.PAUSE_TURN: "pause_turn",
    ir.StopReason.ERROR: "end_turn",
})


def stop_from_claude(value: Any) -> ir.StopReason:
    """IR stop reason for Anthropic's ``stop_reason`` (unknown or null → end_turn)."""
    return STOP_FROM_CLAUDE.get(value, ir.StopReason.END_TURN) if isinstance(value, str) \
        else ir.StopReason.END_TURN


def stop_to_claude(reason: ir.StopReason, native: str | None, saw_tool_call: bool) -> str:
    """Anthropic ``stop_reason`` for an IR stop: a turn that called tools ends in ``tool_use``
    (Gemini says STOP there); ``model_context_window_exceeded`` survives a Claude round trip."""
    if reason is ir.StopReason.END_TURN and saw_tool_call:
        return "tool_use"
    if reason is ir.StopReason.MAX_TOKENS and native == "model_context_window_exceeded":
        return native
    return STOP_TO_CLAUDE[reason]


def _count(usage: Mapping[str, Any], key: str) -> int | None:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from_claude(usage: Any) -> ir.Usage:
    """Anthropic usage → IR (OpenAI meaning: input includes cache reads and cache writes)."""
    if not isinstance(usage, ir.MAPPING):
        return ir.Usage()
    raw_input = _count(usage, "input_tokens")
    read = _count(usage, "cache_read_input_tokens")
    creation = _count(usage, "cache_creation_input_tokens")
    output = _count(usage, "output_tokens")
    details = usage.get("output_tokens_details")
    reasoning = _count(details, "thinking_tokens") if isinstance(details, ir.MAPPING) else None
    total_input = None
    if raw_input is not None or read is not None or creation is not None:
        total_input = (raw_input or 0) + (read or 0) + (creation or 0)
    total = None if total_input is None and output is None else (total_input or 0) + (output or 0)
    return ir.Usage(input_tokens=total_input, output_tokens=output, cached_input_tokens=read,
                    cache_creation_tokens=creation, reasoning_tokens=reasoning, total_tokens=total)


def usage_to_claude(usage: ir.Usage, *, with_input: bool = True) -> dict[str, Any]:
    """IR usage → Anthropic: ``input_tokens`` = input − cached − creation (floor 0); cache
    fields only when reported.  ``output_tokens`` is always present (0 if unknown)."""
    out: dict[str, Any] = {}
    if with_input:
        cached, creation = usage.cached_input_tokens or 0, usage.cache_creation_tokens or 0
        out["input_tokens"] = max(0, (usage.input_tokens or 0) - cached - creation)
        if usage.cache_creation_tokens is not None:
            out["cache_creation_input_tokens"] = usage.cache_creation_tokens
        if usage.cached_input_tokens is not None:
            out["cache_read_input_tokens"] = usage.cached_input_tokens
    out["output_tokens"] = usage.output_tokens or 0
    return out


# Anthropic error.type → (kind, status) for upstream errors (in-stream and bodies).
ERROR_FROM_CLAUDE: Mapping[str, tuple[ErrorKind, int]] = MappingProxyType({
    "invalid_request_error": (ErrorKind.INVALID_REQUEST, 400),
    "authentication_error": (ErrorKind.AUTHENTICATION, 401),
    "billing_error": (ErrorKind.PERMISSION, 402),
    "permission_error": (ErrorKind.PERMISSION, 403),
    "not_found_error": (ErrorKind.NOT_FOUND, 404),
    "request_too_large": (ErrorKind.PAYLOAD_TOO_LARGE, 413),
    "rate_limit_error": (ErrorKind.RATE_LIMITED, 429),
    "api_error": (ErrorKind.UPSTREAM_ERROR, 500),
    "timeout_error": (ErrorKind.UPSTREAM_TIMEOUT, 504),
    # Anthropic answers 529; 503 is the standard status every client format understands.
    "overloaded_error": (ErrorKind.UPSTREAM_UNAVAILABLE, 503),
})


def error_from_claude(body: Any) -> ProxyError:
    """ProxyError for an Anthropic error object ``{"type":"error","error":{type,message}}``."""
    err = body.get("error") if isinstance(body, ir.MAPPING) else None
    err = err if isinstance(err, ir.MAPPING) else {}
    etype, message = err.get("type"), err.get("message")
    kind, status = ERROR_FROM_CLAUDE.get(etype, (ErrorKind.UPSTREAM_ERROR, 502)) \
        if isinstance(etype, str) else (ErrorKind.UPSTREAM_ERROR, 502)
    text = message if isinstance(message, str) and message else f"upstream error ({etype})"
    return ProxyError(kind, text, status=status)


# ---------------------------------------------------------------------------------------------
# Decoding blocks (client requests and upstream responses)


def _b64(data: Any, param: str) -> bytes:
    if not isinstance(data, str):
        raise bad(f"{param}: base64 data must be a string", param)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{param}: invalid base64 data", param) from None


def _source(block: Mapping[str, Any], param: str) -> Mapping[str, Any]:
    source = block.get("source")
    if not isinstance(source, ir.MAPPING) or not isinstance(source.get("type"), str):
        raise bad(f"{param}.source: an object with a type is required", f"{param}.source")
    return source


def _decode_image(block: Mapping[str, Any], param: str) -> ir.ImagePart:
    source, extras = _source(block, param), dict(pick(block, _MEDIA_EXTRAS))
    stype = source["type"]
    if stype == "base64":
        return ir.ImagePart(data=_b64(source.get("data"), f"{param}.source.data"),
                            mime_type=_str(source, "media_type", param), extras=freeze(extras))
    if stype == "url":
        return ir.ImagePart(url=_str(source, "url", param), extras=freeze(extras))
    extras["source"] = dict(source)  # file ids and future sources: Claude-only
    return ir.ImagePart(extras=freeze(extras))


def _decode_document(block: Mapping[str, Any], param: str) -> ir.FilePart:
    source, extras = _source(block, param), dict(pick(block, _MEDIA_EXTRAS))
    stype, title = source["type"], block.get("title") if isinstance(block.get("title"), str) else None
    if stype == "base64":
        return ir.FilePart(data=_b64(source.get("data"), f"{param}.source.data"),
                           mime_type=_str(source, "media_type", param), filename=title,
                           extras=freeze(extras))
    if stype == "text":
        return ir.FilePart(data=_str(source, "data", param).encode("utf-8"),
                           mime_type=source.get("media_type") or "text/plain", filename=title,
                           extras=freeze(extras))
    if stype == "url":
        return ir.FilePart(url=_str(source, "url", param), mime_type="application/pdf",
                           filename=title, extras=freeze(extras))
    if stype == "file":
        return ir.FilePart(file_id=_str(source, "file_id", param), filename=title,
                           extras=freeze(extras))
    extras["source"] = dict(source)  # "content" sources: Claude-only
    return ir.FilePart(filename=title, extras=freeze(extras))


def _str(obj: Mapping[str, Any], key: str, param: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise bad(f"{param}: '{key}' must be a string", f"{param}.{key}")
    return value


def _decode_tool_use(block: Mapping[str, Any], param: str) -> ir.ToolCallPart:
    tool_input = block.get("input", {})
    if not isinstance(tool_input, ir.MAPPING):
        raise bad(f"{param}.input: must be an object", f"{param}.input")
    return ir.ToolCallPart(id=_str(block, "id", param), name=_str(block, "name", param),
                           arguments=compact_json(tool_input),
                           extras=pick(block, _TOOL_USE_EXTRAS))


def _decode_tool_result(block: Mapping[str, Any], param: str,
                        names: Mapping[str, str]) -> ir.ToolResultPart:
    call_id, content = _str(block, "tool_use_id", param), block.get("content")
    extras = dict(pick(block, _RESULT_EXTRAS))
    parts: list[ir.TextPart | ir.ImagePart] = []
    if isinstance(content, str):
        parts.append(ir.TextPart(content))
    elif isinstance(content, list):
        for i, item in enumerate(content):
            part = decode_block(item, f"{param}.content[{i}]", names) \
                if _block_type(item) in ("text", "image") else None
            if part is None:
                extras["content"] = content  # documents, search results: keep them all, Claude-only
            else:
                parts.append(part)  # type: ignore[arg-type]
    elif content is not None:
        raise bad(f"{param}.content: must be a string or an array", f"{param}.content")
    is_error = block.get("is_error") is True
    return ir.ToolResultPart(tool_call_id=call_id, content=tuple(parts), is_error=is_error,
                             name=names.get(call_id), extras=freeze(extras))


def _block_type(block: Any) -> str | None:
    return block.get("type") if isinstance(block, ir.MAPPING) else None


def decode_block(block: Any, param: str, names: Mapping[str, str]) -> ir.Part | None:
    """One content block → an IR part, or None for a block type the IR does not model.

    ``names`` maps tool_use ids seen so far to tool names (fills `ToolResultPart.name`).
    """
    btype = _block_type(block)
    if not isinstance(btype, str):
        raise bad(f"{param}: a content block must be an object with a type", param)
    if btype == "text":
        return ir.TextPart(_str(block, "text", param), extras=pick(block, _TEXT_EXTRAS))
    if btype == "image":
        return _decode_image(block, param)
    if btype == "document":
        return _decode_document(block, param)
    if btype == "tool_use":
        return _decode_tool_use(block, param)
    if btype == "tool_result":
        return _decode_tool_result(block, param, names)
    if btype == "thinking":
        signature = block.get("signature")
        return ir.ThinkingPart(_str(block, "thinking", param),
                               signature=signature if isinstance(signature, str) else None)
    if btype == "redacted_thinking":
        return ir.RedactedThinkingPart(_str(block, "data", param))
    return None


def decode_blocks(blocks: Sequence[Any], param: str, names: dict[str, str]
                  ) -> tuple[tuple[ir.Part, ...], Mapping[str, Any]]:
    """A content array → (IR parts, extras holding the unmodelled blocks with positions).

    Tool names of ``tool_use`` blocks are recorded into ``names`` as they are met.
    """
    parts: list[ir.Part] = []
    unmodelled: list[list[Any]] = []
    for i, block in enumerate(blocks):
        part = decode_block(block, f"{param}[{i}]", names)
        if part is None:
            unmodelled.append([i, block])
            continue
        if isinstance(part, ir.ToolCallPart):
            names[part.id] = part.name
        parts.append(part)
    return tuple(parts), freeze({UNMODELLED: unmodelled} if unmodelled else {})


# ---------------------------------------------------------------------------------------------
# Encoding parts


_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"%PDF", "application/pdf"))


def sniff_mime(data: bytes, default: str) -> str:
    """MIME type from magic bytes (WebP needs two checks), else ``default``."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return default


def _b64_source(data: bytes, mime: str) -> dict[str, Any]:
    # "image/jpg" is common in data URLs; Anthropic takes only image/jpeg.
    mime = "image/jpeg" if mime.lower() in ("image/jpg", "image/pjpeg") else mime
    return {"type": "base64", "media_type": mime, "data": base64.b64encode(data).decode("ascii")}


def _data_url(url: str) -> tuple[str, bytes] | None:
    """(mime, bytes) of a ``data:<mime>;base64,<data>`` URL, else None."""
    match = re.match(r"^data:([^;,]+);base64,(.*)$", url, re.DOTALL)
    if not match:
        return None
    try:
        return match.group(1), base64.b64decode(match.group(2))
    except (binascii.Error, ValueError):
        return None


def _encode_image(part: ir.ImagePart) -> dict[str, Any] | None:
    source: dict[str, Any] | None = None
    if isinstance(part.extras.get("source"), ir.MAPPING):
        source = dict(part.extras["source"])
    elif part.data is not None:
        source = _b64_source(part.data, part.mime_type or sniff_mime(part.data, "image/png"))
    elif part.url and (inline := _data_url(part.url)):
        source = _b64_source(inline[1], inline[0])
    elif part.url:
        source = {"type": "url", "url": part.url}
    if source is None:
        logger.debug("dropping an image part without data or URL")
        return None
    return {"type": "image", "source": source, **pick(part.extras, ("cache_control",))}


def _file_source(part: ir.FilePart) -> dict[str, Any] | None:
    if isinstance(part.extras.get("source"), ir.MAPPING):
        return dict(part.extras["source"])
    if part.file_id:
        return {"type": "file", "file_id": part.file_id}
    data, mime = part.data, part.mime_type
    if data is None and part.url and (inline := _data_url(part.url)):
        mime, data = inline
    if data is not None:
        mime = mime or sniff_mime(data, "application/octet-stream")
        if mime == "application/pdf":
            return _b64_source(data, mime)
        if mime.startswith("text/"):
            return {"type": "text", "media_type": "text/plain",
                    "data": data.decode("utf-8", errors="replace")}
        return None
    if part.url:
        return {"type": "url", "url": part.url}
    return None


def _encode_file(part: ir.FilePart) -> dict[str, Any] | None:
    mime = part.mime_type or ""
    if mime.startswith("image/"):
        return _encode_image(ir.ImagePart(url=part.url, data=part.data, mime_type=mime,
                                          extras=part.extras))
    source = _file_source(part)
    if source is None:
        logger.debug("dropping a file part Anthropic cannot take (mime %r)", part.mime_type)
        return None
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    block.update(pick(part.extras, _MEDIA_EXTRAS[:3]))
    return block


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's ``input`` object from its JSON arguments text ({} when not an object)."""
    try:
        value = jsontext.loads(arguments) if arguments.strip() else {}
    except ValueError:
        logger.debug("tool call arguments are not JSON; sending {}")
        return {}
    return value if isinstance(value, dict) else {}


def _encode_tool_result(part: ir.ToolResultPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": safe_tool_id(part.tool_call_id)}
    raw = part.extras.get("content")
    if isinstance(raw, list):
        block["content"] = raw
    elif len(part.content) == 1 and isinstance(part.content[0], ir.TextPart) \
            and not part.content[0].extras:
        block["content"] = part.content[0].text
    elif part.content:
        block["content"] = [b for b in (encode_part(p) for p in part.content) if b is not None]
    if part.is_error:
        block["is_error"] = True
    block.update(pick(part.extras, _RESULT_EXTRAS))
    return block


def encode_part(part: ir.Part) -> dict[str, Any] | None:
    """One IR part → an Anthropic content block, or None when Anthropic cannot express it."""
    if isinstance(part, ir.TextPart):
        if not part.text:
            return None  # Anthropic rejects empty text blocks
        return {"type": "text", "text": part.text, **pick(part.extras, _TEXT_EXTRAS)}
    if isinstance(part, ir.ImagePart):
        return _encode_image(part)
    if isinstance(part, ir.FilePart):
        return _encode_file(part)
    if isinstance(part, ir.ToolCallPart):
        return {"type": "tool_use", "id": safe_tool_id(part.id), "name": part.name,
                "input": tool_input(part.arguments), **pick(part.extras, ("cache_control",))}
    if isinstance(part, ir.ToolResultPart):
        return _encode_tool_result(part)
    if isinstance(part, ir.ThinkingPart):
        if not part.signature or looks_like_openai_encrypted(part.signature):
            # Anthropic rejects unsigned thinking, and an OpenAI reasoning item's encrypted
            # content (a Codex history replayed to Claude) is "Invalid signature" to it.
            logger.debug("dropping thinking without an Anthropic signature")
            return None
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    if isinstance(part, ir.RedactedThinkingPart):
        if looks_like_openai_encrypted(part.data):
            logger.debug("dropping OpenAI encrypted reasoning: Anthropic cannot read it")
            return None
        return {"type": "redacted_thinking", "data": part.data}
    return None


def encode_parts(parts: Sequence[ir.Part], extras: Mapping[str, Any]) -> list[dict[str, Any]]:
    """IR parts → content blocks, with the unmodelled blocks of ``extras`` put back in place."""
    blocks = [b for b in (encode_part(p) for p in parts) if b is not None]
    kept = extras.get(UNMODELLED)
    for entry in kept if isinstance(kept, list) else ():
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int):
            blocks.insert(min(entry[0], len(blocks)), entry[1])
    return blocks
