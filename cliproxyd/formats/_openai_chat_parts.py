"""OpenAI Chat content parts <-> IR parts (text, image_url, input_audio, file, refusal).

Owns the part-level mapping used by both request directions: http and ``data:`` image URLs
(inline bytes + MIME type), ``input_audio`` (→ `FilePart` with an audio MIME type) and ``file``
(data URL, raw base64 or file id → `FilePart`).  Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from cliproxyd.formats import ir
from cliproxyd.formats._openai_chat_common import (
    data_url,
    decode_b64,
    invalid,
    opt_str,
    parse_data_url,
)

logger = logging.getLogger(__name__)

AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg"}
_MIME_AUDIO = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav",
               "audio/mpeg": "mp3", "audio/mp3": "mp3"}
# Enough to label common documents sent as raw base64 with only a filename.
_EXT_MIME = {"pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown",
             "csv": "text/csv", "json": "application/json", "html": "text/html"}


# ---------------------------------------------------------------------------------------------
# content parts


def content_part(part: Any, param: str) -> ir.Part:
    if not isinstance(part, ir.MAPPING):
        raise invalid("a content part must be an object", param)
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise invalid("a text part needs 'text'", f"{param}.text")
        return ir.TextPart(part["text"])
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return ir.TextPart(part["refusal"], {"type": "refusal"})
    if kind == "image_url":
        return _image_part(part.get("image_url"), f"{param}.image_url")
    if kind == "input_audio":
        return _audio_part(part.get("input_audio"), f"{param}.input_audio")
    if kind == "file":
        return _file_part(part.get("file"), f"{param}.file")
    raise invalid(f"unsupported content part type {kind!r}", f"{param}.type")


def _image_part(value: Any, param: str) -> ir.ImagePart:
    spec = {"url": value} if isinstance(value, str) else value  # some clients send a bare URL
    if not isinstance(spec, ir.MAPPING) or not isinstance(spec.get("url"), str):
        raise invalid("'image_url.url' is required", f"{param}.url")
    detail = spec.get("detail")
    extras = {"detail": detail} if isinstance(detail, str) else ir.EMPTY
    url = spec["url"]
    if url.startswith("data:"):
        data, mime = parse_data_url(url, f"{param}.url")
        return ir.ImagePart(data=data, mime_type=mime, extras=extras)
    return ir.ImagePart(url=url, extras=extras)


def _audio_part(value: Any, param: str) -> ir.FilePart:
    if not isinstance(value, ir.MAPPING) or not isinstance(value.get("data"), str):
        raise invalid("'input_audio.data' is required", f"{param}.data")
    fmt = value.get("format")
    if not isinstance(fmt, str) or not fmt:
        raise invalid("'input_audio.format' is required", f"{param}.format")
    mime = AUDIO_MIME.get(fmt, f"audio/{fmt}")
    return ir.FilePart(data=decode_b64(value["data"], f"{param}.data"), mime_type=mime)


def _file_part(value: Any, param: str) -> ir.FilePart:
    if not isinstance(value, ir.MAPPING):
        raise invalid("'file' must be an object", param)
    filename, file_id = opt_str(value, "filename", param), opt_str(value, "file_id", param)
    raw = opt_str(value, "file_data", param)
    data, mime = None, None
    if raw is not None:
        if raw.startswith("data:"):
            data, mime = parse_data_url(raw, f"{param}.file_data")
        else:
            data = decode_b64(raw, f"{param}.file_data")
    elif file_id is None:
        raise invalid("a file part needs 'file_data' or 'file_id'", param)
    if mime is None and filename and "." in filename:
        mime = _EXT_MIME.get(filename.rsplit(".", 1)[1].lower())
    return ir.FilePart(data=data, file_id=file_id, mime_type=mime, filename=filename)


# ---------------------------------------------------------------------------------------------
# encode


def encode_parts(parts: list[ir.Part]) -> list[dict[str, Any]]:
    out = []
    for part in parts:
        encoded = _encode_part(part)
        if encoded is None:
            logger.debug("dropping %s: Chat cannot express it", type(part).__name__)
        else:
            out.append(encoded)
    return out


def _encode_part(part: ir.Part) -> dict[str, Any] | None:
    if isinstance(part, ir.TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ir.ImagePart):
        url = part.url if part.data is None else data_url(part.data, part.mime_type)
        if url is None:
            return None
        image: dict[str, Any] = {"url": url}
        if isinstance(part.extras.get("detail"), str):
            image["detail"] = part.extras["detail"]
        return {"type": "image_url", "image_url": image}
    if isinstance(part, ir.FilePart):
        return _encode_file(part)
    return None


def _encode_file(part: ir.FilePart) -> dict[str, Any] | None:
    fmt = _MIME_AUDIO.get(part.mime_type or "")
    if fmt is not None and part.data is not None:
        return {"type": "input_audio",
                "input_audio": {"data": base64.b64encode(part.data).decode(), "format": fmt}}
    spec: dict[str, Any] = {}
    if part.data is not None:
        spec["file_data"] = data_url(part.data, part.mime_type)
    if part.file_id is not None:
        spec["file_id"] = part.file_id
    if not spec:
        return None  # a file known only by URL: Chat has no way to reference it
    if part.filename is not None:
        spec["filename"] = part.filename
    return {"type": "file", "file": spec}
