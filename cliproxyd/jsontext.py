"""JSON text in and out on the request path: orjson where it gives the standard library's exact
answer, the standard library where it might not.

orjson parses and writes JSON several times faster than ``json`` (a streamed answer is parsed
event by event).  It differs from ``json`` in a few corners, and each is routed back to ``json``:

* An integer beyond 64 bits comes back from orjson as a float, silently.  Text with a run of 19
  or more digits (which every such integer has) is parsed by ``json`` instead; a long digit run
  inside a string only costs the slower parser.
* orjson refuses what ``json`` accepts (``NaN``, ``Infinity``, ``1e999``, a lone surrogate
  escape): ``json`` then parses it, with the caller's hooks, so accepting or refusing those
  stays the caller's choice.
* orjson cannot write integers beyond 64 bits or keys that are not strings: ``json`` writes
  those.  A NaN is written as ``null`` (``json`` would write ``NaN``, which is not JSON).

`dumps` is compact and UTF-8 (no ``\\u`` escapes outside control characters), which is how
``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` writes it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "dumps_bytes", "loads", "peek"]

# Every ASCII digit to "0", every other byte to " ": a run of 19 digits is then a substring
# search (a regex for it cost four times orjson's own parse of a stream event).
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def _has_long_digit_run(text: str | bytes) -> bool:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _LONG_RUN in raw.translate(_DIGITS_TO_ZERO)


def loads(text: str | bytes, **hooks: Any) -> Any:
    """``json.loads(text, **hooks)``, by orjson where that gives the same value.  ``hooks``
    (``parse_float``, ``parse_constant``...) apply only where orjson declines the text, so they
    must be checks that accept whatever orjson accepts (finite floats, no constants)."""
    if not _has_long_digit_run(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the standard library's answer (a value or its error) stands
    return json.loads(text, **hooks)


def peek(text: str | bytes) -> Any:
    """`loads` for a value that is only looked at, never written again (a passthrough stream's
    watcher reads an event's finish, usage and errors and forwards the event's own text): the
    long-integer check is skipped, as a >64-bit integer read as a float changes nothing there."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dumps_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # a >64-bit integer, a non-string key, a type orjson does not know
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def dumps(obj: Any) -> str:
    """Compact JSON text (see `dumps_bytes`)."""
    try:
        return orjson.dumps(obj).decode("utf-8")
    except TypeError:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
