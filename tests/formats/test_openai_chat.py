"""Tests for cliproxyd/formats/openai_chat.py (and its _openai_chat_* helpers).

Golden vectors live in tests/golden/openai_chat/: request/response bodies and SSE transcripts
shaped as in the OpenAI API reference (plus a DeepSeek reasoner sample for reasoning_content).
The stream encoder's bytes are parsed by the official openai SDK through a mock transport.
"""

from __future__ import annotations

import base64
import json
import pathlib

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types import Completion
from openai.types.chat import ChatCompletion

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir
from cliproxyd.formats import openai_chat as oc
from cliproxyd.formats.sse import Event

GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "golden" / "openai_chat"
CTX = ir.EncodeContext(model="my-model", created=1700000000, response_id="chatcmpl-ctx")


def golden(name: str):
    return json.loads((GOLDEN / name).read_text())


def sse_events(text: str) -> list[Event]:
    """Split an SSE transcript (data/event lines, blank-line separated) into Events."""
    events = []
    for block in text.split("\n\n"):
        data, kind = [], None
        for line in block.splitlines():
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line.startswith("event:"):
                kind = line[6:].strip()
        if data:
            events.append(Event(data="\n".join(data), event=kind))
    return events


def frame(events: list[Event]) -> bytes:
    return b"".join(f"data: {e.data}\n\n".encode() for e in events)


def decode_stream(name: str) -> list:
    decoder = oc.StreamDecoder()
    out = []
    for event in sse_events((GOLDEN / name).read_text()):
        out += decoder.feed(event)
    return out + decoder.finish()


def encode_stream(events, ctx=CTX, cls=None) -> list[Event]:
    encoder = (cls or oc.StreamEncoder)(ctx)
    out = []
    for event in events:
        out += encoder.feed(event)
    return out + encoder.finish()


def sdk_client(body: bytes, content_type: str = "text/event-stream") -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)
    return openai.OpenAI(api_key="x", base_url="http://upstream.test/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def stream_ctx(include_usage: bool) -> ir.EncodeContext:
    extras = {"stream_options": {"include_usage": True}} if include_usage else {}
    request = ir.Request(model="my-model", messages=(), stream=True, extras=extras)
    return ir.EncodeContext(model="my-model", created=1700000000, response_id="chatcmpl-ctx",
                            request=request)


# =============================================================================================
# requests: golden vectors


def test_decode_default_request_developer_is_system():
    req = oc.decode_request(golden("request_default.json"))
    assert req.model == "gpt-4.1"
    assert req.system == (ir.TextPart("You are a helpful assistant.", {"role": "developer"}),)
    assert req.messages == (ir.Message("user", (ir.TextPart("Hello!"),)),)
    assert req.stream is False and req.max_output_tokens is None


def test_decode_vision_request_url_and_inline_image():
    req = oc.decode_request(golden("request_vision.json"))
    text, by_url, inline = req.messages[0].parts
    assert text == ir.TextPart("What's in this image?")
    assert by_url.url.startswith("https://upload.wikimedia.org/") and by_url.data is None
    assert by_url.extras == {"detail": "high"}
    assert inline.url is None and inline.mime_type == "image/png"
    assert inline.data.startswith(b"\x89PNG")
    assert req.max_output_tokens == 300


def test_decode_tools_request_joins_tool_messages_and_names_results():
    req = oc.decode_request(golden("request_tools.json"))
    assert [m.role for m in req.messages] == ["user", "assistant", "user", "user"]
    calls = req.messages[1].parts
    assert calls == (
        ir.ToolCallPart("call_abc123", "get_current_weather", '{"location": "Boston, MA"}'),
        ir.ToolCallPart("call_def456", "get_current_weather",
                        '{"location": "Paris, France", "unit": "celsius"}'))
    results = req.messages[2].parts
    assert [type(p) for p in results] == [ir.ToolResultPart, ir.ToolResultPart]
    assert results[0].tool_call_id == "call_abc123" and results[0].name == "get_current_weather"
    assert results[0].content == (ir.TextPart('{"temperature": 22, "unit": "fahrenheit"}'),)
    assert results[1].content == (ir.TextPart("18 celsius"),)
    assert req.messages[3].parts == (ir.TextPart("Which one is warmer?"),)
    tool = req.tools[0]
    assert tool.name == "get_current_weather" and tool.parameters["required"] == ["location"]
    assert req.tool_choice == ir.ToolChoice("auto") and req.parallel_tool_calls is True


def test_decode_settings_request_maps_every_setting():
    req = oc.decode_request(golden("request_settings.json"))
    assert req.max_output_tokens == 1024
    assert (req.temperature, req.top_p, req.top_k, req.seed) == (0.2, 0.9, 40, 42)
    assert req.stop == ("\n\n", "END")
    assert (req.presence_penalty, req.frequency_penalty) == (0.5, -0.5)
    assert req.response_format.type == "json_schema" and req.response_format.name == "colours"
    assert req.response_format.strict is True
    assert req.response_format.schema["required"] == ["colours"]
    assert req.reasoning == ir.Reasoning(effort="high")
    assert req.tool_choice == ir.ToolChoice("tool", "get_current_weather")
    assert req.user == "user-1234" and req.metadata == {"session": "abc"}
    assert req.stream is True
    assert req.extras["stream_options"] == {"include_usage": True}
    assert req.extras["logprobs"] is True and req.extras["top_logprobs"] == 2
    assert req.messages[0].extras == {"name": "alice"}
    assert req.messages[1].parts == (ir.ThinkingPart("The user wants colours."),
                                     ir.TextPart('{"colours": ["red"]}'))


def test_decode_files_request():
    pdf, by_id, audio, text = oc.decode_request(golden("request_files.json")).messages[0].parts
    assert pdf == ir.FilePart(data=b"%PDF-1.4\n", mime_type="application/pdf",
                              filename="draconomicon.pdf")
    assert by_id == ir.FilePart(file_id="file-6F2ksmvXxt4VdoqmHRw6kL")
    assert audio.mime_type == "audio/wav" and audio.data.startswith(b"RIFF")
    assert text == ir.TextPart("Summarise both and transcribe the audio.")


@pytest.mark.parametrize("name", ["request_default.json", "request_vision.json",
                                  "request_settings.json", "request_files.json"])
def test_request_round_trip_restores_the_body(name):
    body = golden(name)
    again = oc.encode_request(oc.decode_request(body), model=body["model"])
    assert again == body


def test_request_round_trip_tools_is_a_fixpoint():
    req = oc.decode_request(golden("request_tools.json"))
    body = oc.encode_request(req, model="gpt-4.1")
    assert oc.decode_request(body) == req
    # the run of two tool messages comes back out as two tool messages, in order
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool", "tool", "user"]
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_def456",
                                   "content": "18 celsius"}


def test_encode_request_streaming_always_asks_for_usage():
    req = ir.Request(model="m", messages=(ir.Message("user", (ir.TextPart("hi"),)),), stream=True)
    body = oc.encode_request(req, model="up")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    unstreamed = oc.encode_request(ir.Request(model="m", messages=req.messages,
                                              extras={"stream_options": {"include_usage": True}}),
                                   model="up")
    assert "stream_options" not in unstreamed and "stream" not in unstreamed


def test_encode_request_ignores_foreign_extras_and_maps_budget():
    req = ir.Request(model="m", messages=(ir.Message("user", (ir.TextPart("hi"),)),),
                     reasoning=ir.Reasoning(budget=8192), max_output_tokens=50,
                     extras={"container": "x", "mcp_servers": [], "store": True})
    body = oc.encode_request(req, model="up")
    assert "container" not in body and "mcp_servers" not in body and body["store"] is True
    assert body["reasoning_effort"] == "medium" and body["max_tokens"] == 50


def test_encode_request_moves_tool_result_images_to_a_user_message():
    png = b"\x89PNG\r\n"
    req = ir.Request(model="m", messages=(
        ir.Message("assistant", (ir.ToolCallPart("c1", "shot", "{}"),)),
        ir.Message("user", (ir.ToolResultPart("c1", (ir.TextPart("done"),
                                                     ir.ImagePart(data=png, mime_type="image/png")),
                                              is_error=True),
                            ir.TextPart("look"))),
    ), system=(ir.TextPart("sys"),))
    msgs = oc.encode_request(req, model="up")["messages"]
    assert msgs[0] == {"role": "system", "content": "sys"}
    assert msgs[2] == {"role": "tool", "tool_call_id": "c1", "content": "done"}
    assert msgs[3]["role"] == "user"
    assert msgs[3]["content"][0]["image_url"]["url"] == \
        "data:image/png;base64," + base64.b64encode(png).decode()
    assert msgs[4] == {"role": "user", "content": "look"}


def test_encode_assistant_thinking_only_when_present():
    with_thought = ir.Message("assistant", (ir.ThinkingPart("hmm", signature="sig"),
                                            ir.TextPart("answer")))
    plain = ir.Message("assistant", (ir.TextPart("answer"),))
    req = ir.Request(model="m", messages=(ir.Message("user", (ir.TextPart("q"),)),
                                          with_thought, ir.Message("user", (ir.TextPart("q2"),)),
                                          plain))
    msgs = oc.encode_request(req, model="up")["messages"]
    assert msgs[1] == {"role": "assistant", "content": "answer", "reasoning_content": "hmm"}
    assert msgs[3] == {"role": "assistant", "content": "answer"}


def test_gemini_thought_signature_on_tool_calls_round_trips():
    call = {"id": "function-call-1", "type": "function",
            "function": {"name": "check_flight", "arguments": "{\"flight\":\"AA100\"}"},
            "extra_content": {"google": {"thought_signature": "<Signature A>"}}}
    body = {"model": "gemini-2.5-flash", "messages": [
        {"role": "user", "content": "Check flight status for AA100."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "function-call-1", "content": "{\"status\":\"delayed\"}"}]}
    req = oc.decode_request(body)
    assert req.messages[1].parts[0].extras == {"extra_content": call["extra_content"]}
    assert oc.encode_request(req, model="gemini-2.5-flash") == body
    resp = oc.decode_response({"id": "r", "model": "g", "choices": [{
        "index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]})
    encoded = oc.encode_response(resp, CTX)
    assert encoded["choices"][0]["message"]["tool_calls"] == [call]


def test_encode_tool_choice_and_max_effort_edges():
    req = ir.Request(model="m", messages=(), tool_choice=ir.ToolChoice("tool"),
                     tools=(ir.Tool("f"),), reasoning=ir.Reasoning(effort="max"))
    body = oc.encode_request(req, model="m")
    assert body["tool_choice"] == "required" and body["reasoning_effort"] == "xhigh"


def test_tool_choice_and_parallel_calls_need_tools():
    # OpenAI: "'tool_choice' is only allowed when 'tools' are specified" (parallel_tool_calls
    # too); another format may carry a choice without tools.
    req = ir.Request(model="m", messages=(), tool_choice=ir.ToolChoice("auto"),
                     parallel_tool_calls=False)
    body = oc.encode_request(req, model="m")
    assert "tool_choice" not in body and "parallel_tool_calls" not in body


# =============================================================================================
# requests: rejections


@pytest.mark.parametrize("body, param", [
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages[0].content[0].type"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
     "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "maybe"},
     "tool_choice"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}],
      "reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "yaml"}}, "response_format.type"),
])
def test_decode_request_rejects_with_400(body, param):
    with pytest.raises(ProxyError) as info:
        oc.decode_request(body)
    assert info.value.kind is ErrorKind.INVALID_REQUEST and info.value.status == 400
    assert info.value.param == param


def test_decode_request_model_override_and_n_one():
    req = oc.decode_request({"messages": [{"role": "user", "content": "x"}], "n": 1}, model="o")
    assert req.model == "o"


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                          max_size=3),
                     max_leaves=8)
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool", "system",
                                                           "developer", "x"])},
                                 optional={"content": _json, "tool_calls": _json,
                                           "tool_call_id": _json, "reasoning_content": _json})


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({"model": st.just("m"), "messages": st.lists(_message, max_size=4)},
                             optional={k: _json for k in (
                                 "tools", "tool_choice", "stop", "temperature", "n",
                                 "response_format", "max_tokens", "metadata", "stream_options")}))
def test_decode_request_never_leaks_python_errors(body):
    try:
        oc.decode_request(body)
    except ProxyError as err:
        assert err.status == 400


# =============================================================================================
# requests: property test (IR → Chat → IR)

_text = st.text(min_size=1, max_size=12)
_png = st.binary(min_size=1, max_size=16)
_user_part = st.one_of(
    _text.map(ir.TextPart),
    st.sampled_from(["https://example.com/a.png", "https://example.com/b.jpg"]).map(
        lambda u: ir.ImagePart(url=u)),
    _png.map(lambda b: ir.ImagePart(data=b, mime_type="image/png")),
    _png.map(lambda b: ir.FilePart(data=b, mime_type="application/pdf", filename="a.pdf")),
)


@st.composite
def _turns(draw):
    """user / assistant(+tool calls → tool results) turns Chat can express exactly."""
    messages, n = [], draw(st.integers(1, 3))
    for i in range(n):
        messages.append(ir.Message("user", tuple(draw(st.lists(_user_part, min_size=1,
                                                               max_size=3)))))
        parts = []
        if draw(st.booleans()):
            parts.append(ir.ThinkingPart(draw(_text)))
        if draw(st.booleans()):
            parts.append(ir.TextPart(draw(_text)))
        calls = [ir.ToolCallPart(f"call_{i}_{k}", draw(st.sampled_from(["f", "g"])),
                                 json.dumps({"k": draw(st.integers())}))
                 for k in range(draw(st.integers(0 if parts else 1, 2)))]
        messages.append(ir.Message("assistant", tuple(parts + calls)))
        if calls:
            results = tuple(ir.ToolResultPart(c.id, (ir.TextPart(draw(_text)),), name=c.name)
                            for c in calls)
            messages.append(ir.Message("user", results))
    return tuple(messages)


_ir_request = st.builds(
    ir.Request,
    model=st.just("m"),
    messages=_turns(),
    system=st.lists(st.builds(ir.TextPart, _text, st.sampled_from([ir.EMPTY,
                                                                   {"role": "developer"}])),
                    max_size=2).map(tuple),
    tools=st.lists(st.builds(ir.Tool, st.sampled_from(["f", "g"]), st.none() | _text,
                             st.just({"type": "object", "properties": {}})),
                   max_size=2, unique_by=lambda t: t.name).map(tuple),
    tool_choice=st.none() | st.builds(ir.ToolChoice, st.sampled_from(["auto", "none",
                                                                       "required"]))
    | st.builds(ir.ToolChoice, st.just("tool"), st.just("f")),
    parallel_tool_calls=st.none() | st.booleans(),
    max_output_tokens=st.none() | st.integers(1, 100000),
    temperature=st.none() | st.floats(0, 2), top_p=st.none() | st.floats(0, 1),
    top_k=st.none() | st.integers(1, 100),
    stop=st.lists(_text, max_size=3).map(tuple), seed=st.none() | st.integers(0, 2**31),
    presence_penalty=st.none() | st.floats(-2, 2),
    frequency_penalty=st.none() | st.floats(-2, 2),
    response_format=st.none() | st.builds(ir.ResponseFormat, st.sampled_from(["text",
                                                                              "json_object"]))
    | st.builds(ir.ResponseFormat, st.just("json_schema"), st.just({"type": "object"}),
                st.just("out"), st.none() | st.booleans()),
    reasoning=st.none() | st.builds(ir.Reasoning, st.sampled_from(["none", "low", "medium",
                                                                   "high"])),
    stream=st.booleans(), user=st.none() | _text,
    metadata=st.dictionaries(st.sampled_from(["a", "b"]), _text, max_size=2),
)


@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(_ir_request)
def test_ir_request_survives_encode_decode(request):
    decoded = oc.decode_request(oc.encode_request(request, model="m"))
    expected_extras = {"stream_options": {"include_usage": True}} if request.stream else {}
    assert decoded.extras == expected_extras
    no_tools = {"tool_choice": None, "parallel_tool_calls": None} if not request.tools else {}
    assert decoded == ir.Request(**{**request.__dict__, "extras": decoded.extras, **no_tools})


# =============================================================================================
# responses


def test_decode_default_response():
    resp = oc.decode_response(golden("response_default.json"))
    assert resp.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert resp.model == "gpt-4.1-2025-04-14"
    assert resp.parts == (ir.TextPart("Hello! How can I assist you today?"),)
    assert resp.stop_reason is ir.StopReason.END_TURN and resp.native_stop_reason == "stop"
    assert resp.usage == ir.Usage(input_tokens=19, output_tokens=10, cached_input_tokens=0,
                                  reasoning_tokens=0, total_tokens=29)
    assert resp.extras["service_tier"] == "default"


def test_decode_tool_call_response():
    resp = oc.decode_response(golden("response_tool_calls.json"))
    assert resp.parts == (ir.ToolCallPart("call_abc123", "get_current_weather",
                                          '{\n"location": "Boston, MA"\n}'),)
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert resp.usage.total_tokens == 99 and resp.usage.cached_input_tokens is None


def test_decode_reasoning_response():
    resp = oc.decode_response(golden("response_reasoning.json"))
    assert resp.parts == (ir.ThinkingPart("Compare the tenths digit: 1 < 8."),
                          ir.TextPart("9.11 is smaller than 9.8."))
    assert resp.stop_reason is ir.StopReason.MAX_TOKENS
    assert resp.usage.cached_input_tokens == 16 and resp.usage.reasoning_tokens == 297


def test_decode_response_reasoning_field_variant():
    body = {"id": "gen-1", "model": "x", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "ok", "reasoning": "because"}}]}
    assert oc.decode_response(body).parts == (ir.ThinkingPart("because"), ir.TextPart("ok"))


def test_decode_response_error_body_raises():
    with pytest.raises(ProxyError) as info:
        oc.decode_response({"error": {"message": "slow down", "type": "rate_limit_error",
                                      "code": "rate_limit_exceeded"}})
    assert info.value.kind is ErrorKind.RATE_LIMITED and info.value.message == "slow down"
    with pytest.raises(ProxyError):
        oc.decode_response({"object": "chat.completion"})


@pytest.mark.parametrize("name", ["response_default.json", "response_tool_calls.json",
                                  "response_reasoning.json"])
def test_response_round_trip_and_sdk_validates(name):
    resp = oc.decode_response(golden(name))
    body = oc.encode_response(resp, CTX)
    parsed = ChatCompletion.model_validate(body)
    assert parsed.model == "my-model" and parsed.created == 1700000000
    assert parsed.id == resp.id
    assert oc.decode_response(body) == ir.Response(**{**resp.__dict__, "model": "my-model"})
    original = golden(name)["choices"][0]
    assert parsed.choices[0].finish_reason == original["finish_reason"]
    assert parsed.usage.prompt_tokens == golden(name)["usage"]["prompt_tokens"]


def test_encode_response_from_foreign_ir():
    resp = ir.Response(id="", model="claude", parts=(
        ir.ThinkingPart("t", signature="s"), ir.TextPart("a"), ir.TextPart("b"),
        ir.ToolCallPart("toolu_1", "f", '{"x":1}')),
        stop_reason=ir.StopReason.END_TURN,
        usage=ir.Usage(input_tokens=100, output_tokens=20, cached_input_tokens=40,
                       cache_creation_tokens=10, reasoning_tokens=5))
    body = oc.encode_response(resp, CTX)
    parsed = ChatCompletion.model_validate(body)
    msg = parsed.choices[0].message
    assert parsed.id == "chatcmpl-ctx" and msg.content == "ab"
    assert body["choices"][0]["message"]["reasoning_content"] == "t"
    assert msg.tool_calls[0].function.arguments == '{"x":1}'
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert body["usage"] == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                             "prompt_tokens_details": {"cached_tokens": 40,
                                                       "cache_write_tokens": 10},
                             "completion_tokens_details": {"reasoning_tokens": 5}}


# =============================================================================================
# tables


@pytest.mark.parametrize("finish, reason", [
    ("stop", ir.StopReason.END_TURN), ("length", ir.StopReason.MAX_TOKENS),
    ("tool_calls", ir.StopReason.TOOL_USE), ("function_call", ir.StopReason.TOOL_USE),
    ("content_filter", ir.StopReason.CONTENT_FILTER), (None, ir.StopReason.END_TURN),
    ("weird", ir.StopReason.END_TURN),
])
def test_finish_reason_decode_table(finish, reason):
    assert oc.stop_reason_from_finish(finish) is reason


@pytest.mark.parametrize("reason, finish", [
    (ir.StopReason.END_TURN, "stop"), (ir.StopReason.STOP_SEQUENCE, "stop"),
    (ir.StopReason.MAX_TOKENS, "length"), (ir.StopReason.TOOL_USE, "tool_calls"),
    (ir.StopReason.CONTENT_FILTER, "content_filter"), (ir.StopReason.REFUSAL, "content_filter"),
    (ir.StopReason.PAUSE_TURN, "stop"), (ir.StopReason.ERROR, "stop"),
])
def test_finish_reason_encode_table(reason, finish):
    assert oc.finish_from_stop(reason) == finish


def test_finish_reason_with_tool_calls_is_tool_calls():
    assert oc.finish_from_stop(ir.StopReason.END_TURN, had_tool_calls=True) == "tool_calls"
    assert oc.finish_from_stop(ir.StopReason.MAX_TOKENS, had_tool_calls=True) == "length"


def test_usage_tables():
    wire = {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 4}}
    usage = oc.usage_from_wire(wire)
    assert usage == ir.Usage(10, 7, 3, 2, 4, 17)
    assert oc.usage_to_wire(usage) == wire
    assert oc.usage_from_wire(None) is None
    assert oc.usage_to_wire(ir.Usage(input_tokens=5)) == {
        "prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh"])
def test_reasoning_effort_round_trip(effort):
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}],
            "reasoning_effort": effort}
    req = oc.decode_request(body)
    assert req.reasoning == ir.Reasoning(effort=effort)
    assert oc.encode_request(req, model="m")["reasoning_effort"] == effort


@pytest.mark.parametrize("budget, effort", [(0, "none"), (-1, "auto"), (512, "minimal"),
                                            (1024, "low"), (20000, "high"), (50000, "xhigh")])
def test_reasoning_budget_to_effort(budget, effort):
    req = ir.Request(model="m", messages=(), reasoning=ir.Reasoning(budget=budget))
    assert oc.encode_request(req, model="m")["reasoning_effort"] == effort


# =============================================================================================
# errors


@pytest.mark.parametrize("kind, etype", [
    (ErrorKind.INVALID_REQUEST, "invalid_request_error"),
    (ErrorKind.AUTHENTICATION, "authentication_error"),
    (ErrorKind.PERMISSION, "permission_error"),
    (ErrorKind.MODEL_NOT_FOUND, "invalid_request_error"),
    (ErrorKind.RATE_LIMITED, "rate_limit_error"),
    (ErrorKind.UPSTREAM_ERROR, "server_error"),
    (ErrorKind.UPSTREAM_UNAVAILABLE, "server_error"),
    (ErrorKind.INTERNAL, "server_error"),
])
def test_render_error_shape(kind, etype):
    body = oc.render_error(ProxyError(kind, "boom", param="p"))
    assert body == {"error": {"message": "boom", "type": etype, "param": "p",
                              "code": "model_not_found" if kind is ErrorKind.MODEL_NOT_FOUND
                              else None}}


def test_render_error_matches_golden_and_sdk_raises_it():
    err = ProxyError(ErrorKind.MODEL_NOT_FOUND,
                     "The model `gpt-5-nope` does not exist or you do not have access to it.")
    body = oc.render_error(err)
    assert body == golden("error_model_not_found.json")

    def handler(request):
        return httpx2.Response(err.status, json=body)
    client = openai.OpenAI(api_key="x", base_url="http://t/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-5-nope", messages=[{"role": "user",
                                                                      "content": "x"}])
    assert info.value.code == "model_not_found"


# =============================================================================================
# stream decoder


def test_decode_text_stream_golden():
    events = decode_stream("stream_text.txt")
    assert events[0] == ir.MessageStart(id="chatcmpl-123", model="gpt-4o-mini")
    assert events[1] == ir.BlockStart(0, "text")
    text = "".join(e.text for e in events if isinstance(e, ir.TextDelta))
    assert text == "Hello! How can I help you today?"
    assert events[-3:] == [
        ir.BlockStop(0),
        ir.UsageUpdate(ir.Usage(19, 9, 0, None, 0, 28)),
        ir.MessageStop(ir.StopReason.END_TURN, native_stop_reason="stop"),
    ]


def test_decode_parallel_tool_call_stream_golden():
    events = decode_stream("stream_tool_calls.txt")
    assert events == [
        ir.MessageStart(id="chatcmpl-123", model="gpt-4o-mini"),
        ir.ToolCallStart(0, "call_abc123", "get_current_weather"),
        ir.ToolArgsDelta(0, '{"lo'), ir.ToolArgsDelta(0, 'cation": "Bo'),
        ir.ToolArgsDelta(0, 'ston, MA"}'),
        ir.BlockStop(0),
        ir.ToolCallStart(1, "call_def456", "get_current_weather"),
        ir.ToolArgsDelta(1, '{"location": '), ir.ToolArgsDelta(1, '"Paris, France"}'),
        ir.BlockStop(1),
        ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="tool_calls"),
    ]


def test_decode_reasoning_stream_golden():
    events = decode_stream("stream_reasoning.txt")
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["MessageStart", "BlockStart", "ThinkingDelta", "ThinkingDelta",
                     "ThinkingDelta", "BlockStop", "BlockStart", "TextDelta", "TextDelta",
                     "BlockStop", "UsageUpdate", "MessageStop"]
    assert events[1] == ir.BlockStart(0, "thinking") and events[6] == ir.BlockStart(1, "text")
    assert events[-2].usage.reasoning_tokens == 20 and events[-2].usage.cached_input_tokens == 16


def test_decode_error_stream_golden():
    events = decode_stream("stream_error.txt")
    assert isinstance(events[-1], ir.StreamError)
    err = events[-1].error
    assert err.kind is ErrorKind.UPSTREAM_ERROR and err.status == 502
    assert "server had an error" in err.message
    assert sum(isinstance(e, ir.StreamError) for e in events) == 1


def test_decode_truncated_stream_is_an_error():
    events = decode_stream("stream_truncated.txt")
    assert isinstance(events[-1], ir.StreamError)
    assert events[-1].error.status == 502
    assert events[-1].error.message == "upstream stream ended before completion"


def test_decode_finish_without_done_is_complete():
    decoder = oc.StreamDecoder()
    decoder.feed(Event(json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"},
                                                           "finish_reason": None}]})))
    out = decoder.feed(Event(json.dumps({"id": "c", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "length"}]})))
    assert out == [ir.BlockStop(0)]
    assert decoder.finish() == [ir.MessageStop(ir.StopReason.MAX_TOKENS,
                                               native_stop_reason="length")]
    assert decoder.finish() == []


def test_decode_announced_calls_then_arguments():
    """Some providers announce every call first, then stream each call's arguments."""
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"index": 1, "id": "b", "type": "function", "function": {"name": "g",
                                                                     "arguments": ""}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
            "arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {
            "arguments": "{\"x\":1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    decoder = oc.StreamDecoder()
    events = [e for c in chunks for e in decoder.feed(Event(json.dumps(c)))]
    events += decoder.feed(Event("[DONE]"))
    assert events[1:] == [
        ir.ToolCallStart(0, "a", "f"), ir.ToolArgsDelta(0, "{}"), ir.BlockStop(0),
        ir.ToolCallStart(1, "b", "g"), ir.ToolArgsDelta(1, '{"x":1}'), ir.BlockStop(1),
        ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="tool_calls"),
    ]


def test_decode_argument_for_closed_call_is_an_error():
    decoder = oc.StreamDecoder()
    for tc in ({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}},
               {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}}):
        decoder.feed(Event(json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [tc]}}]})))
    out = decoder.feed(Event(json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "}"}}]}}]})))
    assert isinstance(out[-1], ir.StreamError)
    assert decoder.feed(Event("[DONE]")) == [] and decoder.finish() == []


def test_decode_usage_only_and_empty_chunks_and_tool_stop():
    decoder = oc.StreamDecoder()
    events = decoder.feed(Event(json.dumps({"id": "x", "model": "m", "choices": []})))
    events += decoder.feed(Event(json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "stop"}]})))
    events += decoder.feed(Event(json.dumps({"choices": [], "usage": {
        "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})))
    events += decoder.feed(Event("[DONE]"))
    assert events == [
        ir.MessageStart(id="x", model="m"),
        ir.ToolCallStart(0, "c1", "f"), ir.ToolArgsDelta(0, "{}"), ir.BlockStop(0),
        ir.UsageUpdate(ir.Usage(input_tokens=3, output_tokens=2, total_tokens=5)),
        ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="stop"),
    ]


@pytest.mark.parametrize("data", ["{not json", "[1, 2]"])
def test_decode_malformed_chunk_is_an_error(data):
    out = oc.StreamDecoder().feed(Event(data))
    assert len(out) == 1 and isinstance(out[0], ir.StreamError)


def test_decode_rate_limit_error_event_keeps_its_kind():
    out = oc.StreamDecoder().feed(Event(json.dumps({"error": {
        "message": "Rate limit reached", "type": "rate_limit_error", "code": 429}})))
    assert out[0].error.kind is ErrorKind.RATE_LIMITED and out[0].error.status == 429


# =============================================================================================
# stream encoder (output parsed by the official SDK)


def _sample_events():
    return [
        ir.MessageStart(id="msg_up", model="upstream-model"),
        ir.BlockStart(0, "thinking"), ir.ThinkingDelta(0, "let me think"),
        ir.ThinkingDelta(0, "", signature="sig"), ir.BlockStop(0),
        ir.BlockStart(1, "text"), ir.TextDelta(1, "Hello"), ir.TextDelta(1, " world"),
        ir.BlockStop(1),
        ir.ToolCallStart(2, "call_1", "get_weather"), ir.ToolArgsDelta(2, '{"city":'),
        ir.ToolArgsDelta(2, '"Paris"}'), ir.BlockStop(2),
        ir.ToolCallStart(3, "call_2", "get_time"), ir.ToolArgsDelta(3, "{}"), ir.BlockStop(3),
        ir.MessageStop(ir.StopReason.TOOL_USE),
        ir.UsageUpdate(ir.Usage(input_tokens=12, output_tokens=8, cached_input_tokens=4,
                                reasoning_tokens=3)),
    ]


def test_stream_encoder_exact_sequence():
    out = encode_stream(_sample_events(), stream_ctx(True))
    chunks = [json.loads(e.data) for e in out[:-1]]
    assert out[-1] == Event(data="[DONE]")
    assert all(c["id"] == "msg_up" and c["object"] == "chat.completion.chunk"
               and c["created"] == 1700000000 and c["model"] == "my-model" for c in chunks)
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "let me think"},
        {"content": "Hello"}, {"content": " world"},
        {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                         "function": {"name": "get_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {}, None,
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}


def test_stream_encoder_output_parsed_by_openai_sdk():
    body = frame(encode_stream(_sample_events(), stream_ctx(True)))
    client = sdk_client(body)
    chunks = list(client.chat.completions.create(model="my-model", stream=True, messages=[
        {"role": "user", "content": "hi"}], stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world"
    assert chunks[-1].usage.prompt_tokens == 12 and chunks[-1].usage.completion_tokens == 8
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 3
    with sdk_client(body).chat.completions.stream(model="my-model", messages=[
            {"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Hello world"
    assert [(t.id, t.function.name, t.function.arguments) for t in msg.tool_calls] == [
        ("call_1", "get_weather", '{"city":"Paris"}'), ("call_2", "get_time", "{}")]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage.total_tokens == 20


def test_stream_encoder_without_include_usage_has_no_usage_chunk():
    out = encode_stream([ir.TextDelta(0, "hi"), ir.UsageUpdate(ir.Usage(1, 1)),
                         ir.MessageStop()], stream_ctx(False))
    chunks = [json.loads(e.data) for e in out[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert chunks[0]["id"] == "chatcmpl-ctx"  # no MessageStart: the context's id
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": "hi"}, {}]


def test_stream_encoder_block_without_message_start_and_no_stop():
    out = encode_stream([ir.BlockStart(0, "text"), ir.TextDelta(0, "x")], stream_ctx(True))
    chunks = [json.loads(e.data) for e in out[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 0
    assert out[-1].data == "[DONE]"


def test_stream_encoder_usage_before_stop_is_reported():
    out = encode_stream([ir.UsageUpdate(ir.Usage(input_tokens=5)), ir.TextDelta(0, "x"),
                         ir.UsageUpdate(ir.Usage(output_tokens=2)), ir.MessageStop()],
                        stream_ctx(True))
    usage = json.loads(out[-2].data)["usage"]
    assert usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def test_stream_encoder_error_mid_stream():
    err = ProxyError(ErrorKind.UPSTREAM_UNAVAILABLE, "overloaded")
    out = encode_stream([ir.TextDelta(0, "partial"), ir.StreamError(err),
                         ir.TextDelta(0, "more"), ir.MessageStop()], stream_ctx(True))
    assert json.loads(out[-1].data) == {"error": {"message": "overloaded", "type": "server_error",
                                                  "param": None, "code": None}}
    assert all(e.data != "[DONE]" for e in out) and len(out) == 3
    client = sdk_client(frame(out))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="m", stream=True,
                                            messages=[{"role": "user", "content": "x"}]))


@pytest.mark.parametrize("name", ["stream_text.txt", "stream_tool_calls.txt",
                                  "stream_reasoning.txt"])
def test_golden_stream_decode_encode_sdk_parses_same_content(name):
    source = [json.loads(e.data) for e in sse_events((GOLDEN / name).read_text())
              if e.data != "[DONE]"]
    events = decode_stream(name)
    out = encode_stream(events, stream_ctx(True))
    chunks = list(sdk_client(frame(out)).chat.completions.create(
        model="my-model", stream=True, messages=[{"role": "user", "content": "x"}]))

    def text(cs, key):
        return "".join((c["choices"][0]["delta"].get(key) or "") for c in cs if c["choices"])
    got = [c.model_dump() for c in chunks]
    assert text(got, "content") == text(source, "content")
    def args(cs):
        return "".join(tc["function"].get("arguments") or "" for c in cs if c["choices"]
                       for tc in c["choices"][0]["delta"].get("tool_calls") or [])
    assert args(got) == args(source)
    # a transcript without usage still ends in the usage chunk the client asked for (zeros)
    src_usage = next((c["usage"] for c in source if c.get("usage")), {})
    assert got[-1]["usage"]["total_tokens"] == src_usage.get("total_tokens", 0)
    assert json.loads(out[-2].data)["usage"]["prompt_tokens"] == src_usage.get("prompt_tokens", 0)


# =============================================================================================
# legacy completions


def test_decode_legacy_request_golden():
    req = oc.decode_legacy_request(golden("legacy_request.json"))
    assert req.model == "gpt-3.5-turbo-instruct"
    assert req.messages == (ir.Message("user", (ir.TextPart("Say this is a test"),)),)
    assert req.max_output_tokens == 7 and req.temperature == 0


@pytest.mark.parametrize("body, param", [
    ({"model": "m", "prompt": [1, 2, 3]}, "prompt"),
    ({"model": "m", "prompt": [[1, 2], [3]]}, "prompt"),
    ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
    ({"model": "m", "prompt": None}, "prompt"),
    ({"model": "m", "prompt": "x", "n": 3}, "n"),
    ({"model": "m", "prompt": "x", "best_of": 2}, "best_of"),
    ({"model": "m", "prompt": "x", "echo": True}, "echo"),
    ({"model": "m", "prompt": "x", "suffix": "end"}, "suffix"),
    ({"model": "m", "prompt": "x", "logprobs": 2}, "logprobs"),
])
def test_decode_legacy_request_rejects(body, param):
    with pytest.raises(ProxyError) as info:
        oc.decode_legacy_request(body)
    assert info.value.status == 400 and info.value.param == param


def test_legacy_single_prompt_list_accepted():
    req = oc.decode_legacy_request({"model": "m", "prompt": ["only"], "stop": "\n"})
    assert req.messages[0].parts == (ir.TextPart("only"),) and req.stop == ("\n",)


def test_encode_legacy_response_golden_and_sdk():
    golden_body = golden("legacy_response.json")
    resp = ir.Response(id="cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7", model="up",
                       parts=(ir.TextPart("\n\nThis is indeed a test"),),
                       stop_reason=ir.StopReason.MAX_TOKENS,
                       usage=ir.Usage(input_tokens=5, output_tokens=7))
    ctx = ir.EncodeContext(model="gpt-3.5-turbo-instruct", created=1589478378,
                           response_id="unused")
    body = oc.encode_legacy_response(resp, ctx)
    assert body == {k: v for k, v in golden_body.items() if k != "system_fingerprint"}
    client = sdk_client(json.dumps(body).encode(), "application/json")
    parsed = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    assert isinstance(parsed, Completion) and parsed.choices[0].text == "\n\nThis is indeed a test"
    assert parsed.usage.total_tokens == 12


def test_legacy_tool_use_finishes_with_stop():
    resp = ir.Response(id="", model="m", parts=(ir.ToolCallPart("c", "f"),),
                       stop_reason=ir.StopReason.TOOL_USE)
    assert oc.encode_legacy_response(resp, CTX)["choices"][0]["finish_reason"] == "stop"


def test_legacy_stream_encoder_parsed_by_sdk():
    req = oc.decode_legacy_request({"model": "m", "prompt": "p", "stream": True,
                                    "stream_options": {"include_usage": True}})
    ctx = ir.EncodeContext(model="m", created=1, response_id="cmpl-1", request=req)
    events = [ir.MessageStart(), ir.BlockStart(0, "thinking"), ir.ThinkingDelta(0, "hidden"),
              ir.BlockStop(0), ir.BlockStart(1, "text"), ir.TextDelta(1, "This"),
              ir.TextDelta(1, " is a test"), ir.BlockStop(1),
              ir.MessageStop(ir.StopReason.MAX_TOKENS),
              ir.UsageUpdate(ir.Usage(input_tokens=5, output_tokens=3))]
    out = encode_stream(events, ctx, cls=oc.LegacyStreamEncoder)
    chunks = [json.loads(e.data) for e in out[:-1]]
    assert out[-1].data == "[DONE]"
    assert all(c["object"] == "text_completion" and c["id"] == "cmpl-1" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    parsed = list(sdk_client(frame(out)).completions.create(model="m", prompt="p", stream=True))
    assert "".join(c.choices[0].text for c in parsed if c.choices) == "This is a test"
    assert parsed[-1].usage.total_tokens == 8


def test_legacy_stream_error():
    ctx = ir.EncodeContext(model="m", created=1, response_id="cmpl-1")
    out = encode_stream([ir.TextDelta(0, "a"),
                         ir.StreamError(ProxyError(ErrorKind.UPSTREAM_TIMEOUT, "slow"))],
                        ctx, cls=oc.LegacyStreamEncoder)
    assert json.loads(out[-1].data)["error"]["type"] == "server_error"
    assert all(e.data != "[DONE]" for e in out)


# =============================================================================================
# stream properties


def _check_ir_stream(events: list) -> None:
    """IR stream invariants: blocks numbered in start order, one open at a time, deltas go to
    the open block, all closed before MessageStop, nothing after MessageStop/StreamError."""
    open_block, next_index, ended = None, 0, False
    for event in events:
        assert not ended, f"event after the end: {event}"
        if isinstance(event, (ir.BlockStart, ir.ToolCallStart)):
            assert open_block is None and event.index == next_index
            open_block, next_index = event.index, next_index + 1
        elif isinstance(event, (ir.TextDelta, ir.ThinkingDelta, ir.ToolArgsDelta)):
            assert event.index == open_block
        elif isinstance(event, ir.BlockStop):
            assert event.index == open_block
            open_block = None
        elif isinstance(event, ir.MessageStop):
            assert open_block is None
            ended = True
        elif isinstance(event, ir.StreamError):
            ended = True


_delta = st.one_of(
    st.fixed_dictionaries({"content": st.text(max_size=4)}),
    st.fixed_dictionaries({"reasoning_content": st.text(max_size=4)}),
    st.fixed_dictionaries({"tool_calls": st.lists(st.fixed_dictionaries(
        {"index": st.integers(0, 2)},
        optional={"id": st.sampled_from(["a", "b", "c"]),
                  "function": st.fixed_dictionaries({}, optional={
                      "name": st.sampled_from(["f", "g"]),
                      "arguments": st.sampled_from(["", "{", "}", '"x"'])})}),
        max_size=2)}),
)
_chunk = st.builds(lambda d, f, u: {"id": "c", "choices": [{"index": 0, "delta": d,
                                                            "finish_reason": f}], **u},
                   _delta, st.sampled_from([None, None, None, "stop", "tool_calls", "length"]),
                   st.sampled_from([{}, {"usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                                   "total_tokens": 2}}]))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_chunk, max_size=8), st.booleans())
def test_stream_decoder_keeps_ir_invariants(chunks, done):
    decoder = oc.StreamDecoder()
    events = [e for c in chunks for e in decoder.feed(Event(json.dumps(c)))]
    if done:
        events += decoder.feed(Event("[DONE]"))
    events += decoder.finish()
    _check_ir_stream(events)
    assert isinstance(events[-1], (ir.MessageStop, ir.StreamError))


_ir_block = st.one_of(
    st.tuples(st.just("text"), st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3)),
    st.tuples(st.just("thinking"), st.lists(st.text(min_size=1, max_size=5), min_size=1,
                                            max_size=2)),
    st.tuples(st.just("tool"), st.lists(st.sampled_from(['{"a"', ":1", "}", "[]"]), max_size=3)),
)


# The SDK's stream helper raises on length/content_filter endings; those are covered above.
_sdk_reasons = [r for r in ir.StopReason if oc.finish_from_stop(r) == "stop"] + [
    ir.StopReason.TOOL_USE]


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_ir_block, max_size=5), st.sampled_from(_sdk_reasons))
def test_stream_encoder_sdk_sees_the_same_content(blocks, reason):
    events, texts, calls = [ir.MessageStart()], [], []
    for i, (kind, pieces) in enumerate(blocks):
        if kind == "tool":
            events.append(ir.ToolCallStart(i, f"call_{i}", f"fn{i}"))
            events += [ir.ToolArgsDelta(i, p) for p in pieces]
            calls.append((f"call_{i}", f"fn{i}", "".join(pieces)))
        else:
            events.append(ir.BlockStart(i, kind))
            events += [ir.TextDelta(i, p) if kind == "text" else ir.ThinkingDelta(i, p)
                       for p in pieces]
            texts += pieces if kind == "text" else []
        events.append(ir.BlockStop(i))
    events += [ir.MessageStop(reason), ir.UsageUpdate(ir.Usage(input_tokens=3, output_tokens=4))]
    body = frame(encode_stream(events, stream_ctx(True)))
    with sdk_client(body).chat.completions.stream(
            model="m", messages=[{"role": "user", "content": "x"}]) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert (msg.content or "") == "".join(texts)
    assert [(t.id, t.function.name, t.function.arguments) for t in msg.tool_calls or []] == calls
    assert final.usage.total_tokens == 7
    expected = oc.finish_from_stop(reason, had_tool_calls=bool(calls))
    assert final.choices[0].finish_reason == expected


def test_service_tier_of_another_format_is_not_sent_to_chat():
    from cliproxyd.formats import claude
    req = claude.decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                 "service_tier": "standard_only"})
    assert "service_tier" not in oc.encode_request(req, model="m")
    own = oc.decode_request({"model": "m", "service_tier": "flex",
                             "messages": [{"role": "user", "content": "hi"}]})
    assert oc.encode_request(own, model="m")["service_tier"] == "flex"


def test_long_tool_call_ids_are_shortened_alike_for_call_and_result():
    # OpenAI Chat refuses tool call ids over 40 characters; Gemini-made ids of long MCP tool
    # names (call_<name>_<n>) are longer.
    from cliproxyd.formats import gemini
    name = "mcp__filesystem__read_multiple_files"
    req = gemini.decode_request({"contents": [
        {"role": "user", "parts": [{"text": "read"}]},
        {"role": "model", "parts": [{"functionCall": {"name": name, "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": name, "response": {"ok": 1}}}]},
    ]}, model="m")
    messages = oc.encode_request(req, model="m")["messages"]
    (call,) = messages[1]["tool_calls"]
    assert len(call["id"]) <= 40 and messages[2]["tool_call_id"] == call["id"]
    short = oc.encode_request(oc.decode_request({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "call_abc", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "x"}]}), model="m")["messages"]
    assert short[0]["tool_calls"][0]["id"] == "call_abc" == short[1]["tool_call_id"]


def test_long_user_ids_become_a_stable_short_hash():
    from cliproxyd.formats import claude, openai_responses
    long_user = "user_" + "a" * 64 + "_account_" + "1" * 36 + "_session_" + "2" * 36
    req = claude.decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                 "metadata": {"user_id": long_user}})
    chat_user = oc.encode_request(req, model="m")["user"]
    assert len(chat_user) <= 64 and chat_user == oc.encode_request(req, model="m")["user"]
    assert openai_responses.encode_request(req, model="m")["user"] == chat_user
    short = claude.decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                   "metadata": {"user_id": "u-42"}})
    assert oc.encode_request(short, model="m")["user"] == "u-42"


# =============================================================================================
# passthrough stream watcher: what the decoder would say about opening, usage, errors and end


_WATCHED = (ir.MessageStart, ir.UsageUpdate, ir.StreamError, ir.MessageStop)


def _watch_and_decode(events: list[Event]) -> tuple[list, list, list, list]:
    """(watcher events, decoder events restricted to the watched kinds, watcher usage_only per
    event, whether the decoder's output for each event was usage alone)."""
    watcher, decoder = oc.StreamWatcher(), oc.StreamDecoder()
    watched, decoded, flags, usage_alone = [], [], [], []
    for event in events:
        watched += watcher.feed(event)
        flags.append(watcher.usage_only)
        out = decoder.feed(event)
        usage_alone.append(bool(out) and all(isinstance(e, ir.UsageUpdate) for e in out))
        decoded += out
    watched += watcher.finish()
    decoded += decoder.finish()
    return (_comparable(watched), _comparable([e for e in decoded if isinstance(e, _WATCHED)]),
            flags, usage_alone)


def _comparable(events: list) -> list:
    """Errors compare by identity; compare what a client would see of them."""
    return [("error", e.error.kind, e.error.message, e.error.status)
            if isinstance(e, ir.StreamError) else e for e in events]


@pytest.mark.parametrize("name", ["stream_text.txt", "stream_tool_calls.txt",
                                  "stream_reasoning.txt", "stream_error.txt",
                                  "stream_truncated.txt"])
def test_watcher_agrees_with_the_decoder_on_golden_streams(name):
    watched, decoded, flags, usage_alone = _watch_and_decode(
        sse_events((GOLDEN / name).read_text()))
    assert watched == decoded and flags == usage_alone


def test_watcher_passes_interleaved_parallel_call_arguments():
    """IR cannot hold arguments for a call that was closed, so the decoder fails; a client that
    reads the stream as it came can, so passthrough must not."""
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [tc]}}]} for tc in (
        {"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}},
        {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}},
        {"index": 0, "function": {"arguments": "}"}},
        {"index": 1, "function": {"arguments": "}"}})]
    chunks.append({"id": "c", "choices": [{"index": 0, "delta": {},
                                           "finish_reason": "tool_calls"}]})
    events = [Event(json.dumps(c)) for c in chunks] + [Event("[DONE]")]
    watched, decoded, _, _ = _watch_and_decode(events)
    assert decoded[-1][0] == "error"
    assert watched == [ir.MessageStart(id="c", model=None),
                       ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="tool_calls")]


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '{"error": {"message": "boom"}}',
                                  '{"object": "error", "message": "vllm says no"}'])
def test_watcher_reports_malformed_and_error_chunks(data):
    watcher = oc.StreamWatcher()
    out = watcher.feed(Event(data))
    assert len(out) == 1 and isinstance(out[0], ir.StreamError)
    assert out[0].error.message == oc.StreamDecoder().feed(Event(data))[0].error.message
    assert watcher.feed(Event("[DONE]")) == [] and watcher.finish() == []


_usage_chunk = st.sampled_from([
    {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}},
    {"choices": [{"index": 0, "delta": {"content": ""}}],
     "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}},
])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_chunk, _usage_chunk), max_size=8), st.booleans())
def test_watcher_agrees_with_the_decoder_where_the_decoder_can_decode(chunks, done):
    events = [Event(json.dumps(c)) for c in chunks] + ([Event("[DONE]")] if done else [])
    watched, decoded, flags, usage_alone = _watch_and_decode(events)
    failed = [e for e in decoded if isinstance(e, tuple)]
    if failed and failed[0][2] != "upstream stream ended before completion":
        # Only IR's limit on interleaved calls fails the decoder here; the watcher goes on.
        assert "interleaved" in failed[0][2]
        assert not any(isinstance(e, tuple) for e in watched[:-1])
        return
    assert watched == decoded
    # A chunk is dropped (when the client did not ask for usage) only if usage is all it says:
    # not the first, no content, no finish_reason (which the old decoder-based check dropped).
    expected = [i > 0 and "usage" in c and not (
        c["choices"] and (c["choices"][0].get("finish_reason")
                          or any(c["choices"][0]["delta"].values())))
        for i, c in enumerate(chunks)]
    assert flags[:len(chunks)] == expected


@pytest.mark.parametrize("name", ["response_default.json", "response_reasoning.json",
                                  "response_tool_calls.json"])
def test_watch_response_reads_the_usage_decode_response_reads(name):
    body = json.loads((GOLDEN / name).read_text())
    assert oc.watch_response(body) == oc.decode_response(body).usage
    assert oc.watch_response(body).total_tokens  # the goldens carry usage
