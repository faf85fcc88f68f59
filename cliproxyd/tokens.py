"""A local input-token estimate for upstreams without a count endpoint.

Pure: counts the text a request would send (system, messages, tool results, tool definitions)
at roughly four characters a token, which is the usual rule of thumb for English text and code
with BPE tokenizers.  It is an estimate, labelled as such in the docs, and never zero.
"""

from __future__ import annotations

import json

from cliproxyd.formats import ir

__all__ = ["estimate_tokens"]

_CHARS_PER_TOKEN = 4
_IMAGE_TOKENS = 765  # what OpenAI bills a 1024x1024 high-detail image; a fair flat guess
_PER_MESSAGE = 4  # role and separators


def _part_chars(part: ir.Part) -> int:
    if isinstance(part, ir.TextPart):
        return len(part.text)
    if isinstance(part, ir.ThinkingPart):
        return len(part.text)
    if isinstance(part, ir.ToolCallPart):
        return len(part.name) + len(part.arguments)
    if isinstance(part, ir.ToolResultPart):
        return sum(_part_chars(p) for p in part.content)
    return 0


def _part_images(part: ir.Part) -> int:
    if isinstance(part, (ir.ImagePart, ir.FilePart)):
        return 1
    if isinstance(part, ir.ToolResultPart):
        return sum(_part_images(p) for p in part.content)
    return 0


def estimate_tokens(request: ir.Request) -> int:
    """Approximate input tokens of ``request`` (at least 1)."""
    chars = sum(len(p.text) for p in request.system)
    images = 0
    for message in request.messages:
        chars += sum(_part_chars(p) for p in message.parts)
        images += sum(_part_images(p) for p in message.parts)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "")
        chars += len(json.dumps(tool.parameters)) if tool.parameters else 0
    tokens = -(-chars // _CHARS_PER_TOKEN) + images * _IMAGE_TOKENS
    tokens += _PER_MESSAGE * len(request.messages)
    return max(1, tokens)
