"""The pipeline's reading of a request (`_Plan`): model and stream flag at once, the IR request
only when something needs it, and what encoders echo when the body is one only the upstream
could judge."""

from __future__ import annotations

import pytest

from cliproxyd.errors import ProxyError
from cliproxyd.pipeline import ClientSide, _Plan


def plan(fmt: str, body: dict, url_model: str | None = None, stream: bool | None = None) -> _Plan:
    return _Plan(ClientSide.of(fmt), body, url_model, stream, {}, 1_700_000_000)


def test_the_head_is_read_and_the_body_left_undecoded():
    p = plan("openai_chat", {"model": "gpt-x", "stream": True, "n": 2, "messages": "not a list"})
    assert (p.asked, p.model, p.stream, p.suffix) == ("gpt-x", "gpt-x", True, False)
    assert p._request is None  # nothing decoded yet: a passthrough never needs it
    assert p.passes_through("openai_chat") and not p.passes_through("claude")


def test_a_bad_body_fails_when_decoded_and_encoders_get_its_head():
    p = plan("openai_chat", {"model": "gpt-x", "n": 2, "messages": []})
    with pytest.raises(ProxyError) as caught:
        p.decode()
    assert caught.value.status == 400
    assert (p.ctx.request.model, p.ctx.request.stream, p.ctx.request.messages) == ("gpt-x", False, ())
    assert p.ctx.response_id.startswith("chatcmpl-") and p.ctx.created == 1_700_000_000


@pytest.mark.parametrize("fmt, body, message", [
    ("openai_chat", {"messages": []}, "'model' is required"),
    ("claude", {"model": "c", "stream": 1}, "stream: must be a boolean"),
    ("openai_responses", {"model": ""}, "you must provide a model parameter"),
    ("gemini", [], "request body must be a JSON object"),
])
def test_the_head_refuses_what_decoding_refuses(fmt, body, message):
    with pytest.raises(ProxyError) as caught:
        plan(fmt, body)
    assert caught.value.status == 400 and message in caught.value.message


def test_a_reasoning_suffix_is_decoded_for_translation():
    p = plan("claude", {"model": "claude-x(high)", "max_tokens": 5,
                        "messages": [{"role": "user", "content": "hi"}]})
    assert (p.asked, p.model, p.suffix) == ("claude-x(high)", "claude-x", True)
    assert not p.passes_through("claude")
    assert p.request.reasoning is not None and p.request.model == "claude-x(high)"


def test_gemini_takes_model_and_stream_from_the_url():
    p = plan("gemini", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
             url_model="models/gemini-x", stream=True)
    assert (p.asked, p.stream) == ("gemini-x", True)
    assert p.request.stream is True and p.request.model == "gemini-x"


def test_sides_without_a_head_are_decoded_at_once():
    p = _Plan(ClientSide.legacy_completions(), {"model": "m", "prompt": "hi", "stream": True},
              None, None, {}, 0)
    assert p._request is not None and (p.asked, p.stream) == ("m", True)
    assert not p.passes_through("openai_chat")
