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

__all__ = ["TooDeep", "dumps", "dumps_bytes", "loads", "loads_bounded", "peek"]

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


class TooDeep(ValueError):
    """A document nested deeper than the caller's limit (`loads_bounded`)."""


# |x| from which a float may be orjson's reading of an integer literal beyond 64 bits.
_BEYOND_64_BITS = float(2**63)
_CONTAINER_OR_FLOAT = frozenset((dict, list, float))


def loads_bounded(text: str | bytes, max_depth: int, **hooks: Any) -> Any:
    """`loads` for a client's document, which may be large, refusing one nested deeper than
    ``max_depth`` containers (`TooDeep`).

    One walk over the parsed containers both measures the depth and looks for floats beyond 64
    bits, the only values orjson can have read from an integer literal it could not hold: only
    then is the text searched for a long digit run (`loads` searches every text, which for a
    100 KB body cost two thirds as much as parsing it)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = json.loads(text, **hooks)  # its error, or a value orjson declines to read
        _walk(value, max_depth)
        return value
    if _walk(value, max_depth) and _has_long_digit_run(text):
        value = json.loads(text, **hooks)
    return value


def _walk(value: Any, max_depth: int) -> bool:
    """Raises `TooDeep` past ``max_depth``; whether a float beyond 64 bits is anywhere.  Level
    by level, containers only (no recursion: a hostile document must not exhaust the stack)."""
    if type(value) is float:
        return not -_BEYOND_64_BITS < value < _BEYOND_64_BITS
    if type(value) is not dict and type(value) is not list:
        return False
    wanted, level, nodes, big = _CONTAINER_OR_FLOAT, 1, [value], False
    while nodes:
        if level > max_depth:
            raise TooDeep(f"nested deeper than {max_depth}")
        below = [child for node in nodes for child in (
            node.values() if type(node) is dict else node) if type(child) in wanted]
        if any(type(child) is float for child in below):
            big = big or any(not -_BEYOND_64_BITS < child < _BEYOND_64_BITS
                             for child in below if type(child) is float)
            below = [child for child in below if type(child) is not float]
        nodes, level = below, level + 1
    return big


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
