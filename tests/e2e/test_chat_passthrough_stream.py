"""A Chat stream passed through to a Chat client (the same format on both sides) reaches the
official ``openai`` SDK as the upstream wrote it: shapes the internal representation cannot hold
still arrive, and the only chunk held back is the usage-only one cliproxyd itself asked for.

The upstream is scripted: a Tornado app on 127.0.0.1 that answers every chat request with fixed
OpenAI ``chat.completion.chunk`` events (``data: <json>`` lines, ``data: [DONE]`` last)."""

from __future__ import annotations

import json

import openai
import pytest
import tornado.web
from harness import Daemon

from tests.fakes.server import BackgroundServer

CLIENT_KEY = "client-key-passthrough-0001"


def _chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "up-model", "choices": [{"index": 0, "delta": delta,
                                               "finish_reason": finish, "logprobs": None}],
            **extra}


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
SCRIPTS = {
    # Parallel calls whose argument pieces alternate between the calls (some providers do so).
    "interleaved": [
        _chunk({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": '}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                "function": {"name": "get_time", "arguments": '{"tz": '}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        _chunk({"tool_calls": [{"index": 1, "function": {"arguments": '"CET"}'}}]}),
        _chunk({}, "tool_calls"),
        {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000,
         "model": "up-model", "choices": [], "usage": USAGE},
    ],
    # Usage carried on the finish chunk itself (no separate usage-only chunk).
    "usage_on_finish": [
        _chunk({"role": "assistant", "content": "Hi"}),
        _chunk({"content": " there"}),
        _chunk({}, "stop", usage=USAGE),
    ],
    # The upstream's model name written with \u escapes: the relay cannot splice the client's
    # name in and writes the chunk again (the content must survive that unchanged).
    "escaped_model": [
        dict(_chunk({"role": "assistant", "content": 'Voilà "model": "up-modèle"'}),
             model="up-modèle"),
        dict(_chunk({}, "stop"), model="up-modèle"),
    ],
    # Nothing said (say, filtered), then the finish chunk with usage on it.
    "empty_then_finish_with_usage": [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({}, "content_filter", usage=USAGE),
    ],
}


class _Scripted(tornado.web.RequestHandler):
    def post(self) -> None:
        body = json.loads(self.request.body)
        self.set_header("Content-Type", "text/event-stream")
        for chunk in SCRIPTS[body["model"]]:
            self.write(f"data: {json.dumps(chunk)}\n\n")
        self.write("data: [DONE]\n\n")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    upstream = BackgroundServer(lambda: tornado.web.Application(
        [(r"/v1/chat/completions", _Scripted)]), "scripted-openai")
    config = {"api-keys": [CLIENT_KEY], "openai-compatibility": [{
        "name": "scripted", "base-url": f"{upstream.url}/v1",
        "api-key-entries": [{"api-key": "sk-scripted-upstream"}],
        "models": [{"name": name, "alias": name} for name in SCRIPTS]}]}
    d = Daemon(tmp_path_factory.mktemp("passthrough"), config).start()
    yield d
    d.stop()
    upstream.stop()


def _stream(daemon, model: str, **options) -> list:
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    return list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, **options))


def test_interleaved_parallel_call_arguments_reach_the_client(daemon):
    chunks = _stream(daemon, "interleaved")
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args[call.index] = args.get(call.index, "") + (call.function.arguments or "")
            if call.function.name:
                names[call.index] = call.function.name
    assert names == {0: "get_weather", 1: "get_time"}
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"city": "Paris"}, 1: {"tz": "CET"}}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"  # no usage chunk: not asked for
    assert all(c.usage is None for c in chunks)


def test_usage_asked_for_arrives_in_its_own_chunk(daemon):
    chunks = _stream(daemon, "interleaved", stream_options={"include_usage": True})
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 18


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_finish_chunk_carrying_usage_is_never_dropped(daemon, include_usage):
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = _stream(daemon, "usage_on_finish", **options)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hi there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens == 18


def test_a_finish_chunk_after_no_content_is_never_dropped(daemon):
    chunks = _stream(daemon, "empty_then_finish_with_usage")
    assert chunks[-1].choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("script", ["usage_on_finish", "escaped_model"])
def test_every_chunk_names_the_model_the_client_asked_for(daemon, script):
    """The upstream names its own model in every chunk; the client sees the name it asked for,
    as a whole answer or a translated stream would show it, and the content is untouched."""
    chunks = _stream(daemon, script)
    assert {c.model for c in chunks} == {script}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ("Hi there" if script == "usage_on_finish" else 'Voilà "model": "up-modèle"')
