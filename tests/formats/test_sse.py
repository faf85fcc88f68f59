"""Tests of cliproxyd/formats/sse.py: SSE parsing/serializing and Gemini's streamed JSON arrays."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats.sse import (
    Event,
    JSONArrayParser,
    JSONArrayWriter,
    Parser,
    comment,
    serialize,
)


def parse_all(chunks, **kw) -> list[Event]:
    parser = Parser(**kw)
    out: list[Event] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.finish()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# --- Parser: the spec's rules ------------------------------------------------------------------

def test_fields_comments_and_optional_space():
    events = parse_all([b": hello\nevent: ping\nid: 7\nretry: 250\ndata:  two spaces\n\n"])
    assert events == [Event(data=" two spaces", event="ping", id="7", retry=250)]


def test_multiline_data_joined_with_newline():
    assert parse_all([b"data: a\ndata:\ndata: c\n\n"]) == [Event(data="a\n\nc")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_all_line_endings(eol):
    raw = eol.join([b"event: x", b"data: 1", b"", b"data: 2", b"", b""])
    assert parse_all([raw]) == [Event(data="1", event="x"), Event(data="2")]


def test_crlf_split_between_chunks_is_one_line_end():
    # A CR ending one chunk and an LF starting the next must not make an extra blank line
    # (which would dispatch the event before its second data line).
    events = parse_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert events == [Event(data="a\nb")]


def test_multibyte_character_split_across_chunks():
    raw = "data: héllo 🌍\n\n".encode()
    cut = raw.index("🌍".encode()) + 2
    assert parse_all([raw[:cut], raw[cut:]]) == [Event(data="héllo 🌍")]


def test_leading_bom_dropped_even_when_split():
    raw = b"\xef\xbb\xbfdata: x\n\n"
    assert parse_all([raw[:1], raw[1:2], raw[2:]]) == [Event(data="x")]


def test_bom_only_at_start():
    events = parse_all([b"data: x\n\n\xef\xbb\xbfdata: y\n\n"])
    # The second BOM is part of a field name, so the line is an unknown field.
    assert events == [Event(data="x")]


def test_line_without_colon_is_field_with_empty_value():
    assert parse_all([b"data\n\n"]) == [Event(data="")]


def test_event_without_data_is_not_dispatched_but_id_remembered():
    parser = Parser()
    assert parser.feed(b"id: 42\nevent: nothing\n\n") == []
    assert parser.last_event_id == "42"
    assert parser.feed(b"data: x\n\n") == [Event(data="x")]  # id is per event, not inherited


def test_invalid_retry_and_nul_id_ignored():
    assert parse_all([b"retry: 1a\nid: a\0b\ndata: x\n\n"]) == [Event(data="x")]


def test_unknown_fields_ignored():
    assert parse_all([b"foo: bar\ndata: x\n\n"]) == [Event(data="x")]


def test_unterminated_final_event_delivered_at_finish():
    parser = Parser()
    assert parser.feed(b"data: [DONE]\n") == []
    assert parser.finish() == [Event(data="[DONE]")]


def test_unterminated_final_line_delivered_at_finish():
    assert parse_all([b"data: a\n\ndata: b"]) == [Event(data="a"), Event(data="b")]


def test_strict_mode_discards_incomplete_event():
    assert parse_all([b"data: a\n\ndata: b\n"], strict=True) == [Event(data="a")]


def test_oversized_line_raises_upstream_error():
    parser = Parser(max_size=64)
    with pytest.raises(ProxyError) as info:
        parser.feed(b"data: " + b"x" * 100)
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR and info.value.status == 502


def test_oversized_event_raises_upstream_error():
    parser = Parser(max_size=64)
    with pytest.raises(ProxyError) as info:
        for _ in range(20):
            parser.feed(b"data: 0123456789\n")
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR


def test_size_limit_resets_between_events():
    parser = Parser(max_size=64)
    for _ in range(20):
        assert parser.feed(b"data: 0123456789\n\n") == [Event(data="0123456789")]


# --- serialize / comment -----------------------------------------------------------------------

def test_serialize_shape():
    raw = serialize(Event(data='{"a":1}', event="message_start", id="1"))
    assert raw == b'event: message_start\nid: 1\ndata: {"a":1}\n\n'


def test_serialize_multiline_and_empty_data():
    assert serialize(Event(data="a\r\nb\rc\n")) == b"data: a\ndata: b\ndata: c\ndata:\n\n"
    assert parse_all([serialize(Event(data=""))]) == [Event(data="")]


def test_serialize_rejects_line_break_in_event_name():
    with pytest.raises(ValueError):
        serialize(Event(data="x", event="a\nb"))


def test_comment_dispatches_nothing_and_does_not_disturb_events():
    raw = serialize(Event(data="1")) + comment("keep-alive") + serialize(Event(data="2"))
    assert comment("keep-alive") == b": keep-alive\n\n"
    assert parse_all([raw]) == [Event(data="1"), Event(data="2")]


# --- properties: however the bytes are split -----------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_name = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
                min_size=1, max_size=10)
_events = st.lists(st.builds(
    Event,
    data=_text,
    event=st.none() | _name,
    id=st.none() | _name,
    retry=st.none() | st.integers(0, 10**6),
), max_size=6)


@settings(max_examples=200, deadline=None)
@given(events=_events, cuts=st.lists(st.integers(0, 10**4), max_size=12),
       eol=st.sampled_from(["\n", "\r\n", "\r"]))
def test_roundtrip_any_split_any_line_end(events, cuts, eol):
    raw = b"".join(serialize(e) for e in events).decode().replace("\n", eol).encode()
    expected = [
        Event(data=e.data.replace("\r\n", "\n").replace("\r", "\n"), event=e.event or None,
              id=e.id, retry=e.retry)
        for e in events
    ]
    assert parse_all(split_at(raw, cuts)) == expected
    assert parse_all([raw[i:i + 1] for i in range(len(raw))]) == expected


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"")),
       lines=st.lists(st.sampled_from([b"data: x", b"data: \xe2\x82", b": c", b"event: e",
                                       b"", b"id: 1", b"data:\xff"]), max_size=10),
       cuts=st.lists(st.integers(0, 10**3), max_size=8))
def test_lf_fast_path_matches_the_line_by_line_path(raw, lines, cuts):
    # LF-only input takes a decode-all-lines-at-once path; the same bytes with CRLF line ends
    # take the line-by-line one.  Both must give the same events, invalid UTF-8 included.
    data = raw + b"\n".join(lines) + b"\n"
    crlf = data.replace(b"\n", b"\r\n")
    assert parse_all(split_at(data, cuts)) == parse_all(split_at(crlf, cuts))



@settings(max_examples=200, deadline=None)
@given(events=_events, lines=st.lists(st.sampled_from(
    [b"data: x", b"data: \xe2\x82", b": c", b"event: e", b"", b"id: 1", b"data:\xff", b"data",
     b"retry: 7"]), max_size=10))
def test_chunks_of_whole_lines_parse_as_bytes_fed_one_at_a_time(events, lines):
    """A chunk of whole LF-ended lines with nothing held over skips the buffer: fed as whole
    events, as whole lines, or as one chunk, the events are those of the byte-by-byte feed."""
    raw = b"".join(serialize(e) for e in events) + b"".join(line + b"\n" for line in lines)
    one_by_one = parse_all([raw[i:i + 1] for i in range(len(raw))])
    per_event = split_at(raw, [i for i in range(2, len(raw)) if raw[i - 2:i] == b"\n\n"])
    assert parse_all(per_event) == one_by_one
    assert parse_all([b"\n", *per_event]) == one_by_one  # the first chunk settles the BOM check
    with_bom = [b"\xef\xbb\xbf" + chunk for chunk in per_event[:1]] + per_event[1:]
    assert parse_all(with_bom) == one_by_one  # a leading BOM is dropped
    assert parse_all([line + b"\n" for line in raw.split(b"\n")[:-1]]) == one_by_one


def test_a_chunk_of_whole_lines_still_keeps_the_size_limits():
    parser = Parser(max_size=64)
    assert parser.feed(b"data: " + b"x" * 40 + b"\n") == []
    with pytest.raises(ProxyError):  # the event's data lines together exceed the limit
        parser.feed(b"data: " + b"y" * 40 + b"\n")
    with pytest.raises(ProxyError):  # one chunk over the limit takes the line-checking path
        Parser(max_size=64).feed(b"\n" + b"data: " + b"z" * 80 + b"\n")

# --- Gemini JSON array ---------------------------------------------------------------------------

def test_json_array_writer_framing_matches_google():
    writer = JSONArrayWriter()
    pieces = [writer.feed('{"a": 1}'), writer.feed('{"b": 2}'), writer.finish()]
    assert pieces == [b'[{"a": 1}', b'\n,\r\n{"b": 2}', b"\n]"]
    assert json.loads(b"".join(pieces)) == [{"a": 1}, {"b": 2}]


def test_json_array_writer_empty():
    assert JSONArrayWriter().finish() == b"[]"


def test_json_array_parser_google_pretty_printed():
    raw = (b'[{\n  "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]\n}'
           b'\n,\r\n{\n  "candidates": [{"finishReason": "STOP"}]\n}\n]')
    parser = JSONArrayParser()
    assert parser.feed(raw) == json.loads(raw)
    assert parser.complete


def test_json_array_parser_incomplete_is_not_complete():
    parser = JSONArrayParser()
    assert parser.feed(b'[{"a": 1}, {"b": ') == [{"a": 1}]
    assert parser.finish() == [] and not parser.complete


@pytest.mark.parametrize("raw", [
    b'{"a": 1}', b"<!DOCTYPE html>", b"[1, 2]", b'[{"a": 1} {"b": 2}]', b'[{"a": 1},]',
    b'[{"a": tru}]', b'[{"a": 1}] x',
])
def test_json_array_parser_malformed_raises(raw):
    parser = JSONArrayParser()
    with pytest.raises(ProxyError) as info:
        parser.feed(raw)
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR


def test_json_array_parser_empty_array():
    parser = JSONArrayParser()
    assert parser.feed(b" [ ] ") == [] and parser.complete


def test_json_array_parser_size_limit():
    parser = JSONArrayParser(max_size=32)
    with pytest.raises(ProxyError):
        parser.feed(b'[{"a": "' + b"x" * 64)


_json_obj = st.dictionaries(
    _text,
    st.recursive(st.none() | st.booleans() | st.integers() | _text,
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                 max_leaves=8),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(objs=st.lists(_json_obj, max_size=5), cuts=st.lists(st.integers(0, 10**4), max_size=12),
       indent=st.sampled_from([None, 2]))
def test_json_array_roundtrip_any_split(objs, cuts, indent):
    writer = JSONArrayWriter()
    raw = b"".join(writer.feed(json.dumps(o, indent=indent, ensure_ascii=False)) for o in objs)
    raw += writer.finish()
    parser = JSONArrayParser()
    out: list[dict] = []
    for chunk in split_at(raw, cuts):
        out += parser.feed(chunk)
    assert out + parser.finish() == objs
    assert parser.complete
