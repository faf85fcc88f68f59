"""Server-sent events and Gemini's streamed JSON arrays: incremental parsers and serializers.

This module owns the byte framing of streams, never their meaning: `Parser` turns SSE bytes into
`Event` values, `serialize`/`comment` turn events back into bytes; `JSONArrayParser` and
`JSONArrayWriter` do the same for the JSON array Gemini streams when ``alt=sse`` is absent.
It does no I/O, reads no clock and imports nothing from Tornado (h11-shaped: ``feed(bytes)``
returns what became complete, ``finish()`` is called once at end of input).

SSE parsing follows the WHATWG HTML "event stream interpretation" rules:

* lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next
  are one line end); a leading UTF-8 BOM is dropped; lines are decoded as UTF-8 with replacement;
* ``:`` lines are comments; ``field: value`` drops one optional space after the colon; a line
  without a colon is a field with an empty value; unknown fields are ignored;
* ``data`` lines are joined with ``"\\n"``; an event is dispatched at a blank line, and only if it
  had at least one ``data`` line; ``id`` values containing NUL are ignored; ``retry`` is used
  only when it is all ASCII digits.

Departures, chosen for a proxy:

* `Event.id` is the id given *within* that event (None when the event had no ``id`` line), so a
  relay does not repeat ids; the spec's persistent "last event ID" is `Parser.last_event_id`.
* At `Parser.finish` an event that was not closed by a blank line is still dispatched
  (``strict=False``, the default), including an unterminated last line: upstreams that close the
  connection right after their final ``data:`` line lose nothing.  Truncation is detected by
  the stream decoders (no terminal event), not here.  ``strict=True`` follows the spec and
  discards it.
* A line or an event larger than ``max_size`` bytes raises ``ProxyError(UPSTREAM_ERROR)`` instead
  of buffering without bound.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from cliproxyd.errors import ErrorKind, ProxyError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "Event",
    "JSONArrayParser",
    "JSONArrayWriter",
    "Parser",
    "comment",
    "serialize",
]

DEFAULT_MAX_SIZE = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")
_TEXT_LINE_END = re.compile(r"\r\n|\r|\n")


class Event(NamedTuple):
    """One SSE event: ``data`` is the joined data lines; ``event`` the type (None = "message").
    A named tuple, not a frozen dataclass: one is made for every event of every stream, and a
    frozen dataclass costs three times as much to make."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


def _too_large(what: str, limit: int) -> ProxyError:
    return ProxyError(ErrorKind.UPSTREAM_ERROR, f"upstream stream {what} exceeds {limit} bytes")


class Parser:
    """Incremental SSE parser: ``feed(bytes) -> [Event]``, then ``finish() -> [Event]`` once."""

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE, strict: bool = False) -> None:
        self.max_size = max_size
        self.strict = strict
        self.last_event_id = ""
        self.retry: int | None = None
        self._buf = bytearray()
        self._bom_checked = False
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._scanned = 0  # bytes of _buf already known to hold no line end
        self._reset_event()

    def _reset_event(self) -> None:
        self._data: list[str] | None = None
        self._data_size = 0
        self._event: str | None = None
        self._id: str | None = None
        self._event_retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        """Add bytes; return the events they completed."""
        if data[-1:] == b"\n" and not self._buf and self._bom_checked and not self._skip_lf \
                and len(data) <= self.max_size and b"\r" not in data:
            # The usual chunk: whole LF-ended lines, nothing held over.  No buffer needed.
            return self._lines(data[:-1].decode("utf-8", errors="replace"))
        self._buf += data
        if not data or not self._strip_bom():
            return []
        if self._skip_lf and self._buf[:1] == b"\n":
            del self._buf[:1]
        self._skip_lf = False
        return self._drain()

    def finish(self) -> list[Event]:
        """End of input: dispatch a pending event unless ``strict`` (see the module docstring)."""
        self._bom_checked = True  # fewer than 3 bytes total: whatever is there is content
        out: list[Event] = []
        if self._buf and not self.strict:
            line, self._buf = bytes(self._buf), bytearray()
            out += self._line(line)
        if not self.strict:
            out += self._dispatch()
        self._buf.clear()
        self._scanned = 0
        self._reset_event()
        return out

    def _strip_bom(self) -> bool:
        """Drop a leading BOM; False while too few bytes have arrived to tell."""
        if self._bom_checked:
            return True
        if len(self._buf) < len(_BOM) and _BOM.startswith(bytes(self._buf)):
            return False
        if self._buf.startswith(_BOM):
            del self._buf[: len(_BOM)]
        self._bom_checked = True
        return True

    def _drain(self) -> list[Event]:
        if b"\r" not in self._buf:
            return self._drain_lf()
        return self._drain_lines()

    def _drain_lf(self) -> list[Event]:
        """`_drain` for the usual LF-only input: every complete line decoded in one go.

        Splitting after decoding gives the same lines as decoding each line: LF is ASCII and
        never part of a multi-byte sequence, and an invalid sequence cut by a line end is
        replaced the same way in both cases.  A region larger than ``max_size`` takes the
        line-by-line path, which checks each line's size."""
        buf = self._buf
        end = buf.rfind(b"\n")
        if end < 0 or end >= self.max_size:
            return self._drain_lines()
        text = buf[:end].decode("utf-8", errors="replace")
        del buf[:end + 1]
        self._scanned = len(buf)
        if len(buf) > self.max_size:
            raise _too_large("line", self.max_size)
        return self._lines(text)

    def _lines(self, text: str) -> list[Event]:
        """The events of whole decoded LF-ended lines (``text`` without its final LF)."""
        out: list[Event] = []
        for line in text.split("\n"):
            if not line:
                # The blank line that ends an event: `_dispatch` inlined (it runs per event).
                data = self._data
                if data is not None:
                    out.append(Event(data[0] if len(data) == 1 else "\n".join(data),
                                     self._event or None, self._id, self._event_retry))
                    self._data, self._data_size = None, 0
                self._event = self._id = self._event_retry = None
            elif line[0] != ":":
                name, colon, value = line.partition(":")
                if colon and value[:1] == " ":
                    value = value[1:]
                self._field(name, value)
        return out

    def _drain_lines(self) -> list[Event]:
        """Every complete line, one at a time (any line ends: CR, LF, CRLF)."""
        buf = self._buf
        out: list[Event] = []
        pos = 0
        # The unfinished line kept from earlier chunks holds no line end: scan only new bytes,
        # so a long line arriving in many chunks costs linear, not quadratic, time.
        m = _LINE_END.search(buf, self._scanned)
        while m is not None:
            if m.group() == b"\r" and m.end() == len(buf):
                self._skip_lf = True  # maybe the CR of a CRLF split across chunks
            out += self._line(bytes(buf[pos:m.start()]))
            pos = m.end()
            m = _LINE_END.search(buf, pos)
        del buf[:pos]
        self._scanned = len(buf)
        if len(buf) > self.max_size:
            raise _too_large("line", self.max_size)
        return out

    def _line(self, raw: bytes) -> list[Event]:
        if len(raw) > self.max_size:
            raise _too_large("line", self.max_size)
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return []
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._field(name, value)
        return []

    def _field(self, name: str, value: str) -> None:
        if name == "data":
            self._data = [] if self._data is None else self._data
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_size:
                raise _too_large("event", self.max_size)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._event_retry = self.retry = int(value)

    def _dispatch(self) -> list[Event]:
        data, event, id_, retry = self._data, self._event, self._id, self._event_retry
        self._reset_event()
        if data is None:
            return []
        return [Event(data="\n".join(data), event=event or None, id=id_, retry=retry)]


def _check_single_line(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE {name} must not contain a line break: {value!r}")


def serialize(event: Event) -> bytes:
    """The wire bytes of one event, ending with the blank line that dispatches it.

    Multi-line ``data`` (any of CRLF/LF/CR) becomes one ``data:`` line per line, so `Parser`
    gives back ``data`` with ``\\n`` line ends.
    """
    data, name = event.data, event.event
    if data and event.id is None and event.retry is None and "\n" not in data \
            and "\r" not in data:
        # The usual single-line event, framed without the general path's list and split.
        if name is None:
            return f"data: {data}\n\n".encode("utf-8")
        if "\n" not in name and "\r" not in name:
            return f"event: {name}\ndata: {data}\n\n".encode("utf-8")
    lines: list[str] = []
    if event.event is not None:
        _check_single_line("event", event.event)
        lines.append(f"event: {event.event}")
    if event.id is not None:
        _check_single_line("id", event.id)
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        lines.append(f"retry: {int(event.retry)}")
    for part in _TEXT_LINE_END.split(event.data):
        lines.append(f"data: {part}" if part else "data:")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def comment(text: str = "") -> bytes:
    """An SSE comment (a keep-alive): ignored by parsers, and dispatches nothing.

    It ends with a blank line so intermediaries that frame on blank lines pass it on at once.
    """
    parts = _TEXT_LINE_END.split(text)
    return ("".join(f": {p}\n" if p else ":\n" for p in parts) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Gemini's streamed JSON array (streamGenerateContent without alt=sse)


class JSONArrayParser:
    """Incremental parser of a JSON array of objects streamed element by element.

    ``feed(bytes)`` returns each object as soon as its closing brace arrives; the bytes may be
    split anywhere (inside strings, escapes, multi-byte characters).  Anything that is not an
    array of objects raises ``ProxyError(UPSTREAM_ERROR)``, as does an element larger than
    ``max_size``.  `finish` raises nothing: an array cut short simply yields no more objects
    (``complete`` tells whether the closing ``]`` arrived); the stream decoders report the
    missing terminal chunk.
    """

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self.complete = False
        self._buf = bytearray()
        self._state = "start"  # start, value, after (an element), end
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._scan = 0  # how far into _buf the current element has been scanned
        self._seen_element = False

    def feed(self, data: bytes) -> list[dict]:
        """Add bytes; return the objects they completed."""
        self._buf += data
        out: list[dict] = []
        while self._buf:
            if self._state == "value" and self._depth:
                obj = self._scan_element()
                if obj is None:
                    break
                out.append(obj)
            elif not self._structural():
                break
        return out

    def finish(self) -> list[dict]:
        """End of input; nothing more can complete (see the class docstring)."""
        self._buf.clear()
        return []

    def _structural(self) -> bool:
        """Consume whitespace and one structural byte outside elements; False if none left."""
        stripped = self._buf.lstrip(b" \t\r\n")
        del self._buf[: len(self._buf) - len(stripped)]
        if not self._buf:
            return False
        byte = self._buf[:1]
        expected = {"start": b"[", "value": b"{", "after": b",]", "end": b""}[self._state]
        if byte == b"]" and self._state == "value" and not self._seen_element:
            expected = b"{]"  # an empty array
        if byte not in expected:
            raise ProxyError(ErrorKind.UPSTREAM_ERROR,
                             f"malformed upstream JSON stream near {bytes(self._buf[:40])!r}")
        self._step(byte)
        return True

    def _step(self, byte: bytes) -> None:
        if byte in (b"[", b","):
            self._state = "value"
            del self._buf[:1]
        elif byte == b"]":
            self._state, self.complete = "end", True
            del self._buf[:1]
        else:  # "{": an element starts; it stays in the buffer until its braces balance
            self._depth, self._scan, self._seen_element = 1, 1, True

    def _scan_element(self) -> dict | None:
        """Scan the element in progress; the decoded object once its braces balance."""
        buf = self._buf
        i = self._scan
        while i < len(buf):
            c = buf[i]
            i += 1
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == 0x5C:  # backslash
                    self._escape = True
                elif c == 0x22:  # quote
                    self._in_string = False
            elif c == 0x22:
                self._in_string = True
            elif c in (0x7B, 0x5B):  # { [
                self._depth += 1
            elif c in (0x7D, 0x5D):  # } ]
                self._depth -= 1
                if self._depth == 0:
                    return self._element_done(i)
        self._scan = i
        if i > self.max_size:
            raise _too_large("element", self.max_size)
        return None

    def _element_done(self, end: int) -> dict:
        raw = bytes(self._buf[:end])
        del self._buf[:end]
        self._state, self._scan = "after", 0
        if end > self.max_size:
            raise _too_large("element", self.max_size)
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProxyError(ErrorKind.UPSTREAM_ERROR,
                             f"malformed upstream JSON stream element: {exc}") from None
        if not isinstance(obj, dict):
            raise ProxyError(ErrorKind.UPSTREAM_ERROR, "upstream JSON stream element is not an object")
        return obj


class JSONArrayWriter:
    """Frames JSON texts as the array Google streams: ``[`` + first, ``"\\n,\\r\\n"`` + each next,
    ``"\\n]"`` at the end (an empty stream is ``[]``)."""

    SEPARATOR = b"\n,\r\n"

    def __init__(self) -> None:
        self._count = 0

    def feed(self, payload: str) -> bytes:
        """The bytes that carry one more element (a JSON object's text)."""
        head = b"[" if self._count == 0 else self.SEPARATOR
        self._count += 1
        return head + payload.encode("utf-8")

    def finish(self) -> bytes:
        """The bytes that close the array."""
        return b"[]" if self._count == 0 else b"\n]"
