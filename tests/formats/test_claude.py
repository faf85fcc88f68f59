"""Tests of cliproxyd/formats/claude.py (and its private _claude_blocks / _claude_stream).

Golden vectors in tests/golden/claude/ follow the shapes of Anthropic's API reference and the
official SDK's stream fixtures.  Stream encoder output is checked with the official `anthropic`
SDK's own stream parser over an offline httpx.MockTransport.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from pathlib import Path

import anthropic
import httpx2 as httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import claude, ir, sse
from cliproxyd.formats._claude_blocks import (
    STOP_FROM_CLAUDE,
    error_from_claude,
    stop_to_claude,
    usage_from_claude,
    usage_to_claude,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "claude"
CTX = ir.EncodeContext(model="claude-client-name", created=1700000000, response_id="msg_ctx_1")


def golden(name: str):
    text = (GOLDEN / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else text


def parse_sse(text: str) -> list[sse.Event]:
    parser = sse.Parser()
    return parser.feed(text.encode("utf-8")) + parser.finish()


def decode_stream(text: str) -> list[ir.StreamEvent]:
    decoder = claude.StreamDecoder()
    out: list[ir.StreamEvent] = []
    for event in parse_sse(text):
        out += decoder.feed(event)
    return out + decoder.finish()


def encode_stream(events, ctx=CTX) -> bytes:
    encoder = claude.StreamEncoder(ctx)
    frames = [f for e in events for f in encoder.feed(e)] + encoder.finish()
    return b"".join(sse.serialize(f) for f in frames)


def sdk_client(body: bytes, content_type: str = "text/event-stream") -> anthropic.Anthropic:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=body)
    return anthropic.Anthropic(api_key="test-key", base_url="http://127.0.0.1:9",
                               http_client=httpx.Client(transport=httpx.MockTransport(handler)),
                               max_retries=0)


def sdk_final(body: bytes):
    with sdk_client(body).messages.stream(model="m", max_tokens=10,
                                          messages=[{"role": "user", "content": "x"}]) as stream:
        return stream.get_final_message()


def sdk_raw_events(body: bytes):
    return list(sdk_client(body).messages.create(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True))


# ---------------------------------------------------------------------------------------------
# Requests: golden vectors


def test_decode_basic_request():
    req = claude.decode_request(golden("request_basic.json"))
    assert req.model == "claude-sonnet-4-5"
    assert req.max_output_tokens == 1024
    assert req.messages == (ir.Message("user", (ir.TextPart("Hello, world"),)),)
    assert req.stream is False and req.reasoning is None and req.extras == {}


def test_decode_tools_multiturn_request():
    req = claude.decode_request(golden("request_tools_multiturn.json"))
    assert [p.text for p in req.system] == ["You are a helpful weather assistant.",
                                            "Always answer in celsius."]
    assert req.system[1].extras == {"cache_control": {"type": "ephemeral"}}
    assert [t.name for t in req.tools] == ["get_weather"]
    assert req.tools[0].parameters["required"] == ["location"]
    assert req.extras["tools"] == [{"type": "web_search_20250305", "name": "web_search",
                                    "max_uses": 5}]
    assert req.tool_choice == ir.ToolChoice("auto") and req.parallel_tool_calls is False
    call = req.messages[1].parts[1]
    assert call == ir.ToolCallPart("toolu_01A09q90qw90lq917835lq9", "get_weather",
                                   '{"location":"San Francisco, CA","unit":"celsius"}')
    result = req.messages[2].parts[0]
    assert isinstance(result, ir.ToolResultPart)
    assert result.name == "get_weather"  # filled from the earlier tool_use (Gemini needs it)
    assert result.content == (ir.TextPart("15 degrees"),) and result.is_error is False
    assert req.stop == ("\n\nHuman:",) and req.temperature == 0.5 and req.top_k == 40
    assert req.user == "13803d75-b4b5-4c3e-b2a2-6f21399b021b"
    assert req.extras["service_tier"] == "auto"


def test_decode_media_and_thinking_request():
    req = claude.decode_request(golden("request_media_thinking.json"))
    assert req.stream is True
    assert req.reasoning == ir.Reasoning(budget=10000, include_thoughts=True)
    image, url_image, pdf, url_pdf, text_doc, text = req.messages[0].parts
    assert image.mime_type == "image/png" and image.data.startswith(b"\x89PNG")
    assert url_image.url.endswith("ant.jpg") and url_image.data is None
    assert pdf == ir.FilePart(data=b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n", mime_type="application/pdf",
                              filename="report.pdf",
                              extras={"cache_control": {"type": "ephemeral"}})
    assert url_pdf.url.endswith(".pdf") and url_pdf.mime_type == "application/pdf"
    assert text_doc.data == b"The grass is green. The sky is blue."
    assert text_doc.mime_type == "text/plain" and text_doc.filename == "My Document"
    assert text == ir.TextPart("Describe these and compare them.")
    thinking, redacted, answer = req.messages[1].parts
    assert answer == ir.TextPart("The first image is a single pixel.")
    assert thinking.text == "Let me analyze this step by step..."
    assert thinking.signature.startswith("WaUjzkyp")
    assert redacted == ir.RedactedThinkingPart("EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP")
    result = req.messages[2].parts[0]
    assert result.is_error is True and result.name is None  # no matching tool_use earlier
    assert result.content == (ir.TextPart("error: timeout"),)


def _normalise(body: dict) -> dict:
    """A one-text-block tool_result content is the same as the string form."""
    body = copy.deepcopy(body)
    for message in body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else ():
            content = block.get("content") if block.get("type") == "tool_result" else None
            if isinstance(content, list) and len(content) == 1 and content[0]["type"] == "text" \
                    and set(content[0]) == {"type", "text"}:
                block["content"] = content[0]["text"]
    return body


@pytest.mark.parametrize("name", ["request_basic.json", "request_tools_multiturn.json",
                                  "request_media_thinking.json"])
def test_request_round_trip(name):
    body = golden(name)
    encoded = claude.encode_request(claude.decode_request(body), model=body["model"])
    assert _normalise(encoded) == _normalise(body)


def test_unmodelled_blocks_survive_a_claude_round_trip():
    server_use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                  "input": {"query": "nyc weather"}}
    server_result = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                     "content": [{"type": "web_search_result", "title": "t", "url": "https://x",
                                  "encrypted_content": "abc"}]}
    body = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [server_use, server_result, {"type": "text", "text": "Sunny"}]}]}
    req = claude.decode_request(body)
    assert req.messages[1].parts == (ir.TextPart("Sunny"),)
    assert claude.encode_request(req, model="m")["messages"] == body["messages"]


def test_count_tokens_body_needs_no_max_tokens():
    body = {"model": "claude-sonnet-4-5", "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hello, world"}]}
    req = claude.decode_request(body)
    assert req.max_output_tokens is None
    out = claude.encode_count_tokens_request(
        ir.Request(model="x", messages=req.messages, system=req.system, temperature=0.2,
                   stream=True, max_output_tokens=50), model="claude-sonnet-4-5")
    assert out == body
    assert claude.decode_count_tokens_response(golden("count_tokens_response.json")) == 2095
    assert claude.encode_count_tokens_response(7) == {"input_tokens": 7}
    with pytest.raises(ProxyError) as info:
        claude.decode_count_tokens_response({"tokens": 1})
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR


@pytest.mark.parametrize("body, param", [
    ({"max_tokens": 5, "messages": []}, "model"),
    ({"model": "m", "max_tokens": 5}, "messages"),
    ({"model": "m", "messages": [{"role": "system", "content": "x"}]}, "messages[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"text": "no type"}]}]},
     "messages[0].content[0]"),
    ({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "@@"}}]}]},
     "messages[0].content[0].source.data"),
    ({"model": "m", "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}]},
     "messages[0].content[0].input"),
    ({"model": "m", "messages": [], "max_tokens": "10"}, "max_tokens"),
    ({"model": "m", "messages": [], "max_tokens": True}, "max_tokens"),
    ({"model": "m", "messages": [], "temperature": "hot"}, "temperature"),
    ({"model": "m", "messages": [], "stop_sequences": "END"}, "stop_sequences"),
    ({"model": "m", "messages": [], "system": 3}, "system"),
    ({"model": "m", "messages": [], "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ({"model": "m", "messages": [], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"model": "m", "messages": [], "thinking": {"type": "enabled", "budget_tokens": "lots"}},
     "thinking.budget_tokens"),
    ({"model": "m", "messages": [], "thinking": {"type": "maybe"}}, "thinking.type"),
    ({"model": "m", "messages": [], "tools": [{"name": "f", "input_schema": "x"}]}, "tools[0]"),
    ({"model": "m", "messages": [], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [], "output_config": "fast"}, "output_config"),
])
def test_invalid_requests_are_400(body, param):
    with pytest.raises(ProxyError) as info:
        claude.decode_request(body)
    assert info.value.kind is ErrorKind.INVALID_REQUEST and info.value.status == 400
    assert info.value.param == param


def test_model_argument_overrides_body():
    req = claude.decode_request({"messages": []}, model="from-url")
    assert req.model == "from-url"


def test_unknown_top_level_fields_go_to_extras_and_only_claude_ones_come_back():
    req = claude.decode_request({"model": "m", "messages": [], "container": "c1",
                                 "brand_new_field": {"a": 1}})
    assert req.extras == {"container": "c1", "brand_new_field": {"a": 1}}
    body = claude.encode_request(req, model="m")
    assert body["container"] == "c1" and "brand_new_field" not in body
    foreign = ir.Request(model="m", messages=(), extras={"service_tier": "flex", "store": True})
    assert "service_tier" not in claude.encode_request(foreign, model="m")


# ---------------------------------------------------------------------------------------------
# Requests: encoding from other formats' IR


def _user(*parts):
    return ir.Message("user", tuple(parts))


def test_encode_parts_from_foreign_ir():
    png = base64.b64decode(golden("request_media_thinking.json")["messages"][0]["content"][0]
                           ["source"]["data"])
    req = ir.Request(model="gpt", messages=(
        _user(ir.TextPart("look"), ir.ImagePart(data=png),
              ir.ImagePart(url="data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xffx").decode()),
              ir.FilePart(data=b"%PDF-1.7", filename="a.pdf"), ir.TextPart("")),
        ir.Message("assistant", (ir.ThinkingPart("unsigned thoughts"),
                                 ir.ToolCallPart("call.1:x", "lookup", '{"q": 1}'),
                                 ir.ToolCallPart("call_2", "broken", "not json"))),
        _user(ir.ToolResultPart("call.1:x", (ir.TextPart("a"), ir.TextPart("b")), name="lookup")),
    ), seed=3, presence_penalty=0.1)
    body = claude.encode_request(req, model="claude-x")
    first, assistant, result = body["messages"]
    assert first["content"][1]["source"] == {"type": "base64", "media_type": "image/png",
                                             "data": base64.b64encode(png).decode()}
    assert first["content"][2]["source"]["media_type"] == "image/jpeg"
    assert first["content"][3] == {"type": "document", "title": "a.pdf", "source": {
        "type": "base64", "media_type": "application/pdf", "data": base64.b64encode(b"%PDF-1.7").decode()}}
    assert len(first["content"]) == 4  # the empty text block is dropped (Anthropic rejects it)
    assert assistant["content"] == [  # unsigned thinking dropped; ids made Anthropic-safe
        {"type": "tool_use", "id": "call_1_x", "name": "lookup", "input": {"q": 1}},
        {"type": "tool_use", "id": "call_2", "name": "broken", "input": {}}]
    assert result["content"] == [{"type": "tool_result", "tool_use_id": "call_1_x", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert "seed" not in body and "presence_penalty" not in body
    assert body["max_tokens"] == claude.DEFAULT_MAX_TOKENS


@pytest.mark.parametrize("choice, parallel, expected", [
    (ir.ToolChoice("auto"), None, {"type": "auto"}),
    (ir.ToolChoice("required"), None, {"type": "any"}),
    (ir.ToolChoice("none"), None, {"type": "none"}),
    (ir.ToolChoice("tool", "f"), False, {"type": "tool", "name": "f", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    (None, None, None),
])
def test_tool_choice_table(choice, parallel, expected):
    req = ir.Request(model="m", messages=(), tools=(ir.Tool("f", parameters={"type": "object"}),),
                     tool_choice=choice, parallel_tool_calls=parallel)
    body = claude.encode_request(req, model="m")
    assert body.get("tool_choice") == expected
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
    back = claude.decode_request(body)
    if expected is not None:
        assert back.tool_choice == (choice or ir.ToolChoice("auto"))
        assert back.parallel_tool_calls is (False if parallel is False else None)


def test_tool_choice_dropped_without_tools_and_foreign_builtin_tools_dropped():
    req = ir.Request(model="m", messages=(), tool_choice=ir.ToolChoice("required"),
                     extras={"tools": [{"type": "web_search"}, {"type": "web_search_20250305",
                                                                "name": "web_search"}]})
    body = claude.encode_request(req, model="m")
    assert body["tools"] == [{"type": "web_search_20250305", "name": "web_search"}]
    assert body["tool_choice"] == {"type": "any"}
    assert "tool_choice" not in claude.encode_request(
        ir.Request(model="m", messages=(), tool_choice=ir.ToolChoice("required")), model="m")


def test_tool_without_schema_gets_an_object_schema():
    body = claude.encode_request(ir.Request(model="m", messages=(), tools=(
        ir.Tool("ping"), ir.Tool("echo", "Echo", {"properties": {"x": {"type": "string"}}}))),
        model="m")
    assert body["tools"] == [
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
        {"name": "echo", "description": "Echo",
         "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}]


# ---------------------------------------------------------------------------------------------
# Reasoning and max_tokens


@pytest.mark.parametrize("thinking, output_config, expected", [
    ({"type": "disabled"}, None, ir.Reasoning(effort="none", budget=0)),
    ({"type": "enabled", "budget_tokens": 2048}, None,
     ir.Reasoning(budget=2048, include_thoughts=True)),
    ({"type": "enabled", "budget_tokens": 2048, "display": "omitted"}, None,
     ir.Reasoning(budget=2048, include_thoughts=False)),
    ({"type": "adaptive"}, None, ir.Reasoning(effort="auto", include_thoughts=True)),
    ({"type": "adaptive"}, {"effort": "high"}, ir.Reasoning(effort="high", include_thoughts=True)),
    (None, {"effort": "low"}, ir.Reasoning(effort="low")),
    ({"type": "enabled"}, None, ir.Reasoning(effort="auto", budget=-1, include_thoughts=True)),
])
def test_reasoning_decode_table(thinking, output_config, expected):
    body = {"model": "m", "messages": []}
    if thinking is not None:
        body["thinking"] = thinking
    if output_config is not None:
        body["output_config"] = output_config
    assert claude.decode_request(body).reasoning == expected


@pytest.mark.parametrize("body", [
    {"thinking": {"type": "disabled"}},
    {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4096},
    {"thinking": {"type": "adaptive"}},
    {"thinking": {"type": "adaptive", "display": "summarized"}, "output_config": {"effort": "max"}},
    {"output_config": {"effort": "medium"}},
])
def test_reasoning_round_trips_for_claude_clients(body):
    full = {"model": "m", "max_tokens": 1000, "messages": [], **body}
    assert claude.encode_request(claude.decode_request(full), model="m") == full


@pytest.mark.parametrize("reasoning, max_tokens, thinking, out_max, effort", [
    (ir.Reasoning(effort="high"), None, {"type": "enabled", "budget_tokens": 24576},
     24576 + claude.DEFAULT_MAX_TOKENS, None),
    (ir.Reasoning(effort="minimal"), None, {"type": "enabled", "budget_tokens": 1024},
     1024 + claude.DEFAULT_MAX_TOKENS, None),
    (ir.Reasoning(budget=600), 4000, {"type": "enabled", "budget_tokens": 1024}, 4000, None),
    (ir.Reasoning(budget=9000), 4000, {"type": "enabled", "budget_tokens": 3999}, 4000, None),
    (ir.Reasoning(budget=9000), 1024, None, 1024, None),
    (ir.Reasoning(effort="none"), None, {"type": "disabled"}, claude.DEFAULT_MAX_TOKENS, None),
    (ir.Reasoning(budget=0), 50, {"type": "disabled"}, 50, None),
    (ir.Reasoning(effort="auto"), None, {"type": "adaptive"}, claude.DEFAULT_MAX_TOKENS, None),
    (ir.Reasoning(budget=-1, include_thoughts=True), None,
     {"type": "adaptive"}, claude.DEFAULT_MAX_TOKENS, None),
    (ir.Reasoning(budget=2000, include_thoughts=False), None,
     {"type": "enabled", "budget_tokens": 2000, "display": "omitted"},
     2000 + claude.DEFAULT_MAX_TOKENS, None),
    (ir.Reasoning(effort="medium"), 100, None, 100, None),
])
def test_reasoning_encode_rule(reasoning, max_tokens, thinking, out_max, effort):
    body = claude.encode_request(ir.Request(model="m", messages=(), reasoning=reasoning,
                                            max_output_tokens=max_tokens), model="m")
    assert body.get("thinking") == thinking
    assert body["max_tokens"] == out_max
    assert body.get("output_config", {}).get("effort") == effort
    if thinking and thinking["type"] == "enabled":
        assert thinking["budget_tokens"] < body["max_tokens"]


def test_thinking_drops_incompatible_settings_and_forced_tool_drops_thinking():
    req = ir.Request(model="m", messages=(), reasoning=ir.Reasoning(budget=2000),
                     temperature=0.3, top_k=5, top_p=0.5)
    body = claude.encode_request(req, model="m")
    assert body["thinking"]["type"] == "enabled"
    assert not {"temperature", "top_k", "top_p"} & set(body)
    forced = ir.Request(model="m", messages=(), reasoning=ir.Reasoning(budget=2000),
                        tools=(ir.Tool("f"),), tool_choice=ir.ToolChoice("tool", "f"),
                        temperature=0.3)
    body = claude.encode_request(forced, model="m")
    assert "thinking" not in body and body["temperature"] == 0.3


def _tool_loop(*assistant_first: ir.Part) -> tuple[ir.Message, ...]:
    """user → assistant (``assistant_first`` then a tool call) → user tool result."""
    call = ir.ToolCallPart("toolu_1", "f", '{"x":1}')
    return (ir.Message("user", (ir.TextPart("go"),)),
            ir.Message("assistant", (*assistant_first, call)),
            ir.Message("user", (ir.ToolResultPart("toolu_1", (ir.TextPart("ok"),), name="f"),)))


@pytest.mark.parametrize("first, kept", [
    ((), False),  # a Chat/Gemini client's history: tool call without thinking
    ((ir.ThinkingPart("hm"),), False),  # unsigned reasoning_content
    ((ir.ThinkingPart("hm", signature="gAAAAABfernet"),), False),  # OpenAI encrypted content
    ((ir.RedactedThinkingPart("gAAAAABfernet"),), False),
    ((ir.ThinkingPart("hm", signature="EqQBsig"),), True),  # Anthropic's own
    ((ir.RedactedThinkingPart("EmwKAHgBsig"),), True),
])
def test_thinking_needs_a_signed_block_before_the_last_tool_call(first, kept):
    # Anthropic: "When thinking is enabled, a final assistant message must start with a
    # thinking block" -- without one, thinking is turned off instead of a 400.
    req = ir.Request(model="m", messages=_tool_loop(*first), tools=(ir.Tool("f"),),
                     reasoning=ir.Reasoning(budget=4000, include_thoughts=True))
    body = claude.encode_request(req, model="m")
    assert ("thinking" in body) is kept
    assistant = body["messages"][1]["content"]
    assert [b["type"] for b in assistant][-1] == "tool_use"
    assert all("gAAAAA" not in json.dumps(b) for b in assistant)


def test_thinking_stays_when_the_last_assistant_turn_calls_no_tool():
    history = (ir.Message("user", (ir.TextPart("hi"),)),
               ir.Message("assistant", (ir.TextPart("hello"),)),
               ir.Message("user", (ir.TextPart("more"),)))
    body = claude.encode_request(ir.Request(model="m", messages=history,
                                            reasoning=ir.Reasoning(budget=4000)), model="m")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4000}


def test_temperature_and_top_p_are_never_sent_together():
    # Claude 4.5 and later: "temperature and top_p cannot both be specified for this model".
    from cliproxyd.formats import gemini
    req = gemini.decode_request({"contents": [{"parts": [{"text": "hi"}]}],
                                 "generationConfig": {"temperature": 0, "topP": 1}}, model="m")
    body = claude.encode_request(req, model="m")
    assert body["temperature"] == 0 and "top_p" not in body
    only_p = claude.encode_request(replace(req, temperature=None), model="m")
    assert only_p["top_p"] == 1 and "temperature" not in only_p


def test_image_jpg_data_urls_are_sent_as_image_jpeg():
    from cliproxyd.formats import openai_chat
    url = "data:image/jpg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0").decode()
    req = openai_chat.decode_request({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]})
    (block,) = claude.encode_request(req, model="m")["messages"][0]["content"]
    assert block["source"]["media_type"] == "image/jpeg"


def test_context_management_of_another_shape_is_not_passed_to_anthropic():
    from cliproxyd.formats import openai_responses
    req = openai_responses.decode_request({"model": "m", "input": "hi", "context_management": [
        {"type": "compaction", "compact_threshold": 1000}]})
    assert "context_management" not in claude.encode_request(req, model="m")
    own = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    mine = claude.decode_request({"model": "m", "messages": [], "context_management": own})
    assert claude.encode_request(mine, model="m")["context_management"] == own


def test_suffix_reasoning_on_a_claude_request_with_only_a_format_turns_thinking_on():
    schema = {"type": "object"}
    req = claude.decode_request({"model": "m", "messages": [], "output_config": {
        "format": {"type": "json_schema", "schema": schema}}})
    body = claude.encode_request(replace(req, reasoning=ir.Reasoning(effort="low")), model="m")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_response_format_json_schema_maps_to_output_config():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}},
              "additionalProperties": False}
    req = ir.Request(model="m", messages=(), response_format=ir.ResponseFormat("json_schema", schema))
    body = claude.encode_request(req, model="m")
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert claude.decode_request(body).response_format == ir.ResponseFormat("json_schema", schema)
    plain = ir.Request(model="m", messages=(), response_format=ir.ResponseFormat("json_object"))
    assert "output_config" not in claude.encode_request(plain, model="m")


def test_user_turn_puts_tool_results_first_and_temperature_is_clamped():
    req = ir.Request(model="m", temperature=1.7, messages=(
        ir.Message("assistant", (ir.ToolCallPart("t1", "f"),)),
        _user(ir.TextPart("also this"), ir.ToolResultPart("t1", (ir.TextPart("42"),)))))
    body = claude.encode_request(req, model="m")
    assert [b["type"] for b in body["messages"][1]["content"]] == ["tool_result", "text"]
    assert body["temperature"] == 1.0


# ---------------------------------------------------------------------------------------------
# Responses


def test_decode_text_response():
    resp = claude.decode_response(golden("response_text.json"))
    assert resp.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF" and resp.model == "claude-sonnet-4-5-20250929"
    assert resp.parts == (ir.TextPart("Hi! My name is Claude."),)
    assert resp.stop_reason is ir.StopReason.END_TURN and resp.native_stop_reason == "end_turn"
    assert resp.usage == ir.Usage(input_tokens=2095, output_tokens=503, total_tokens=2598)


def test_decode_tool_use_response_usage_has_openai_meaning():
    resp = claude.decode_response(golden("response_tool_use.json"))
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert resp.parts[1] == ir.ToolCallPart("toolu_01A09q90qw90lq917835lq9", "get_weather",
                                            '{"location":"San Francisco, CA","unit":"celsius"}')
    assert resp.usage == ir.Usage(input_tokens=1500 + 1800 + 248, output_tokens=89,
                                  cached_input_tokens=1800, cache_creation_tokens=248,
                                  total_tokens=1500 + 1800 + 248 + 89)


def test_decode_thinking_response():
    resp = claude.decode_response(golden("response_thinking.json"))
    assert isinstance(resp.parts[0], ir.ThinkingPart) and resp.parts[0].signature
    assert isinstance(resp.parts[1], ir.RedactedThinkingPart)
    assert resp.stop_reason is ir.StopReason.STOP_SEQUENCE and resp.stop_sequence == "\n\nHuman:"


@pytest.mark.parametrize("name", ["response_text.json", "response_tool_use.json",
                                  "response_thinking.json"])
def test_response_round_trip_and_sdk_validation(name):
    body = golden(name)
    ctx = ir.EncodeContext(model=body["model"], created=0, response_id="unused")
    encoded = claude.encode_response(claude.decode_response(body), ctx)
    assert encoded == body
    anthropic.types.Message.model_validate(encoded)


def test_encode_foreign_response():
    resp = ir.Response(id="", model="gemini-2.5-pro", parts=(
        ir.ThinkingPart("hmm"), ir.TextPart("Calling."),
        ir.ToolCallPart("call_lookup_0", "lookup", '{"q":"x"}'), ir.ImagePart(data=b"x")),
        stop_reason=ir.StopReason.END_TURN,
        usage=ir.Usage(input_tokens=100, output_tokens=20, cached_input_tokens=30))
    body = claude.encode_response(resp, CTX)
    message = anthropic.types.Message.model_validate(body)
    assert body["id"] == "msg_ctx_1" and body["model"] == "claude-client-name"
    assert body["stop_reason"] == "tool_use"  # a tool call was made (Gemini says STOP)
    assert [b["type"] for b in body["content"]] == ["thinking", "text", "tool_use"]
    assert message.content[0].signature == ""
    assert body["usage"] == {"input_tokens": 70, "cache_read_input_tokens": 30, "output_tokens": 20}


def test_decode_error_and_malformed_responses():
    with pytest.raises(ProxyError) as info:
        claude.decode_response(golden("error_overloaded.json"))
    assert info.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE and info.value.status == 503
    with pytest.raises(ProxyError) as info:
        claude.decode_response({"id": "x"})
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR
    with pytest.raises(ProxyError) as info:
        claude.decode_response({"content": [{"type": "text"}]})
    assert info.value.kind is ErrorKind.UPSTREAM_ERROR


def test_server_tool_blocks_survive_a_claude_response_round_trip():
    body = golden("response_text.json")
    body["content"] = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
         "input": {"query": "claude"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "Found it."}]
    resp = claude.decode_response(body)
    assert resp.parts == (ir.TextPart("Found it."),)
    ctx = ir.EncodeContext(model=body["model"], created=0, response_id="unused")
    assert claude.encode_response(resp, ctx) == body


def test_module_exports_the_codec_protocol():
    for name in ("decode_request", "encode_request", "decode_response", "encode_response",
                 "render_error", "StreamDecoder", "StreamEncoder"):
        assert callable(getattr(claude, name)), name
    assert set(claude.__all__) <= set(dir(claude))


# ---------------------------------------------------------------------------------------------
# Tables


@pytest.mark.parametrize("native, reason", [
    ("end_turn", ir.StopReason.END_TURN), ("max_tokens", ir.StopReason.MAX_TOKENS),
    ("stop_sequence", ir.StopReason.STOP_SEQUENCE), ("tool_use", ir.StopReason.TOOL_USE),
    ("refusal", ir.StopReason.REFUSAL), ("pause_turn", ir.StopReason.PAUSE_TURN),
    ("model_context_window_exceeded", ir.StopReason.MAX_TOKENS),
])
def test_stop_reason_table_round_trips(native, reason):
    assert STOP_FROM_CLAUDE[native] is reason
    assert stop_to_claude(reason, native, saw_tool_call=False) == native


@pytest.mark.parametrize("reason, saw_tool, expected", [
    (ir.StopReason.CONTENT_FILTER, False, "refusal"),
    (ir.StopReason.ERROR, False, "end_turn"),
    (ir.StopReason.END_TURN, True, "tool_use"),
    (ir.StopReason.MAX_TOKENS, True, "max_tokens"),
])
def test_stop_reason_from_other_formats(reason, saw_tool, expected):
    assert stop_to_claude(reason, None, saw_tool) == expected


@pytest.mark.parametrize("wire, usage", [
    ({"input_tokens": 10, "output_tokens": 5}, ir.Usage(10, 5, total_tokens=15)),
    ({"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 7,
      "output_tokens": 5}, ir.Usage(117, 5, 100, 7, total_tokens=122)),
    ({"input_tokens": 0, "output_tokens": 9, "output_tokens_details": {"thinking_tokens": 4}},
     ir.Usage(0, 9, reasoning_tokens=4, total_tokens=9)),
    ({}, ir.Usage()),
])
def test_usage_table(wire, usage):
    assert usage_from_claude(wire) == usage
    if wire:
        back = usage_to_claude(usage)
        assert back == {k: v for k, v in wire.items() if k != "output_tokens_details"}


def test_usage_to_claude_floors_at_zero():
    assert usage_to_claude(ir.Usage(input_tokens=5, cached_input_tokens=10, output_tokens=1)) == \
        {"input_tokens": 0, "cache_read_input_tokens": 10, "output_tokens": 1}


@pytest.mark.parametrize("etype, kind, status", [
    ("invalid_request_error", ErrorKind.INVALID_REQUEST, 400),
    ("authentication_error", ErrorKind.AUTHENTICATION, 401),
    ("permission_error", ErrorKind.PERMISSION, 403),
    ("not_found_error", ErrorKind.NOT_FOUND, 404),
    ("request_too_large", ErrorKind.PAYLOAD_TOO_LARGE, 413),
    ("rate_limit_error", ErrorKind.RATE_LIMITED, 429),
    ("api_error", ErrorKind.UPSTREAM_ERROR, 500),
    ("timeout_error", ErrorKind.UPSTREAM_TIMEOUT, 504),
    ("overloaded_error", ErrorKind.UPSTREAM_UNAVAILABLE, 503),
    ("something_new", ErrorKind.UPSTREAM_ERROR, 502),
])
def test_upstream_error_table(etype, kind, status):
    err = error_from_claude({"type": "error", "error": {"type": etype, "message": "boom"}})
    assert (err.kind, err.status, err.message) == (kind, status, "boom")


@pytest.mark.parametrize("kind, etype", [
    (ErrorKind.INVALID_REQUEST, "invalid_request_error"),
    (ErrorKind.AUTHENTICATION, "authentication_error"),
    (ErrorKind.PERMISSION, "permission_error"),
    (ErrorKind.NOT_FOUND, "not_found_error"),
    (ErrorKind.MODEL_NOT_FOUND, "not_found_error"),
    (ErrorKind.PAYLOAD_TOO_LARGE, "request_too_large"),
    (ErrorKind.RATE_LIMITED, "rate_limit_error"),
    (ErrorKind.UPSTREAM_ERROR, "api_error"),
    (ErrorKind.UPSTREAM_TIMEOUT, "timeout_error"),
    (ErrorKind.UPSTREAM_UNAVAILABLE, "overloaded_error"),
    (ErrorKind.INTERNAL, "api_error"),
])
def test_render_error_shape(kind, etype):
    body = claude.render_error(ProxyError(kind, "nope"))
    assert body == {"type": "error", "error": {"type": etype, "message": "nope"}}
    if etype != "request_too_large":  # documented for 413 by Anthropic, absent from SDK types
        anthropic.types.ErrorResponse.model_validate(body)


# ---------------------------------------------------------------------------------------------
# Stream decoder (playbooks: these SSE events in, exactly these IR events out)


def test_decode_text_stream():
    assert decode_stream(golden("stream_text.txt")) == [
        ir.MessageStart("msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK", "claude-3-opus-latest",
                        ir.Usage(11, 1, total_tokens=12)),
        ir.BlockStart(0, "text"), ir.TextDelta(0, "Hello"), ir.TextDelta(0, " there"),
        ir.TextDelta(0, "!"), ir.BlockStop(0),
        ir.UsageUpdate(ir.Usage(11, 6, total_tokens=17)),
        ir.MessageStop(ir.StopReason.END_TURN, None, "end_turn"),
    ]


def test_decode_tool_use_stream():
    events = decode_stream(golden("stream_tool_use.txt"))
    assert events[5:] == [
        ir.ToolCallStart(1, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather"),
        ir.ToolArgsDelta(1, '{"locati'), ir.ToolArgsDelta(1, 'on": "P'), ir.ToolArgsDelta(1, "ar"),
        ir.ToolArgsDelta(1, 'is"}'), ir.BlockStop(1),
        ir.UsageUpdate(ir.Usage(377, 65, 0, 0, total_tokens=442)),
        ir.MessageStop(ir.StopReason.TOOL_USE, None, "tool_use"),
    ]


def test_decode_thinking_stream():
    events = decode_stream(golden("stream_thinking.txt"))
    assert events[0] == ir.MessageStart("msg_01RatTQ3mKanyqCmMsbRkrrb", "claude-sonnet-4-5",
                                        ir.Usage(85, 1, total_tokens=86))
    assert events[1] == ir.BlockStart(0, "thinking")
    assert events[2].text.startswith("I need to find the GCD")
    assert events[4] == ir.ThinkingDelta(0, "", "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds")
    assert events[5:8] == [ir.BlockStop(0), ir.BlockStart(1, "text"), ir.TextDelta(
        1, "The greatest common divisor (GCD) of 1071 and 462 is **21**.")]
    assert events[-2:] == [ir.UsageUpdate(ir.Usage(85, 150, total_tokens=235)),
                           ir.MessageStop(ir.StopReason.END_TURN, None, "end_turn")]


def test_decode_stream_without_usage_fields():
    text = (golden("stream_thinking.txt")
            .replace(', "usage": {"input_tokens": 85, "output_tokens": 1}', "")
            .replace(', "usage": {"output_tokens": 150}', ""))
    events = decode_stream(text)
    assert events[0] == ir.MessageStart("msg_01RatTQ3mKanyqCmMsbRkrrb", "claude-sonnet-4-5", None)
    assert events[-1] == ir.MessageStop(ir.StopReason.END_TURN, None, "end_turn")
    assert not any(isinstance(e, (ir.UsageUpdate, ir.StreamError)) for e in events)


def test_decode_error_stream():
    events = decode_stream(golden("stream_error.txt"))
    assert events[-1].error.kind is ErrorKind.UPSTREAM_UNAVAILABLE
    assert events[-1].error.message == "Overloaded"
    assert sum(isinstance(e, ir.StreamError) for e in events) == 1  # finish adds nothing


def test_decode_server_tool_blocks_are_skipped_and_indices_renumbered():
    events = decode_stream(golden("stream_server_tool.txt"))
    assert events[1:4] == [ir.BlockStart(0, "text"),
                           ir.TextDelta(0, "It is sunny in New York City today."), ir.BlockStop(0)]
    assert events[4] == ir.UsageUpdate(ir.Usage(10682, 510, 0, 0, total_tokens=11192))


def test_decoder_truncated_stream_is_an_error():
    text = golden("stream_text.txt").split("event: message_delta")[0]
    events = decode_stream(text)
    err = events[-1]
    assert isinstance(err, ir.StreamError) and err.error.status == 502
    assert err.error.message == "upstream stream ended before completion"


def test_decoder_ignores_ping_and_anything_after_the_end():
    decoder = claude.StreamDecoder()
    assert decoder.feed(sse.Event('{"type": "ping"}', "ping")) == []
    assert decoder.feed(sse.Event('{"type":"message_stop"}', "message_stop")) == [ir.MessageStop()]
    assert decoder.feed(sse.Event('{"type":"message_stop"}', "message_stop")) == []
    assert decoder.finish() == []


@pytest.mark.parametrize("event", [
    sse.Event("not json", "content_block_delta"),
    sse.Event("[1]", "message_start"),
    sse.Event('{"type":"content_block_start","index":0}', "content_block_start"),
    sse.Event('{"type":"message_start","message":5}', "message_start"),
])
def test_decoder_malformed_events_become_stream_errors(event):
    decoder = claude.StreamDecoder()
    out = decoder.feed(event)
    assert len(out) == 1 and isinstance(out[0], ir.StreamError)
    assert out[0].error.kind is ErrorKind.UPSTREAM_ERROR
    assert decoder.finish() == []


# ---------------------------------------------------------------------------------------------
# Stream encoder, checked with the official SDK's parser


@pytest.mark.parametrize("name", ["stream_text.txt", "stream_tool_use.txt",
                                  "stream_thinking.txt", "stream_server_tool.txt"])
def test_stream_claude_to_claude_matches_sdk_view_of_the_original(name):
    original = golden(name)
    ours = encode_stream(decode_stream(original))
    want, got = sdk_final(original.encode()), sdk_final(ours)
    keep = [b.to_dict() for b in want.content if b.type not in ("server_tool_use",
                                                                "web_search_tool_result")]
    for block in keep:
        block.pop("caller", None)
    assert [b.to_dict() for b in got.content] == keep
    assert (got.stop_reason, got.stop_sequence) == (want.stop_reason, want.stop_sequence)
    assert got.usage.output_tokens == want.usage.output_tokens
    assert got.usage.input_tokens == want.usage.input_tokens
    assert got.model == CTX.model


def test_stream_encoder_exact_sequence_for_a_tool_call():
    events = [ir.MessageStart("msg_1", "upstream-model", ir.Usage(input_tokens=12)),
              ir.BlockStart(0, "text"), ir.TextDelta(0, "Hi"), ir.BlockStop(0),
              ir.ToolCallStart(1, "toolu_1", "f"), ir.ToolArgsDelta(1, '{"a":'),
              ir.ToolArgsDelta(1, "1}"), ir.BlockStop(1),
              ir.UsageUpdate(ir.Usage(12, 7)), ir.MessageStop(ir.StopReason.TOOL_USE)]
    frames = parse_sse(encode_stream(events).decode())
    assert [f.event for f in frames] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert json.loads(frames[0].data) == {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [],
        "model": "claude-client-name", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 0}}}
    assert json.loads(frames[4].data)["content_block"] == {"type": "tool_use", "id": "toolu_1",
                                                           "name": "f", "input": {}}
    assert json.loads(frames[8].data) == {"type": "message_delta", "delta": {
        "stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 12, "output_tokens": 7}}
    raw = sdk_raw_events(encode_stream(events))
    assert [e.type for e in raw] == [f.event for f in frames]
    final = sdk_final(encode_stream(events))
    assert final.content[1].input == {"a": 1} and final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 7)


def test_stream_encoder_synthesises_missing_events_like_a_gemini_stream():
    # No MessageStart, no BlockStart, no BlockStop, usage after the stop, tool call not closed.
    events = [ir.ThinkingDelta(0, "plan", "sig-1"), ir.TextDelta(1, "Hello "),
              ir.TextDelta(1, "world"), ir.ToolCallStart(2, "", "lookup"),
              ir.ToolArgsDelta(2, '{"q":"x"}'),
              ir.MessageStop(ir.StopReason.END_TURN, native_stop_reason="STOP"),
              ir.UsageUpdate(ir.Usage(input_tokens=40, output_tokens=9, cached_input_tokens=10))]
    body = encode_stream(events)
    final = sdk_final(body)
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "plan" and final.content[0].signature == "sig-1"
    assert final.content[1].text == "Hello world"
    assert final.content[2].input == {"q": "x"} and final.content[2].id.startswith("toolu_")
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens,
            final.usage.output_tokens) == (30, 10, 9)


def test_stream_encoder_waits_for_late_usage_and_ends_once():
    encoder = claude.StreamEncoder(CTX)
    assert [f.event for f in encoder.feed(ir.MessageStop(ir.StopReason.MAX_TOKENS))] == \
        ["message_start"]
    frames = encoder.feed(ir.UsageUpdate(ir.Usage(output_tokens=3)))
    assert [f.event for f in frames] == ["message_delta", "message_stop"]
    assert json.loads(frames[0].data)["usage"] == {"output_tokens": 3}
    assert json.loads(frames[0].data)["delta"]["stop_reason"] == "max_tokens"
    assert encoder.feed(ir.UsageUpdate(ir.Usage(output_tokens=4))) == []
    assert encoder.finish() == []


def test_stream_encoder_without_late_usage_ends_at_finish():
    encoder = claude.StreamEncoder(CTX)
    encoder.feed(ir.UsageUpdate(ir.Usage(5, 2)))
    encoder.feed(ir.TextDelta(0, "x"))
    assert [f.event for f in encoder.feed(ir.MessageStop(ir.StopReason.STOP_SEQUENCE, "END"))] \
        == ["content_block_stop"]
    frames = encoder.finish()
    assert [f.event for f in frames] == ["message_delta", "message_stop"]
    assert json.loads(frames[0].data)["delta"] == {"stop_reason": "stop_sequence",
                                                   "stop_sequence": "END"}


def test_stream_encoder_error_is_terminal_and_sdk_raises():
    events = [ir.MessageStart("msg_e"), ir.TextDelta(0, "Once"),
              ir.StreamError(ProxyError(ErrorKind.UPSTREAM_UNAVAILABLE, "Overloaded")),
              ir.TextDelta(0, "more"), ir.MessageStop()]
    body = encode_stream(events)
    frames = parse_sse(body.decode())
    assert frames[-1].event == "error"
    assert json.loads(frames[-1].data) == {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}
    assert [f.event for f in frames].count("error") == 1 and "message_stop" not in \
        [f.event for f in frames]
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_final(body)
    assert "Overloaded" in str(info.value)


def test_stream_encoder_empty_stream_is_still_valid():
    final = sdk_final(encode_stream([]))
    assert final.content == [] and final.stop_reason == "end_turn" and final.id == "msg_ctx_1"


def test_stream_encoder_redacted_thinking_block():
    events = [ir.BlockStart(0, "redacted_thinking", data="opaque"), ir.BlockStop(0),
              ir.BlockStart(1, "text"), ir.TextDelta(1, "ok"), ir.BlockStop(1),
              ir.MessageStop()]
    final = sdk_final(encode_stream(events))
    assert final.content[0].type == "redacted_thinking" and final.content[0].data == "opaque"
    assert final.content[1].text == "ok"


# ---------------------------------------------------------------------------------------------
# Property: IR requests survive encode → decode up to what Anthropic can express


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
_ident = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_-]{0,10}", fullmatch=True)
_args = st.dictionaries(_ident, st.one_of(st.integers(), _text, st.booleans()), max_size=3)


@st.composite
def _requests(draw):
    tool_names = draw(st.lists(_ident, min_size=0, max_size=3, unique=True))
    messages = []
    for i in range(draw(st.integers(1, 4))):
        parts = [ir.TextPart(draw(_text))]
        if draw(st.booleans()):
            parts.append(ir.ImagePart(data=draw(st.binary(min_size=1, max_size=16)),
                                      mime_type="image/png"))
        if draw(st.booleans()):
            parts.append(ir.ImagePart(url="https://example.com/" + draw(_ident) + ".png"))
        messages.append(ir.Message("user", tuple(parts)))
        if tool_names and draw(st.booleans()):
            name = draw(st.sampled_from(tool_names))
            call_id = f"toolu_{i}"
            messages.append(ir.Message("assistant", (ir.ToolCallPart(
                call_id, name, json.dumps(draw(_args), separators=(",", ":"), ensure_ascii=False)),)))
            messages.append(ir.Message("user", (ir.ToolResultPart(
                call_id, (ir.TextPart(draw(_text)),), is_error=draw(st.booleans()), name=name),)))
    choice = draw(st.sampled_from([None, ir.ToolChoice("auto"), ir.ToolChoice("required"),
                                   ir.ToolChoice("none")]
                                  + [ir.ToolChoice("tool", n) for n in tool_names]))
    return ir.Request(
        model="m", messages=tuple(messages),
        system=tuple(ir.TextPart(t) for t in draw(st.lists(_text, max_size=2))),
        tools=tuple(ir.Tool(n, draw(st.none() | _text), {"type": "object", "properties": {}})
                    for n in tool_names),
        tool_choice=choice if tool_names else None,
        parallel_tool_calls=draw(st.sampled_from([None, False])) if tool_names else None,
        max_output_tokens=draw(st.none() | st.integers(1, 100000)),
        temperature=draw(st.none() | st.floats(0, 1)), top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 500)),
        stop=tuple(draw(st.lists(_text, max_size=3))),
        stream=draw(st.booleans()), user=draw(st.none() | _ident))


@settings(max_examples=60, deadline=None)
@given(_requests())
def test_ir_requests_survive_encode_decode(req):
    body = claude.encode_request(req, model="m")
    json.dumps(body)  # the body is plain JSON
    back = claude.decode_request(body)
    assert back.messages == req.messages
    assert back.system == req.system
    assert back.tools == req.tools
    assert back.stop == req.stop and back.stream == req.stream and back.user == req.user
    top_p = None if req.temperature is not None else req.top_p  # not both (Claude 4.5+)
    assert (back.temperature, back.top_p, back.top_k) == (req.temperature, top_p, req.top_k)
    assert back.max_output_tokens == (req.max_output_tokens or claude.DEFAULT_MAX_TOKENS)
    if req.tool_choice is not None or req.parallel_tool_calls is False:
        assert back.tool_choice == (req.tool_choice or ir.ToolChoice("auto"))
        none = back.tool_choice.mode == "none"  # {"type":"none"} has no parallel switch
        assert back.parallel_tool_calls == (None if none else req.parallel_tool_calls)


# -- passthrough stream watcher -------------------------------------------------------------------

_WATCHED = (ir.MessageStart, ir.UsageUpdate, ir.MessageStop, ir.StreamError)


def _comparable(events: list) -> list:
    """Errors compare by identity; compare what a client would see of them."""
    return [("error", e.error.kind, e.error.message, e.error.status)
            if isinstance(e, ir.StreamError) else e for e in events]


def watch_stream(text: str, cut: int | None = None) -> list[ir.StreamEvent]:
    watcher = claude.StreamWatcher()
    out: list[ir.StreamEvent] = []
    for event in parse_sse(text)[:cut]:
        out += watcher.feed(event)
        assert watcher.usage_only is False
    return out + watcher.finish()


@pytest.mark.parametrize("name", ["stream_text.txt", "stream_thinking.txt", "stream_tool_use.txt",
                                  "stream_server_tool.txt", "stream_error.txt"])
@pytest.mark.parametrize("cut", [None, -1, 3])
def test_watcher_reads_opening_usage_stop_and_errors_as_the_decoder(name, cut):
    """``cut`` drops the stream's tail (a truncated stream must still be noticed)."""
    text = golden(name)
    decoder = claude.StreamDecoder()
    decoded: list[ir.StreamEvent] = []
    for event in parse_sse(text)[:cut]:
        decoded += decoder.feed(event)
    decoded += decoder.finish()
    watched = watch_stream(text, cut)
    assert _comparable(watched) == _comparable([e for e in decoded if isinstance(e, _WATCHED)])
    assert watched  # every stream says at least how it began or ended


def test_watcher_leaves_block_events_to_the_client_but_not_bad_json():
    """A block event is not interpreted (a shape the decoder would call malformed goes to the
    client as it came); an event that is not JSON still ends the stream with an error."""
    start = sse.Event(event="message_start", data=json.dumps(
        {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {}}}))
    odd = sse.Event(event="content_block_start", data=json.dumps(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}}))
    assert isinstance(claude.StreamDecoder().feed(odd)[-1], ir.StreamError)
    watcher = claude.StreamWatcher()
    assert watcher.feed(start) == [ir.MessageStart(id="msg_1", model="m")]
    assert watcher.feed(odd) == []
    bad = watcher.feed(sse.Event(event="content_block_delta", data="{not json"))
    assert len(bad) == 1 and isinstance(bad[0], ir.StreamError)


# -- passthrough whole answers -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["response_text.json", "response_thinking.json",
                                  "response_tool_use.json"])
def test_watch_response_reads_the_usage_decode_response_reads(name):
    body = golden(name)
    assert claude.watch_response(body) == claude.decode_response(body).usage
    assert claude.watch_response(body).output_tokens  # the goldens carry usage


def test_watch_response_leaves_blocks_to_the_client():
    """A block the decoder cannot read goes to the client as it came (as in a watched stream)."""
    body = {"type": "message", "content": [{"type": "tool_use", "id": 7}],
            "usage": {"input_tokens": 3, "output_tokens": 4}}
    with pytest.raises(ProxyError):
        claude.decode_response(body)
    assert claude.watch_response(body) == ir.Usage(input_tokens=3, output_tokens=4,
                                                   total_tokens=7)
