"""Tests of the fake upstreams themselves: the official SDKs accept what they send, and the
failure modes do what they say."""

from __future__ import annotations

import json
import socket

import anthropic
import openai
import pytest
import requests
from google import genai
from google.genai import types as gtypes

from tests.fakes.upstreams import start_fake


@pytest.fixture
def fake(request):
    f = start_fake(request.param)
    yield f
    f.stop()


def _claude(f):
    return anthropic.Anthropic(api_key="sk-ant-1", base_url=f.base_url, max_retries=0)


def _openai(f):
    return openai.OpenAI(api_key="sk-1", base_url=f.base_url + "/v1", max_retries=0)


def _gemini(f):
    return genai.Client(api_key="g-1", http_options=gtypes.HttpOptions(base_url=f.base_url,
                                                                    api_version="v1beta"))


@pytest.mark.parametrize("fake", ["claude"], indirect=True)
def test_claude_with_sdk(fake):
    client = _claude(fake)
    msg = client.messages.create(model="claude-x", max_tokens=10,
                                 messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "Hello from claude-x." and msg.usage.output_tokens > 0
    with client.messages.stream(model="claude-x", max_tokens=10,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "Hello from claude-x."
    fake.set_reply(tool_name="get_weather", tool_args={"city": "Paris"})
    with client.messages.stream(model="claude-x", max_tokens=10,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == {"city": "Paris"} and final.stop_reason == "tool_use"
    assert client.messages.count_tokens(model="claude-x", messages=[
        {"role": "user", "content": "hi"}]).input_tokens > 0
    req = fake.requests[0]
    assert (req.path, req.key) == ("/v1/messages", "sk-ant-1")
    assert "anthropic-version" in req.headers
    assert req.body["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
def test_openai_chat_with_sdk(fake):
    client = _openai(fake)
    done = client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == "Hello from gpt-x."
    chunks = list(client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello from gpt-x."
    assert chunks[-1].usage.total_tokens > 0
    fake.set_reply(tool_name="f", tool_args={"a": 1})
    with client.chat.completions.stream(model="gpt-x",
                                        messages=[{"role": "user", "content": "x"}]) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("f", {"a": 1})
    assert fake.requests[0].headers["authorization"] == "Bearer sk-1"
    assert fake.requests[0].path == "/v1/chat/completions"


@pytest.mark.parametrize("fake", ["responses"], indirect=True)
def test_responses_with_sdk(fake):
    client = _openai(fake)
    assert client.responses.create(model="gpt-5", input="hi").output_text == "Hello from gpt-5."
    with client.responses.stream(model="gpt-5", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hello from gpt-5." and final.usage.total_tokens > 0
    fake.set_reply(tool_name="f", tool_args={"a": 1})
    with client.responses.stream(model="gpt-5", input="hi") as stream:
        final = stream.get_final_response()
    assert (final.output[0].name, final.output[0].arguments) == ("f", '{"a":1}')


@pytest.mark.parametrize("fake", ["gemini"], indirect=True)
def test_gemini_with_sdk(fake):
    client = _gemini(fake)
    assert client.models.generate_content(model="gemini-x", contents="hi").text == \
        "Hello from gemini-x."
    text = "".join(c.text for c in client.models.generate_content_stream(model="gemini-x",
                                                                           contents="hi"))
    assert text == "Hello from gemini-x."
    assert client.models.count_tokens(model="gemini-x", contents="hi").total_tokens > 0
    paths = [(r.path, r.query.get("alt")) for r in fake.requests]
    assert paths == [("/v1beta/models/gemini-x:generateContent", None),
                     ("/v1beta/models/gemini-x:streamGenerateContent", "sse"),
                     ("/v1beta/models/gemini-x:countTokens", None)]
    assert fake.requests[0].key == "g-1"


@pytest.mark.parametrize("fake", ["gemini"], indirect=True)
def test_gemini_json_array_stream_and_query_key(fake):
    r = requests.post(fake.base_url + "/v1beta/models/m:streamGenerateContent?key=qk",
                      json={"contents": []})
    objs = json.loads(r.text)
    assert "".join(o["candidates"][0]["content"]["parts"][0]["text"] for o in objs) == \
        "Hello from m."
    assert objs[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "\n,\r\n" in r.text and fake.requests[0].key == "qk"


@pytest.mark.parametrize("fake", ["claude"], indirect=True)
def test_errors_use_provider_shape_and_per_key_modes(fake):
    fake.set_mode("429", key="bad", retry_after=7)
    client = _claude(fake)
    with pytest.raises(anthropic.RateLimitError) as info:
        anthropic.Anthropic(api_key="bad", base_url=fake.base_url, max_retries=0).messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.body["error"]["type"] == "rate_limit_error"
    client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    fake.set_mode("500", times=1)
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert [r.mode for r in fake.requests] == ["429", "ok", "500"]


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
def test_missing_key_is_401(fake):
    r = requests.post(fake.base_url + "/v1/chat/completions", json={"model": "m"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("fake", ["gemini"], indirect=True)
@pytest.mark.parametrize("mode, check", [
    ("html_error", lambda r: r.status_code == 502 and r.text.startswith("<!DOCTYPE html>")),
    ("malformed", lambda r: r.status_code == 200 and "this is not json" in r.text),
    ("truncated", lambda r: "finishReason" not in r.text and r.text.startswith("data: ")),
    ("401", lambda r: r.json()["error"]["status"] == "UNAUTHENTICATED"),
])
def test_failure_modes(fake, mode, check):
    fake.set_mode(mode)
    r = requests.post(fake.base_url + "/v1beta/models/m:streamGenerateContent?alt=sse",
                      json={"contents": []}, headers={"x-goog-api-key": "k"})
    assert check(r)


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
def test_drop_closes_mid_stream(fake):
    fake.set_mode("drop")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        r = requests.post(fake.base_url + "/v1/chat/completions", stream=True,
                          json={"model": "m", "stream": True}, headers={"Authorization": "Bearer k"})
        b"".join(r.iter_content(None))


@pytest.mark.parametrize("fake", ["responses"], indirect=True)
def test_stall_then_client_disconnect_is_counted(fake):
    fake.set_mode("stall")
    body = json.dumps({"model": "m", "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", fake.port)) as sock:
        sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        assert b"response.created" in sock.recv(65536)
    assert fake.wait_disconnects(1, timeout=10)
