"""Tests for cliproxyd/formats/openai_responses.py (and its _openai_responses_* helpers).

Golden vectors in tests/golden/openai_responses/ follow the public API reference shapes; the
stream encoder is checked with the official openai SDK's own stream parser (offline, through an
httpx2 MockTransport).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import httpx2
import openai
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from openai.types.responses import Response as SDKResponse

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import ir
from cliproxyd.formats import openai_responses as codec
from cliproxyd.formats.sse import Event

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "openai_responses"


def golden(name: str):
    return json.loads((GOLDEN / name).read_text())


def parse_sse(text: str) -> list[Event]:
    """A minimal SSE splitter for the golden transcripts (LF framing only)."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        kind, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        events.append(Event(data="\n".join(data), event=kind))
    return events


def frame(events: list[Event]) -> bytes:
    out = []
    for e in events:
        head = f"event: {e.event}\n" if e.event else ""
        out.append(head + "".join(f"data: {line}\n" for line in e.data.split("\n")) + "\n")
    return "".join(out).encode()


def decode_all(events: list[Event]) -> list:
    dec = codec.StreamDecoder()
    out = []
    for e in events:
        out += dec.feed(e)
    return out + dec.finish()


def encode_all(ir_events: list, ctx: ir.EncodeContext) -> list[Event]:
    enc = codec.StreamEncoder(ctx)
    out = []
    for e in ir_events:
        out += enc.feed(e)
    return out + enc.finish()


def ctx(request: ir.Request | None = None, rid: str = "resp_test123") -> ir.EncodeContext:
    return ir.EncodeContext(model="gpt-5", created=1752616706, response_id=rid, request=request)


def sdk_client(body: bytes, content_type: str = "text/event-stream") -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    return openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:1/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


# ---------------------------------------------------------------------------------------------
# Protocol


def test_exports_the_codec_protocol_names():
    for name in ("decode_request", "encode_request", "decode_response", "encode_response",
                 "render_error", "StreamDecoder", "StreamEncoder", "apply_turn"):
        assert callable(getattr(codec, name)), name
    assert codec.StreamEncoder(ctx()).finish()  # constructed with a context


# ---------------------------------------------------------------------------------------------
# Request decoding (golden)


def test_decode_basic_string_input():
    req = codec.decode_request(golden("request_basic.json"))
    assert req.model == "gpt-4.1"
    assert req.messages == (ir.Message("user", (ir.TextPart(
        "Tell me a three sentence bedtime story about a unicorn."),)),)
    assert req.system == () and req.stream is False and req.tools == ()


def test_decode_full_request_maps_every_modelled_field():
    req = codec.decode_request(golden("request_full.json"))
    assert [p.text for p in req.system] == ["You are a helpful travel assistant.",
                                            "Answer in metric units."]
    assert req.system[1].extras["role"] == "developer"
    roles = [m.role for m in req.messages]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    user = req.messages[0].parts
    assert isinstance(user[1], ir.ImagePart) and user[1].url.startswith("https://upload")
    assert user[1].extras["detail"] == "high"
    assert user[2] == ir.ImagePart(data=b"\x89PNG\r\n\x1a\n", mime_type="image/png")
    assert user[3].data == b"%PDF-1.4\n" and user[3].filename == "itinerary.pdf"
    assert user[3].mime_type == "application/pdf"
    thinking, call = req.messages[1].parts
    assert isinstance(thinking, ir.ThinkingPart) and thinking.text.startswith("**Looking up")
    assert thinking.signature.startswith("gAAAAAB")
    assert call == ir.ToolCallPart("call_12345xyz", "get_weather",
                                   '{"location":"Madison, Wisconsin"}', extras={"id": "fc_12345xyz"})
    result = req.messages[2].parts[0]
    assert isinstance(result, ir.ToolResultPart) and result.tool_call_id == "call_12345xyz"
    assert result.name == "get_weather" and result.content[0].text.startswith('{"temperature"')
    assert req.messages[3].parts[0].extras["id"].startswith("msg_")
    assert req.tools[0].name == "get_weather" and req.tools[0].extras == {"strict": True}
    assert req.tools[0].parameters["required"] == ["location"]
    assert req.extras["tools"] == [{"type": "web_search_preview"}]
    assert req.tool_choice == ir.ToolChoice("tool", "get_weather")
    assert req.parallel_tool_calls is False and req.max_output_tokens == 2048
    assert req.temperature == 0.7 and req.top_p == 0.9
    assert req.response_format.type == "json_schema" and req.response_format.name == "weather_answer"
    assert req.response_format.strict is True and "answer" in req.response_format.schema["properties"]
    assert req.reasoning == ir.Reasoning(effort="high", include_thoughts=True)
    assert req.stream is True and req.user == "user-1234" and req.metadata == {"session": "abc"}
    for key in ("store", "include", "prompt_cache_key", "truncation", "service_tier"):
        assert key in req.extras, key


def test_full_request_round_trips_through_encode():
    original = golden("request_full.json")
    body = codec.encode_request(codec.decode_request(original), model="gpt-5")
    assert body["instructions"] == original["instructions"]
    assert body["input"][0] == {"type": "message", "role": "developer",
                                "content": [{"type": "input_text", "text": "Answer in metric units."}]}
    items = body["input"][1:]
    assert [i["type"] for i in items] == ["message", "reasoning", "function_call",
                                          "function_call_output", "message", "message"]
    user_content = items[0]["content"]
    assert user_content[1]["image_url"] == original["input"][1]["content"][1]["image_url"]
    assert user_content[1]["detail"] == "high"
    assert user_content[2]["image_url"] == "data:image/png;base64,iVBORw0KGgo="
    assert user_content[3] == {"type": "input_file", "filename": "itinerary.pdf",
                               "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}
    assert items[1] == original["input"][2]
    assert items[2] == original["input"][3]
    assert items[3] == original["input"][4]
    assert items[4]["id"] == original["input"][5]["id"]
    assert items[4]["content"] == original["input"][5]["content"]
    for key in ("tools", "tool_choice", "parallel_tool_calls", "max_output_tokens", "temperature",
                "top_p", "text", "reasoning", "user", "metadata", "store", "include",
                "prompt_cache_key", "truncation", "service_tier"):
        assert body[key] == original[key], key
    assert body["stream"] is True and body["model"] == "gpt-5"


def test_system_message_and_developer_messages_keep_order_in_system():
    req = codec.decode_request({"model": "m", "input": [
        {"role": "system", "content": [{"type": "input_text", "text": "S"}]},
        {"role": "user", "content": "hi"}]})
    assert [(p.text, p.extras["role"]) for p in req.system] == [("S", "system")]


def test_consecutive_message_items_stay_separate_but_calls_merge():
    req = codec.decode_request({"model": "m", "input": [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
        {"type": "message", "role": "assistant", "content": "c"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "2"}]}]})
    assert [m.role for m in req.messages] == ["user", "user", "assistant", "user"]
    assert [type(p).__name__ for p in req.messages[2].parts] == ["TextPart", "ToolCallPart",
                                                                 "ToolCallPart"]
    assert [p.name for p in req.messages[3].parts] == ["f", "g"]


def test_reasoning_summary_styles_and_encrypted_only_items():
    req = codec.decode_request({"model": "m", "input": [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAAxyz"},
        {"role": "user", "content": "q"}], "reasoning": {"effort": "low", "summary": "concise"}})
    assert req.messages[0].parts == (ir.RedactedThinkingPart("gAAAAAxyz", extras={"id": "rs_1"}),)
    assert req.reasoning == ir.Reasoning(effort="low", include_thoughts=True)
    body = codec.encode_request(req, model="m")
    assert body["reasoning"] == {"effort": "low", "summary": "concise"}
    assert body["input"][0] == {"type": "reasoning", "id": "rs_1", "summary": [],
                                "encrypted_content": "gAAAAAxyz"}


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": [5]}, "input[0]"),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": [{"role": "user", "content": 3}]}, "input[0].content"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
     "input[0].content[0]"),
    ({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,@@@"}]}]},
     "input[0].content[0].image_url"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
    ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
     "input[0].call_id"),
    ({"model": "m", "input": "x", "tools": {}}, "tools"),
    ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "input": "x", "max_output_tokens": "10"}, "max_output_tokens"),
    ({"model": "m", "input": "x", "max_output_tokens": True}, "max_output_tokens"),
    ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}},
     "text.format.schema"),
    ({"model": "m", "input": "x", "reasoning": "high"}, "reasoning"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "ultra"}}, "reasoning.effort"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
    ({"model": "m", "input": [{"type": ["x"]}]}, "input[0].type"),
    ({"model": "m", "input": "x", "instructions": ["a"]}, "instructions"),
])
def test_invalid_requests_raise_invalid_request_with_param(body, param):
    with pytest.raises(ProxyError) as info:
        codec.decode_request(body)
    assert info.value.kind is ErrorKind.INVALID_REQUEST and info.value.status == 400
    assert info.value.param == param


def test_non_object_body_is_rejected():
    with pytest.raises(ProxyError):
        codec.decode_request(["not", "an", "object"])


def test_model_argument_overrides_body():
    assert codec.decode_request({"model": "a", "input": "x"}, model="b").model == "b"


# ---------------------------------------------------------------------------------------------
# Request encoding from other formats' IR


def test_encode_drops_what_responses_cannot_express(caplog):
    req = ir.Request(model="m", messages=(ir.Message("user", (ir.TextPart("x"),)),),
                     top_k=5, seed=1, stop=("END",), presence_penalty=0.1, frequency_penalty=0.2)
    with caplog.at_level(logging.DEBUG, logger="cliproxyd.formats.openai_responses"):
        body = codec.encode_request(req, model="m")
    for key in ("top_k", "seed", "stop", "presence_penalty", "frequency_penalty"):
        assert key not in body
    assert "stop sequences" in caplog.text and "seed" in caplog.text
    assert body["stream"] is True and body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"]


def test_encode_foreign_ir_tools_reasoning_and_results():
    req = ir.Request(
        model="m", system=(ir.TextPart("sys"),),
        messages=(
            ir.Message("user", (ir.TextPart("q"), ir.ImagePart(data=b"img", mime_type="image/jpeg"))),
            ir.Message("assistant", (ir.ThinkingPart("hmm", signature="EqQBCkYIBxgCKkD"),
                                     ir.TextPart("calling"),
                                     ir.ToolCallPart("toolu_1", "f", '{"a":1}'))),
            ir.Message("user", (ir.ToolResultPart("toolu_1", (ir.TextPart("ok"),), is_error=True),
                                ir.TextPart("next"))),
        ),
        tools=(ir.Tool("f", "does f", {"type": "object", "properties": {"a": {"type": "integer"}}}),),
        tool_choice=ir.ToolChoice("required"), reasoning=ir.Reasoning(budget=20000),
        response_format=ir.ResponseFormat("json_object"), metadata={"user_id": "u"})
    body = codec.encode_request(req, model="gpt-5")
    assert body["instructions"] == "sys"
    types = [i["type"] for i in body["input"]]
    # The Anthropic signature is not OpenAI encrypted content: the reasoning item is dropped.
    assert types == ["message", "message", "function_call", "function_call_output", "message"]
    assert body["input"][0]["content"][1] == {"type": "input_image", "detail": "auto",
                                              "image_url": "data:image/jpeg;base64,aW1n"}
    assert body["input"][1]["content"] == [{"type": "output_text", "text": "calling",
                                            "annotations": []}]
    assert body["input"][3] == {"type": "function_call_output", "call_id": "toolu_1", "output": "ok"}
    assert body["tools"][0]["strict"] is False and body["tools"][0]["description"] == "does f"
    assert body["tool_choice"] == "required"
    assert body["reasoning"] == {"effort": "high"}
    assert body["text"] == {"format": {"type": "json_object"}}
    assert body["metadata"] == {"user_id": "u"}


def test_encode_tool_result_text_blocks_stay_separate_lines():
    call = ir.ToolCallPart("toolu_1", "Bash", "{}")
    result = ir.ToolResultPart("toolu_1", (ir.TextPart("1 failed"), ir.TextPart("FAILED t::a")))
    req = ir.Request(model="m", messages=(ir.Message("assistant", (call,)),
                                          ir.Message("user", (result,))))
    item = codec.encode_request(req, model="m")["input"][1]
    assert item == {"type": "function_call_output", "call_id": "toolu_1",
                    "output": "1 failed\nFAILED t::a"}


def test_reasoning_effort_table_on_encode():
    def effort(r):
        req = ir.Request(model="m", messages=(), reasoning=r)
        return (codec.encode_request(req, model="m").get("reasoning") or {}).get("effort")

    assert effort(ir.Reasoning(effort="minimal")) == "minimal"
    assert effort(ir.Reasoning(effort="none")) == "none"
    assert effort(ir.Reasoning(effort="auto")) is None
    assert effort(ir.Reasoning(budget=0)) == "none"
    assert effort(ir.Reasoning(budget=1024)) == "low"
    assert effort(ir.Reasoning(budget=8192)) == "medium"
    assert effort(ir.Reasoning(budget=-1)) is None
    req = ir.Request(model="m", messages=(), reasoning=ir.Reasoning(effort="low",
                                                                     include_thoughts=True))
    assert codec.encode_request(req, model="m")["reasoning"] == {"effort": "low", "summary": "auto"}


# ---------------------------------------------------------------------------------------------
# Responses (non-stream)


def test_decode_text_response_golden():
    resp = codec.decode_response(golden("response_text.json"))
    assert resp.id == "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
    assert resp.model == "gpt-4.1-2025-04-14"
    assert len(resp.parts) == 1 and resp.parts[0].text.startswith("In a peaceful grove")
    assert resp.stop_reason is ir.StopReason.END_TURN and resp.native_stop_reason == "completed"
    assert resp.usage == ir.Usage(36, 87, 0, None, 0, 123)


def test_decode_function_call_response_golden():
    resp = codec.decode_response(golden("response_function_call.json"))
    thinking, call = resp.parts
    assert thinking.text == "**Checking the weather**\n\nI should call get_weather for New York City."
    assert thinking.signature.startswith("gAAAAABo2DUY")
    assert call.id == "call_zmgkl7rFpA4eOyUO0SamopGI" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"location": "New York City, USA"}
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert resp.usage.cached_input_tokens == 32 and resp.usage.reasoning_tokens == 8


def test_decode_incomplete_response_golden():
    resp = codec.decode_response(golden("response_incomplete.json"))
    assert resp.stop_reason is ir.StopReason.MAX_TOKENS
    assert resp.native_stop_reason == "max_output_tokens"
    assert resp.parts == ()  # an empty reasoning item carries nothing
    assert resp.usage.output_tokens == 300 and resp.usage.reasoning_tokens == 300


@pytest.mark.parametrize("name", ["response_text.json", "response_function_call.json",
                                  "response_incomplete.json"])
def test_response_round_trip_validates_with_sdk(name):
    original = golden(name)
    resp = codec.decode_response(original)
    body = codec.encode_response(resp, ctx())
    parsed = SDKResponse.model_validate(body)
    assert body["id"] == original["id"]
    assert body["status"] == original["status"]
    assert body["incomplete_details"] == original["incomplete_details"]
    assert body["usage"]["input_tokens"] == original["usage"]["input_tokens"]
    assert body["usage"]["output_tokens_details"] == original["usage"]["output_tokens_details"]
    kept = [{k: v for k, v in i.items() if k not in ("status", "logprobs")} for i in body["output"]]
    want = [{k: v for k, v in i.items() if k not in ("status", "logprobs")}
            for i in original["output"] if i.get("summary") != [] or i.get("encrypted_content")]
    for item in kept:
        for c in item.get("content", []):
            c.pop("logprobs", None)
    assert kept == want
    assert parsed.output_text == "".join(
        c["text"] for i in original["output"] if i["type"] == "message" for c in i["content"])


def test_encode_response_from_foreign_ir_echoes_request():
    req = codec.decode_request(golden("request_full.json"))
    resp = ir.Response(id="msg_01XFDUDYJgAACzvnptvVoYEL", model="claude-sonnet-4",
                       parts=(ir.ThinkingPart("plan", signature="EqQB"), ir.TextPart("Hello"),
                              ir.ToolCallPart("toolu_01", "get_weather", '{"location":"Paris"}')),
                       stop_reason=ir.StopReason.TOOL_USE,
                       usage=ir.Usage(input_tokens=100, output_tokens=20, cached_input_tokens=40))
    body = codec.encode_response(resp, ctx(req, rid="resp_abc"))
    parsed = SDKResponse.model_validate(body)
    assert body["id"] == "resp_abc" and body["model"] == "gpt-5" and body["status"] == "completed"
    assert [i["id"] for i in body["output"]] == ["rs_resp_abc_0", "msg_resp_abc_1", "fc_resp_abc_2"]
    assert body["output"][2]["call_id"] == "toolu_01"
    assert body["instructions"] == "You are a helpful travel assistant.\n\nAnswer in metric units."
    assert body["max_output_tokens"] == 2048 and body["temperature"] == 0.7
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert [t["type"] for t in body["tools"]] == ["function", "web_search_preview"]
    assert body["reasoning"] == {"effort": "high", "summary": "detailed"}
    assert body["text"]["format"]["name"] == "weather_answer" and body["text"]["verbosity"] == "low"
    assert body["metadata"] == {"session": "abc"} and body["service_tier"] == "priority"
    assert body["usage"]["input_tokens_details"]["cached_tokens"] == 40
    assert parsed.output_text == "Hello"


# ---------------------------------------------------------------------------------------------
# Tables


@pytest.mark.parametrize("status, reason, tool, want", [
    ("completed", None, False, ir.StopReason.END_TURN),
    ("completed", None, True, ir.StopReason.TOOL_USE),
    ("incomplete", "max_output_tokens", False, ir.StopReason.MAX_TOKENS),
    ("incomplete", "content_filter", False, ir.StopReason.CONTENT_FILTER),
    ("incomplete", "something_new", False, ir.StopReason.MAX_TOKENS),
    ("failed", None, False, ir.StopReason.ERROR),
    (None, None, False, ir.StopReason.END_TURN),
])
def test_stop_reason_from_wire(status, reason, tool, want):
    assert codec.stop_reason_from_wire(status, reason, tool)[0] is want


@pytest.mark.parametrize("stop, want", [
    (ir.StopReason.END_TURN, ("completed", None)),
    (ir.StopReason.TOOL_USE, ("completed", None)),
    (ir.StopReason.STOP_SEQUENCE, ("completed", None)),
    (ir.StopReason.PAUSE_TURN, ("completed", None)),
    (ir.StopReason.MAX_TOKENS, ("incomplete", "max_output_tokens")),
    (ir.StopReason.CONTENT_FILTER, ("incomplete", "content_filter")),
    (ir.StopReason.REFUSAL, ("incomplete", "content_filter")),
    (ir.StopReason.ERROR, ("failed", None)),
])
def test_status_for_stop(stop, want):
    assert codec.status_for_stop(stop) == want


def test_usage_tables_both_ways():
    wire = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60,
                                                          "cache_write_tokens": 5},
            "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 30},
            "total_tokens": 150}
    usage = codec.usage_from_wire(wire)
    assert usage == ir.Usage(100, 50, 60, 5, 30, 150)
    assert codec.usage_to_wire(usage) == wire
    assert codec.usage_from_wire(None) == ir.Usage()
    assert codec.usage_to_wire(ir.Usage(input_tokens=3, output_tokens=4))["total_tokens"] == 7


@pytest.mark.parametrize("kind, etype", [
    (ErrorKind.INVALID_REQUEST, "invalid_request_error"),
    (ErrorKind.AUTHENTICATION, "authentication_error"),
    (ErrorKind.PERMISSION, "permission_error"),
    (ErrorKind.MODEL_NOT_FOUND, "invalid_request_error"),
    (ErrorKind.RATE_LIMITED, "rate_limit_error"),
    (ErrorKind.UPSTREAM_ERROR, "server_error"),
    (ErrorKind.UPSTREAM_TIMEOUT, "server_error"),
    (ErrorKind.INTERNAL, "server_error"),
])
def test_render_error_shape(kind, etype):
    body = codec.render_error(ProxyError(kind, "boom", code="c", param="p"))
    assert body == {"error": {"message": "boom", "type": etype, "param": "p", "code": "c"}}


def test_render_error_matches_golden_shape():
    want = golden("error_rate_limit.json")
    got = codec.render_error(ProxyError(ErrorKind.RATE_LIMITED, want["error"]["message"],
                                        code="rate_limit_exceeded"))
    assert got == want


# ---------------------------------------------------------------------------------------------
# Stream decoder (playbooks)


def test_stream_decoder_text_and_reasoning_golden():
    events = decode_all(parse_sse((GOLDEN / "stream_text_reasoning.txt").read_text()))
    assert events == [
        ir.MessageStart(id="resp_6876cf02c83c8192a1bd73c8c9f2e6a306fa2fcced15a5ac",
                        model="o4-mini-2025-04-16"),
        ir.BlockStart(0, "thinking"),
        ir.ThinkingDelta(0, "**Answering a simple ques"),
        ir.ThinkingDelta(0, "tion**\n\nThe user asks for the capital of France."),
        ir.ThinkingDelta(0, "\n\nIt is Paris."),
        ir.BlockStop(0),
        ir.BlockStart(1, "text"),
        *[ir.TextDelta(1, d) for d in ["The", " capital", " of", " France", " is", " Paris", "."]],
        ir.BlockStop(1),
        ir.UsageUpdate(ir.Usage(13, 152, 0, None, 128, 165)),
        ir.MessageStop(ir.StopReason.END_TURN, native_stop_reason="completed"),
    ]


def test_stream_decoder_tool_call_golden():
    events = decode_all(parse_sse((GOLDEN / "stream_tool_call.txt").read_text()))
    assert events[0].id == "resp_68d835172d4481a3adc02a0a27d80dad05b5406cc515b605"
    assert events[1] == ir.BlockStart(0, "redacted_thinking",
                                      "gAAAAABo2DUYOAYuP7p03SU0PjHLxwh8ia5DyWu_IYV-Kh-i2msszJsPc6t1agpI")
    assert events[2] == ir.BlockStop(0)
    assert events[3] == ir.ToolCallStart(1, "call_zmgkl7rFpA4eOyUO0SamopGI", "get_weather")
    args = "".join(e.json for e in events if isinstance(e, ir.ToolArgsDelta))
    assert json.loads(args) == {"location": "New York City, USA"}
    assert events[-3] == ir.BlockStop(1)
    assert events[-2] == ir.UsageUpdate(ir.Usage(69, 24, 0, None, 0, 93))
    assert events[-1] == ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="completed")


def test_stream_decoder_error_event_is_stream_error():
    events = decode_all(parse_sse((GOLDEN / "stream_error.txt").read_text()))
    assert isinstance(events[-1], ir.StreamError)
    err = events[-1].error
    assert err.kind is ErrorKind.RATE_LIMITED and err.status == 429
    assert err.code == "rate_limit_exceeded" and "Rate limit" in err.message
    assert sum(isinstance(e, ir.StreamError) for e in events) == 1  # finish adds nothing


def test_stream_decoder_truncated_stream_fails_on_finish():
    events = decode_all(parse_sse((GOLDEN / "stream_truncated.txt").read_text()))
    err = events[-1].error
    assert err.kind is ErrorKind.UPSTREAM_ERROR and err.status == 502
    assert err.message == "upstream stream ended before completion"


def test_stream_decoder_failed_and_incomplete_terminals():
    dec = codec.StreamDecoder()
    out = dec.feed(Event(json.dumps({"type": "response.failed", "sequence_number": 3, "response": {
        "id": "resp_1", "status": "failed",
        "error": {"code": "server_error", "message": "The model failed."}}})))
    assert out[0] == ir.MessageStart(id="resp_1", model=None)
    assert out[-1].error.kind is ErrorKind.UPSTREAM_ERROR and out[-1].error.message == "The model failed."
    assert dec.finish() == [] and dec.feed(Event('{"type":"response.output_text.delta"}')) == []
    dec = codec.StreamDecoder()
    out = dec.feed(Event(json.dumps({"type": "response.incomplete", "response": {
        "id": "resp_2", "status": "incomplete", "incomplete_details": {"reason": "content_filter"},
        "output": [{"type": "message", "id": "msg_1", "content": [
            {"type": "output_text", "text": "partial"}]}]}})))
    assert ir.TextDelta(0, "partial") in out  # unstreamed terminal output is replayed
    assert out[-1] == ir.MessageStop(ir.StopReason.CONTENT_FILTER,
                                     native_stop_reason="content_filter")


def test_stream_decoder_nested_error_and_malformed_data():
    dec = codec.StreamDecoder()
    out = dec.feed(Event(json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "code": "context_length_exceeded",
        "message": "too long", "param": "input"}})))
    assert out[0].error.kind is ErrorKind.INVALID_REQUEST and out[0].error.param == "input"
    dec = codec.StreamDecoder()
    assert dec.feed(Event("{not json")) [0].error.kind is ErrorKind.UPSTREAM_ERROR
    assert dec.finish() == []


# ---------------------------------------------------------------------------------------------
# Stream encoder, checked with the official SDK


def _tool_stream_ir() -> list:
    return [
        ir.MessageStart(id="x", model="claude"),
        ir.BlockStart(0, "thinking"),
        ir.ThinkingDelta(0, "Let me "), ir.ThinkingDelta(0, "think."),
        ir.ThinkingDelta(0, "", signature="gAAAAAsig"),
        ir.BlockStop(0),
        ir.BlockStart(1, "text"), ir.TextDelta(1, "Checking "), ir.TextDelta(1, "weather."),
        ir.BlockStop(1),
        ir.ToolCallStart(2, "call_1", "get_weather"),
        ir.ToolArgsDelta(2, '{"location":'), ir.ToolArgsDelta(2, '"Paris"}'),
        ir.BlockStop(2),
        ir.MessageStop(ir.StopReason.TOOL_USE),
        ir.UsageUpdate(ir.Usage(input_tokens=50, output_tokens=20, reasoning_tokens=5,
                                cached_input_tokens=10)),
    ]


def test_stream_encoder_exact_event_sequence():
    events = encode_all(_tool_stream_ir(), ctx())
    assert [e.event for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    payloads = [json.loads(e.data) for e in events]
    assert [p["sequence_number"] for p in payloads] == list(range(len(events)))
    assert all(p["type"] == e.event for p, e in zip(payloads, events))
    final = payloads[-1]["response"]
    assert final["usage"]["input_tokens"] == 50 and final["usage"]["total_tokens"] == 70
    assert final["output"][0]["encrypted_content"] == "gAAAAAsig"
    assert [i["id"] for i in final["output"]] == ["rs_resp_test123_0", "msg_resp_test123_1",
                                                  "fc_resp_test123_2"]


def test_sdk_create_stream_yields_text_tool_calls_and_usage():
    body = frame(encode_all(_tool_stream_ir(), ctx()))
    client = sdk_client(body)
    seen, text, args, final = [], "", "", None
    for event in client.responses.create(model="gpt-5", input="hi", stream=True):
        seen.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.function_call_arguments.delta":
            args += event.delta
        elif event.type == "response.completed":
            final = event.response
    assert text == "Checking weather." and json.loads(args) == {"location": "Paris"}
    assert final.usage.input_tokens == 50 and final.usage.output_tokens_details.reasoning_tokens == 5
    assert final.usage.input_tokens_details.cached_tokens == 10
    assert final.output_text == "Checking weather."
    calls = [o for o in final.output if o.type == "function_call"]
    assert calls[0].call_id == "call_1" and calls[0].name == "get_weather"
    assert seen[0] == "response.created" and seen[-1] == "response.completed"


def test_sdk_stream_helper_final_response():
    req = codec.decode_request({"model": "gpt-5", "input": "hi", "instructions": "be brief",
                                "reasoning": {"effort": "low", "summary": "auto"},
                                "tools": [{"type": "function", "name": "get_weather",
                                           "parameters": {"type": "object", "properties": {}}}]})
    body = frame(encode_all(_tool_stream_ir(), ctx(req)))
    client = sdk_client(body)
    with client.responses.stream(model="gpt-5", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "Checking weather."
    assert final.output_text == "Checking weather."
    assert final.instructions == "be brief" and final.reasoning.effort == "low"
    assert final.tools[0].name == "get_weather"
    assert final.output[0].summary[0].text == "Let me think."
    assert final.usage.total_tokens == 70


def test_encoder_synthesises_missing_start_and_block_and_takes_late_usage():
    events = encode_all([ir.TextDelta(0, "Hi"), ir.MessageStop(ir.StopReason.MAX_TOKENS),
                         ir.UsageUpdate(ir.Usage(input_tokens=3, output_tokens=1))], ctx())
    types = [e.event for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-1] == "response.incomplete"
    final = json.loads(events[-1].data)["response"]
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["usage"]["total_tokens"] == 4
    client = sdk_client(frame(events))
    stream = client.responses.create(model="gpt-5", input="x", stream=True)
    got = [e for e in stream]
    assert got[-1].type == "response.incomplete" and got[-1].response.output_text == "Hi"


def test_encoder_stream_error_emits_error_then_failed_and_nothing_more():
    enc = codec.StreamEncoder(ctx())
    out = enc.feed(ir.MessageStart()) + enc.feed(ir.BlockStart(0, "text"))
    out += enc.feed(ir.TextDelta(0, "par"))
    out += enc.feed(ir.StreamError(ProxyError(ErrorKind.RATE_LIMITED, "slow down")))
    assert [e.event for e in out[-2:]] == ["error", "response.failed"]
    err = json.loads(out[-2].data)
    assert err == {"type": "error", "sequence_number": err["sequence_number"],
                   "code": "rate_limit_exceeded", "message": "slow down", "param": None}
    failed = json.loads(out[-1].data)["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "rate_limit_exceeded"
    assert enc.feed(ir.TextDelta(0, "more")) == [] and enc.finish() == []
    client = sdk_client(frame(out))
    events = list(client.responses.create(model="gpt-5", input="x", stream=True))
    assert events[-2].type == "error" and events[-2].message == "slow down"
    assert events[-1].type == "response.failed"
    with pytest.raises(RuntimeError):
        with client.responses.stream(model="gpt-5", input="x") as stream:
            stream.get_final_response()


def test_encoder_error_before_anything_still_starts_the_stream():
    out = codec.StreamEncoder(ctx()).feed(
        ir.StreamError(ProxyError(ErrorKind.UPSTREAM_ERROR, "boom")))
    assert [e.event for e in out] == ["response.created", "response.in_progress", "error",
                                      "response.failed"]


@pytest.mark.parametrize("name", ["stream_text_reasoning.txt", "stream_tool_call.txt"])
def test_decode_then_encode_reproduces_the_official_sequence(name):
    original = parse_sse((GOLDEN / name).read_text())
    ir_events = decode_all(original)
    encoded = encode_all(ir_events, ctx())
    want = [e.event for e in original]
    got = [e.event for e in encoded]
    if name == "stream_text_reasoning.txt":
        # Two upstream summary parts are one IR thought: one part in our output.
        want = [t for i, t in enumerate(want) if not (6 <= i <= 8)]
    assert got == want
    final_in = json.loads(original[-1].data)["response"]
    final_out = json.loads(encoded[-1].data)["response"]
    assert final_out["usage"]["total_tokens"] == final_in["usage"]["total_tokens"]
    assert [i["type"] for i in final_out["output"]] == [i["type"] for i in final_in["output"]]


# ---------------------------------------------------------------------------------------------
# apply_turn (WebSocket continuation)


def test_apply_turn_appends_previous_output_and_inherits_model_and_instructions():
    prev = {"model": "gpt-5", "instructions": "be nice", "input": "hello", "tools": []}
    output = [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "hi", "annotations": []}]},
              {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f",
               "arguments": "{}", "status": "completed"}]
    new = {"type": "response.create", "previous_response_id": "resp_1", "input": [
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"}]}
    body = codec.apply_turn(prev, output, new)
    assert body["model"] == "gpt-5" and body["instructions"] == "be nice"
    assert "previous_response_id" not in body and "type" not in body
    assert [i.get("type") for i in body["input"]] == ["message", "message", "function_call",
                                                      "function_call_output"]
    assert body["input"][0] == {"type": "message", "role": "user", "content": "hello"}
    assert new["input"][0]["type"] == "function_call" and "type" in new  # inputs untouched
    assert output[0]["status"] == "completed" and len(prev) == 4
    codec.decode_request(body)  # the result is a valid request


def test_apply_turn_new_values_win_and_string_input():
    body = codec.apply_turn({"model": "a", "instructions": "x", "input": []}, [],
                            {"model": "b", "instructions": "y", "input": "next"})
    assert body["model"] == "b" and body["instructions"] == "y"
    assert body["input"] == [{"type": "message", "role": "user", "content": "next"}]


# ---------------------------------------------------------------------------------------------
# Property: IR requests survive encode → decode (up to what Responses expresses)

_text = st.text(min_size=1, max_size=20)
_user_part = st.one_of(
    _text.map(ir.TextPart),
    st.builds(lambda d: ir.ImagePart(data=d, mime_type="image/png"), st.binary(min_size=1, max_size=16)),
    _text.map(lambda t: ir.ImagePart(url="https://example.com/" + t.encode().hex())),
)
_assistant_part = st.one_of(
    _text.map(ir.TextPart),
    st.builds(lambda i, n: ir.ToolCallPart(f"call_{i}", n, '{"a":1}'),
              st.integers(0, 999), st.sampled_from(["f", "get_weather"])),
)


@st.composite
def _requests(draw):
    messages = []
    for i in range(draw(st.integers(1, 4))):
        role = "user" if i % 2 == 0 else "assistant"
        parts = draw(st.lists(_user_part if role == "user" else _assistant_part,
                              min_size=1, max_size=3))
        messages.append(ir.Message(role, tuple(parts)))
    return ir.Request(
        model="m", messages=tuple(messages),
        system=tuple(draw(st.lists(_text.map(ir.TextPart), max_size=1))),
        tools=tuple(draw(st.lists(st.builds(lambda n: ir.Tool(n, "d", {"type": "object"}),
                                            st.sampled_from(["f", "g"])), max_size=1))),
        tool_choice=draw(st.sampled_from([None, ir.ToolChoice("auto"), ir.ToolChoice("none"),
                                          ir.ToolChoice("required"), ir.ToolChoice("tool", "f")])),
        parallel_tool_calls=draw(st.sampled_from([None, True, False])),
        max_output_tokens=draw(st.one_of(st.none(), st.integers(1, 100000))),
        temperature=draw(st.one_of(st.none(), st.floats(0, 2))),
        top_p=draw(st.one_of(st.none(), st.floats(0, 1))),
        response_format=draw(st.sampled_from([None, ir.ResponseFormat("json_object"),
                                              ir.ResponseFormat("json_schema", {"type": "object"},
                                                                "s", True)])),
        reasoning=draw(st.sampled_from([None, ir.Reasoning(effort="low"),
                                        ir.Reasoning(effort="high", include_thoughts=True)])),
        user=draw(st.one_of(st.none(), _text)),
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_requests())
def test_property_encode_then_decode_preserves_the_request(req):
    back = codec.decode_request(codec.encode_request(req, model="m"))
    assert [p.text for p in back.system] == [p.text for p in req.system]
    assert [(m.role, m.parts) for m in back.messages] == [(m.role, m.parts) for m in req.messages]
    assert [(t.name, t.description, t.parameters) for t in back.tools] == \
        [(t.name, t.description, t.parameters) for t in req.tools]
    for name in ("tool_choice", "parallel_tool_calls", "max_output_tokens", "response_format",
                 "reasoning", "user"):
        assert getattr(back, name) == getattr(req, name), name
    for name in ("temperature", "top_p"):  # not sent to a model that is reasoning
        assert getattr(back, name) == (None if req.reasoning else getattr(req, name)), name
    assert back.stream is True


def test_anthropic_server_tools_are_not_sent_as_hosted_tools():
    from cliproxyd.formats import claude
    req = claude.decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                 "tools": [{"type": "web_search_20250305", "name": "web_search"},
                                           {"type": "mcp_toolset", "mcp_server_name": "x"},
                                           {"name": "f", "input_schema": {"type": "object"}}]})
    assert [t["name"] for t in codec.encode_request(req, model="m")["tools"]] == ["f"]
    own = codec.decode_request({"model": "m", "input": "hi", "tools": [
        {"type": "web_search_preview_2025_03_11"}, {"type": "local_shell"}]})
    assert codec.encode_request(own, model="m")["tools"] == [
        {"type": "web_search_preview_2025_03_11"}, {"type": "local_shell"}]


def test_anthropic_context_management_object_is_not_sent_to_responses():
    from cliproxyd.formats import claude
    req = claude.decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                 "context_management": {"edits": [{"type": "clear_x"}]}})
    assert "context_management" not in codec.encode_request(req, model="m")
    own = [{"type": "compaction", "compact_threshold": 1000}]
    mine = codec.decode_request({"model": "m", "input": "hi", "context_management": own})
    assert codec.encode_request(mine, model="m")["context_management"] == own


def test_sampling_settings_of_other_formats_are_dropped_while_reasoning():
    # Gemini CLI always sends temperature 0 / topP 1 with a thinking budget; OpenAI reasoning
    # models answer "Unsupported parameter: 'temperature'".
    from cliproxyd.formats import gemini
    req = gemini.decode_request({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {
        "temperature": 0, "topP": 1, "thinkingConfig": {"thinkingBudget": 8192}}}, model="m")
    body = codec.encode_request(req, model="gpt-5")
    assert "temperature" not in body and "top_p" not in body
    assert body["reasoning"] == {"effort": "medium"}
    off = dataclasses.replace(req, reasoning=ir.Reasoning(effort="none", budget=0))
    assert codec.encode_request(off, model="gpt-5")["temperature"] == 0
    own = codec.decode_request({"model": "m", "input": "hi", "temperature": 0.5,
                                "reasoning": {"effort": "low"}})
    assert codec.encode_request(own, model="m")["temperature"] == 0.5  # the client's own choice


# ---------------------------------------------------------------------------------------------
# More playbooks and robustness


def _ev(kind: str, **fields) -> Event:
    return Event(json.dumps({"type": kind, **fields}), event=kind)


def test_decoder_custom_tool_call_and_signed_reasoning():
    events = decode_all([
        _ev("response.created", response={"id": "resp_9", "model": "gpt-5-codex"}),
        _ev("response.output_item.added", output_index=0, item={"id": "rs_1", "type": "reasoning",
                                                                "summary": []}),
        _ev("response.reasoning_summary_text.delta", item_id="rs_1", output_index=0,
            summary_index=0, delta="plan"),
        _ev("response.output_item.done", output_index=0, item={
            "id": "rs_1", "type": "reasoning", "encrypted_content": "gAAAAAenc",
            "summary": [{"type": "summary_text", "text": "plan"}]}),
        _ev("response.output_item.added", output_index=1, item={
            "id": "ctc_1", "type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch",
            "input": ""}),
        _ev("response.custom_tool_call_input.delta", item_id="ctc_1", output_index=1,
            delta="*** Begin Patch\n"),
        _ev("response.custom_tool_call_input.delta", item_id="ctc_1", output_index=1,
            delta="*** End Patch"),
        _ev("response.output_item.done", output_index=1, item={
            "id": "ctc_1", "type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch",
            "input": "*** Begin Patch\n*** End Patch"}),
        _ev("response.completed", response={"id": "resp_9", "status": "completed",
                                            "usage": {"input_tokens": 1, "output_tokens": 2}}),
    ])
    assert events[1:5] == [ir.BlockStart(0, "thinking"), ir.ThinkingDelta(0, "plan"),
                           ir.ThinkingDelta(0, "", signature="gAAAAAenc"), ir.BlockStop(0)]
    assert events[5] == ir.ToolCallStart(1, "call_p", "apply_patch")
    assert json.loads(events[6].json) == {"input": "*** Begin Patch\n*** End Patch"}
    assert events[-1].stop_reason is ir.StopReason.TOOL_USE


def test_encoder_redacted_thinking_block():
    events = encode_all([ir.MessageStart(), ir.BlockStart(0, "redacted_thinking", "gAAAAAblob"),
                         ir.BlockStop(0), ir.MessageStop()], ctx())
    assert [e.event for e in events] == ["response.created", "response.in_progress",
                                         "response.output_item.added",
                                         "response.output_item.done", "response.completed"]
    item = json.loads(events[3].data)["item"]
    assert item == {"id": "rs_resp_test123_0", "type": "reasoning", "summary": [],
                    "encrypted_content": "gAAAAAblob"}


def test_encode_request_drops_images_from_assistant_messages():
    req = ir.Request(model="m", messages=(ir.Message("assistant", (
        ir.TextPart("see"), ir.ImagePart(url="https://x/y.png"))),))
    body = codec.encode_request(req, model="m")
    assert body["input"] == [{"type": "message", "role": "assistant", "content": [
        {"type": "output_text", "text": "see", "annotations": []}]}]


_words = st.sampled_from([
    "message", "function_call", "function_call_output", "reasoning", "custom_tool_call",
    "input_text", "output_text", "input_image", "input_file", "refusal", "summary_text", "user",
    "assistant", "developer", "system", "function", "json_schema", "text", "auto", "completed",
    "incomplete", "failed", "data:image/png;base64,AAAA", "data:x", "gAAAAAx", "rs_1", "msg_1"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
    | _words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "role", "content", "text", "call_id", "name", "arguments",
                         "output", "image_url", "file_data", "summary", "format", "schema",
                         "effort", "id", "input", "delta", "item", "response", "status"]),
        inner, max_size=4),
    max_leaves=12)

_request_bodies = st.fixed_dictionaries({"model": st.just("m")}, optional={
    "input": _json, "instructions": _json, "tools": _json, "tool_choice": _json, "text": _json,
    "reasoning": _json, "max_output_tokens": _json, "temperature": _json, "metadata": _json})


@settings(max_examples=150, deadline=None)
@given(_request_bodies)
def test_fuzz_decode_request_raises_only_proxy_errors(body):
    try:
        req = codec.decode_request(body)
    except ProxyError as err:
        assert err.kind is ErrorKind.INVALID_REQUEST
        return
    codec.encode_request(req, model="m")


@settings(max_examples=150, deadline=None)
@given(_json)
def test_fuzz_decode_response_never_leaks_exceptions(body):
    try:
        codec.decode_response(body)
    except ProxyError:
        pass


_stream_types = st.sampled_from([
    "response.created", "response.output_item.added", "response.output_item.done",
    "response.content_part.added", "response.output_text.delta", "response.content_part.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.reasoning_summary_text.delta", "response.custom_tool_call_input.delta",
    "response.completed", "response.incomplete", "response.failed", "error"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_stream_types, st.dictionaries(
    st.sampled_from(["item", "delta", "arguments", "response", "part", "summary_index", "error",
                     "code", "message"]), _json, max_size=4)), max_size=8))
def test_fuzz_stream_decoder_and_encoder_chain(raw_events):
    dec = codec.StreamDecoder()
    ir_events = []
    for kind, fields in raw_events:
        ir_events += dec.feed(Event(json.dumps({**fields, "type": kind})))
    ir_events += dec.finish()
    assert isinstance(ir_events[-1], (ir.StreamError, ir.MessageStop, ir.UsageUpdate))
    out = encode_all(ir_events, ctx())
    payloads = [json.loads(e.data) for e in out]
    assert [p["sequence_number"] for p in payloads] == list(range(len(out)))
    assert payloads[-1]["type"] in ("response.completed", "response.incomplete", "response.failed")


def test_encoder_keeps_a_responses_upstream_id_else_uses_the_context_id():
    kept = encode_all([ir.MessageStart(id="resp_up1"), ir.MessageStop()], ctx())
    assert json.loads(kept[-1].data)["response"]["id"] == "resp_up1"
    other = encode_all([ir.MessageStart(id="msg_01abc"), ir.MessageStop()], ctx())
    assert json.loads(other[-1].data)["response"]["id"] == "resp_test123"


def test_foreign_extras_with_other_meanings_are_not_sent():
    req = ir.Request(model="m", messages=(), extras={
        "service_tier": "standard_only", "stream_options": {"include_usage": True},
        "prompt_cache_key": "k"})
    body = codec.encode_request(req, model="m")
    assert "service_tier" not in body and "stream_options" not in body
    assert body["prompt_cache_key"] == "k"


def test_reasoning_items_sent_upstream_only_with_openai_content_or_as_stored_reference():
    def items(part):
        req = ir.Request(model="m", messages=(ir.Message("assistant", (part, ir.TextPart("a"))),))
        return [i for i in codec.encode_request(req, model="m")["input"] if i["type"] == "reasoning"]

    assert items(ir.ThinkingPart("t", signature="EqQBClaudeSig", extras={"id": "rs_1"})) == []
    assert items(ir.ThinkingPart("t", extras={"id": "rs_1"})) == [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}]}]
    signed = items(ir.RedactedThinkingPart("gAAAAAok"))
    assert signed[0]["encrypted_content"] == "gAAAAAok" and signed[0]["id"].startswith("rs_")
    assert signed == items(ir.RedactedThinkingPart("gAAAAAok"))  # derived ids are stable


@pytest.mark.parametrize("name", ["stream_text_reasoning.txt", "stream_tool_call.txt"])
def test_streamed_and_whole_terminal_response_decode_to_the_same_answer(name):
    from cliproxyd.formats.aggregate import collect

    transcript = parse_sse((GOLDEN / name).read_text())
    streamed = collect(decode_all(transcript))
    whole = codec.decode_response(json.loads(transcript[-1].data)["response"])
    strip = lambda parts: [type(p)(**{k: v for k, v in vars(p).items() if k != "extras"})
                           for p in parts]
    assert strip(streamed.parts) == strip(whole.parts)
    assert streamed.stop_reason is whole.stop_reason and streamed.usage == whole.usage


def test_call_ids_over_64_characters_are_shortened_alike():
    long_id = "toolu_" + "x" * 70
    req = ir.Request(model="m", messages=(
        ir.Message("assistant", (ir.ToolCallPart(long_id, "f", "{}"),)),
        ir.Message("user", (ir.ToolResultPart(long_id, (ir.TextPart("ok"),)),))))
    call, output = codec.encode_request(req, model="m")["input"]
    assert len(call["call_id"]) <= 64 and output["call_id"] == call["call_id"]


def test_stream_decoder_ignores_a_non_string_response_id():
    decoder = codec.StreamDecoder()
    events = decoder.feed(_ev("response.created", response={"id": True, "model": 5}))
    assert events == [ir.MessageStart(id=None, model=None)]
    encoder = codec.StreamEncoder(ir.EncodeContext(model="m", created=1, response_id="resp_x"))
    assert encoder.feed(events[0])  # encodes without error


# -- passthrough stream watcher ---------------------------------------------------------------

_WATCHED = (ir.MessageStart, ir.UsageUpdate, ir.MessageStop, ir.StreamError)


def _comparable(events: list) -> list:
    """Errors compare by identity; compare what a client would see of them."""
    return [("error", e.error.kind, e.error.message, e.error.status, e.error.code)
            if isinstance(e, ir.StreamError) else e for e in events]


@pytest.mark.parametrize("name", ["stream_text_reasoning.txt", "stream_tool_call.txt",
                                  "stream_error.txt", "stream_truncated.txt"])
@pytest.mark.parametrize("cut", [None, -1, 3])
def test_watcher_reads_opening_usage_stop_and_errors_as_the_decoder(name, cut):
    """``cut`` drops the stream's tail (a truncated stream must still be noticed).  The tool
    stream's stop is a tool call, which the watcher sees without decoding the items."""
    decoder, watcher = codec.StreamDecoder(), codec.StreamWatcher()
    decoded: list = []
    watched: list = []
    for event in parse_sse((GOLDEN / name).read_text())[:cut]:
        decoded += decoder.feed(event)
        watched += watcher.feed(event)
        assert watcher.model_seen == decoder.model_seen  # the relay's model-name splice
        assert watcher.usage_only is False
    decoded += decoder.finish()
    watched += watcher.finish()
    assert _comparable(watched) == _comparable([e for e in decoded if isinstance(e, _WATCHED)])
    assert watched


def test_watcher_leaves_items_to_the_client_but_not_bad_json():
    """An item event the decoder would turn into blocks is not interpreted; an event that is not
    JSON still ends the stream with an error, and nothing is read after a terminal event."""
    watcher = codec.StreamWatcher()
    opening = watcher.feed(_ev("response.created", response={"id": "resp_1", "model": "up"}))
    assert opening == [ir.MessageStart(id="resp_1", model="up")] and watcher.model_seen == "up"
    assert watcher.feed(_ev("response.output_text.delta", item_id="msg_1", output_index=0,
                            content_index=0, delta="Hi")) == []
    assert watcher.feed(_ev("response.output_text.delta", delta=7)) == []
    assert watcher.feed(Event(data="[DONE]")) == [] and watcher.feed(Event(data=" ")) == []
    bad = watcher.feed(Event(event="response.output_text.delta", data="{not json"))
    assert len(bad) == 1 and bad[0].error.kind is ErrorKind.UPSTREAM_ERROR
    assert watcher.feed(_ev("response.completed", response={"status": "completed"})) == []
    assert watcher.finish() == []


def test_watcher_stop_is_a_tool_call_when_the_terminal_response_lists_one():
    """A terminal response whose items were never streamed: the decoder replays them (and so
    stops with tool_use); the watcher reads the same from the item list."""
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
            "arguments": "{}"}
    done = _ev("response.completed", response={
        "id": "resp_1", "model": "up", "status": "completed", "output": [call],
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}})
    decoder, watcher = codec.StreamDecoder(), codec.StreamWatcher()
    decoded = [e for e in decoder.feed(done) if isinstance(e, _WATCHED)]
    watched = watcher.feed(done)
    assert watched == decoded
    assert watched[-1].stop_reason is ir.StopReason.TOOL_USE
    assert watched[-2] == ir.UsageUpdate(ir.Usage(input_tokens=3, output_tokens=4, total_tokens=7))


def test_watcher_stop_is_a_tool_call_when_an_announced_item_is_one():
    """A terminal response that does not list its items again (the decoder remembers the
    announced call; so must the watcher)."""
    events = [_ev("response.created", response={"id": "resp_1", "model": "up"}),
              _ev("response.output_item.added", output_index=0, item={
                  "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
                  "arguments": ""}),
              _ev("response.function_call_arguments.delta", item_id="fc_1", output_index=0,
                  delta="{}"),
              _ev("response.completed", response={"id": "resp_1", "model": "up",
                                                  "status": "completed", "output": []})]
    decoder, watcher = codec.StreamDecoder(), codec.StreamWatcher()
    decoded = [e for ev in events for e in decoder.feed(ev) if isinstance(e, _WATCHED)]
    watched = [e for ev in events for e in watcher.feed(ev)]
    assert watched == decoded and watched[-1].stop_reason is ir.StopReason.TOOL_USE


# -- passthrough whole answers ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["response_text.json", "response_function_call.json",
                                  "response_incomplete.json"])
def test_watch_response_reads_the_usage_decode_response_reads(name):
    body = golden(name)
    assert codec.watch_response(body) == codec.decode_response(body).usage
    assert codec.watch_response(body).total_tokens  # the goldens carry usage

