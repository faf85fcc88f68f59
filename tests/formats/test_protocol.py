"""Every codec module named in `formats.FORMAT_NAMES` provides the `formats.Codec` protocol:
the same names, with signatures a caller written against the protocol can use."""

from __future__ import annotations

import inspect

import pytest

from cliproxyd import formats
from cliproxyd.errors import ProxyError
from cliproxyd.formats import Codec, StreamDecoderProto, StreamEncoderProto

FUNCTIONS = ("decode_request", "decode_request_head", "encode_request", "decode_response",
             "encode_response", "render_error")
P = inspect.Parameter
POSITIONAL = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)


def _params(func) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(func).parameters.values() if p.name != "self"]


def compatibility_problems(impl, proto) -> list[str]:
    """Why calls shaped like ``proto``'s signature could fail on ``impl`` (empty: compatible).

    Positional parameters must line up by position, keyword-only ones must exist by name, a
    parameter optional in the protocol must be optional in the implementation, and any extra
    parameter of the implementation must have a default.
    """
    want, have = _params(proto), _params(impl)
    has_var_pos = any(p.kind is P.VAR_POSITIONAL for p in have)
    has_var_kw = any(p.kind is P.VAR_KEYWORD for p in have)
    have_pos = [p for p in have if p.kind in POSITIONAL]
    by_name = {p.name: p for p in have if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    problems, used = [], set()
    want_pos = [p for p in want if p.kind in POSITIONAL]
    for i, w in enumerate(want_pos):
        if i < len(have_pos):
            used.add(have_pos[i].name)
            if w.default is not P.empty and have_pos[i].default is P.empty:
                problems.append(f"{have_pos[i].name} must be optional")
        elif not has_var_pos:
            problems.append(f"missing positional parameter {w.name}")
    for w in (p for p in want if p.kind is P.KEYWORD_ONLY):
        got = by_name.get(w.name)
        if got is None and not has_var_kw:
            problems.append(f"missing keyword parameter {w.name}")
        elif got is not None:
            used.add(got.name)
            if w.default is not P.empty and got.default is P.empty:
                problems.append(f"{w.name} must be optional")
    for extra in have:
        if extra.name not in used and extra.kind in (*POSITIONAL, P.KEYWORD_ONLY) \
                and extra.default is P.empty:
            problems.append(f"extra required parameter {extra.name}")
    return problems


def load(name):
    try:
        return formats.codec(name)
    except ImportError as exc:  # a missing codec fails the test with a clear message
        pytest.fail(f"codec module {name} cannot be imported: {exc}")


per_format = pytest.mark.parametrize("fmt", formats.FORMAT_NAMES)


@per_format
@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_match_protocol(fmt, name):
    module = load(fmt)
    impl = getattr(module, name, None)
    assert callable(impl), f"{module.__name__} lacks {name}"
    assert compatibility_problems(impl, getattr(Codec, name)) == []


@per_format
def test_stream_decoder_class(fmt):
    module = load(fmt)
    cls = getattr(module, "StreamDecoder", None)
    assert inspect.isclass(cls), f"{module.__name__} lacks StreamDecoder"
    assert compatibility_problems(cls, lambda: None) == [], "StreamDecoder() takes no arguments"
    for method in ("feed", "finish"):
        assert compatibility_problems(getattr(cls, method), getattr(StreamDecoderProto, method)) == []


@per_format
def test_stream_encoder_class(fmt):
    module = load(fmt)
    cls = getattr(module, "StreamEncoder", None)
    assert inspect.isclass(cls), f"{module.__name__} lacks StreamEncoder"
    assert compatibility_problems(cls, lambda ctx: None) == [], "StreamEncoder(ctx)"
    for method in ("feed", "finish"):
        assert compatibility_problems(getattr(cls, method), getattr(StreamEncoderProto, method)) == []


def test_registry_names_match_modules():
    for name in formats.FORMAT_NAMES:
        assert formats.codec(name).__name__ == f"cliproxyd.formats.{name}"
    with pytest.raises(KeyError):
        formats.codec("nope")


# The checker itself must catch what it claims to catch.

def _proto(body, *, model: str | None = None): ...


@pytest.mark.parametrize("impl, ok", [
    (lambda body, *, model=None: None, True),
    (lambda data, *, model=None, extra=1: None, True),
    (lambda body, **kw: None, True),
    (lambda body: None, False),                       # no model keyword
    (lambda body, *, model: None, False),             # model became required
    (lambda *, model=None: None, False),              # body missing
    (lambda body, other, *, model=None: None, False),  # extra required positional
])
def test_checker(impl, ok):
    assert (compatibility_problems(impl, _proto) == []) is ok


# Passthrough: what a codec offers for answers forwarded as they came must fail where decoding
# would (the client gets the same error either way).
_BAD_ANSWERS = {
    "openai_chat": [[1, 2], {"id": "x", "object": "chat.completion"},
                    {"error": {"message": "Rate limit reached", "type": "rate_limit_error",
                               "code": 429}},
                    {"object": "error", "message": "model overloaded", "code": 503}],
    "claude": [[1, 2], {"id": "msg_1", "type": "message"}, {"type": "message", "content": {}},
               {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}],
    "gemini": [[1, 2], "text", {"candidates": {"0": {}}}],
    "openai_responses": [[1, 2], "text", None],
}


def test_every_codec_watches_passed_through_answers_and_streams():
    assert set(_BAD_ANSWERS) == set(formats.FORMAT_NAMES)
    for fmt in formats.FORMAT_NAMES:
        module = formats.codec(fmt)
        assert callable(module.watch_response) and isinstance(module.StreamWatcher, type)


@pytest.mark.parametrize("fmt,body", [(fmt, body) for fmt, bodies in _BAD_ANSWERS.items()
                                      for body in bodies])
def test_watch_response_raises_what_decode_response_raises(fmt, body):
    module = formats.codec(fmt)
    with pytest.raises(ProxyError) as decoded:
        module.decode_response(body)
    with pytest.raises(ProxyError) as watched:
        module.watch_response(body)
    assert (watched.value.kind, watched.value.message, watched.value.status) == \
        (decoded.value.kind, decoded.value.message, decoded.value.status)
