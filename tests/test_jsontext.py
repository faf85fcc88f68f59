"""cliproxyd.jsontext: orjson's speed with the standard library's answers, including the corners
where orjson alone would differ (long integers, constants, non-string keys)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliproxyd import jsontext

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=500, deadline=None)
@given(JSON_VALUES)
def test_same_text_and_values_as_the_standard_library(value):
    text = jsontext.dumps(value)
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":")) or \
        json.loads(text) == json.loads(json.dumps(value))  # floats may be spelled differently
    assert jsontext.dumps_bytes(value) == text.encode("utf-8")
    assert jsontext.loads(text) == json.loads(text)
    assert jsontext.loads(text.encode("utf-8")) == json.loads(text)
    spaced = json.dumps(value)  # the standard library's default spelling, \u escapes and all
    assert jsontext.loads(spaced) == json.loads(spaced)


@pytest.mark.parametrize("number", [2**64, 2**70, -(2**63) - 1, 10**40])
def test_integers_beyond_64_bits_keep_every_digit(number):
    """orjson alone reads these as floats, silently losing digits."""
    text = f'{{"seed": {number}, "n": [1, {number}]}}'
    assert jsontext.loads(text) == {"seed": number, "n": [1, number]}
    assert jsontext.loads(text.encode()) == {"seed": number, "n": [1, number]}
    assert jsontext.dumps({"seed": number}) == f'{{"seed":{number}}}'


def test_what_orjson_refuses_gets_the_standard_librarys_answer_and_the_callers_hooks():
    assert math.isnan(jsontext.loads("NaN"))
    assert jsontext.loads('"\\ud800"') == "\ud800"  # a lone surrogate escape
    assert jsontext.loads('["\ud800", 12345678901234567890]') == ["\ud800", 12345678901234567890]
    with pytest.raises(ValueError, match="no constants"):
        jsontext.loads('{"t": Infinity}', parse_constant=_refuse)
    with pytest.raises(ValueError, match="too big"):
        jsontext.loads('{"t": 1e999}', parse_float=_finite)
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads('{"unclosed": ')


def test_what_orjson_cannot_write_is_written_by_the_standard_library():
    assert jsontext.dumps({1: "a", "b": 2}) == '{"1":"a","b":2}'
    assert jsontext.dumps({"ü": "\u2028\x1f"}) == '{"ü":"\u2028\\u001f"}'
    with pytest.raises(TypeError):
        jsontext.dumps({"x": object()})


def _refuse(name):
    raise ValueError("no constants")


def _finite(text):
    value = float(text)
    if math.isinf(value):
        raise ValueError("too big")
    return value


def test_peek_reads_what_loads_reads_and_refuses_what_json_refuses():
    """`peek` (a passthrough watcher's parse) skips only the long-integer check."""
    chunk = '{"id":"c","choices":[{"delta":{"content":"hi"}}],"usage":{"total_tokens":18}}'
    assert jsontext.peek(chunk) == jsontext.loads(chunk) == json.loads(chunk)
    assert math.isnan(jsontext.peek("NaN"))  # orjson refuses it, json reads it
    with pytest.raises(json.JSONDecodeError):
        jsontext.peek('{"cut": ')


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES | st.integers(min_value=-(2**80), max_value=2**80).map(lambda n: [n, 1.5e300]))
def test_loads_bounded_reads_what_the_standard_library_reads(value):
    text = json.dumps(value)
    assert jsontext.loads_bounded(text, 128) == json.loads(text)
    assert jsontext.loads_bounded(text.encode(), 128) == json.loads(text)


def test_loads_bounded_keeps_long_integers_and_leaves_long_digit_runs_in_text_to_orjson():
    big = 2**70
    assert jsontext.loads_bounded(f'{{"a": [{{"seed": {big}}}], "f": 1e20}}', 8) == \
        {"a": [{"seed": big}], "f": 1e20}
    assert type(jsontext.loads_bounded('{"f": 1e20}', 8)["f"]) is float  # a float literal stays
    assert jsontext.loads_bounded(f'["{"9" * 40}", {-(2**63)}]', 8) == ["9" * 40, -(2**63)]
    with pytest.raises(ValueError, match="too big"):
        jsontext.loads_bounded('{"t": 1e999}', 8, parse_float=_finite)


@pytest.mark.parametrize("orjson_declines", [False, True])
def test_loads_bounded_refuses_exactly_what_is_nested_past_the_limit(orjson_declines):
    extra = ', "c": NaN' if orjson_declines else ""  # NaN: orjson declines, json parses it
    inside = lambda depth: "[" * (depth - 1) + "]" * (depth - 1)
    # the object is level 1: an array run inside it of depth-1 levels makes `depth` in all
    assert jsontext.loads_bounded(f'{{"a": {inside(128)}{extra}}}', 128)["a"]
    with pytest.raises(jsontext.TooDeep):
        jsontext.loads_bounded(f'{{"a": {inside(129)}{extra}}}', 128)
    with pytest.raises(jsontext.TooDeep):
        jsontext.loads_bounded('[{"x": [[{"y": 1}]]}]', 4)
    assert jsontext.loads_bounded('[{"x": [[{"y": 1}]]}]', 5) == [{"x": [[{"y": 1}]]}]
