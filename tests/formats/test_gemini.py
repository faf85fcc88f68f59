"""Tests of cliproxyd/formats/gemini.py (and its private _gemini_common / _gemini_stream parts):
golden vectors, mapping tables, tool ids and results, stream playbooks, the official google-genai
SDK parsing our output, error rendering, countTokens and an encode → decode property."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path

import httpx2 as httpx  # google-genai uses the httpx2 fork when installed
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats import gemini, ir, sse

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "gemini"
RGB = "The light color as a 6-digit hex string, e.g. ff0000 for red."
CTX = ir.EncodeContext(model="gemini-client-name", created=1700000000, response_id="resp-ctx")


def golden(name: str) -> dict:
    body = json.loads((GOLDEN / name).read_text())
    body.pop("_source", None)
    return body


def golden_events(name: str) -> list[sse.Event]:
    parser = sse.Parser()
    return parser.feed((GOLDEN / name).read_bytes()) + parser.finish()


def decode_stream(name: str, **kwargs) -> list:
    dec = gemini.StreamDecoder(**kwargs)
    out = [e for ev in golden_events(name) for e in dec.feed(ev)]
    return out + dec.finish()


# ---------------------------------------------------------------------------------------------
# Golden requests


def test_function_calling_request_snake_case_decodes():
    req = gemini.decode_request(golden("request_function_calling.json"), model="gemini-2.5-flash")
    assert req.model == "gemini-2.5-flash"
    assert req.system[0].text.startswith("You are a helpful lighting system bot.")
    assert [t.name for t in req.tools] == ["enable_lights", "set_light_color", "stop_lights"]
    assert req.tools[0].parameters is None
    assert req.tools[1].parameters == {
        "type": "object",
        "properties": {"rgb_hex": {"type": "string", "description": RGB}},
        "required": ["rgb_hex"]}
    assert req.tool_choice == ir.ToolChoice("auto")
    assert req.messages == (ir.Message("user", (ir.TextPart("Turn on the lights please."),)),)


def test_function_calling_request_encodes_camel_case_without_model():
    req = gemini.decode_request(golden("request_function_calling.json"), model="m")
    body = gemini.encode_request(req, model="gemini-2.5-flash")
    assert "model" not in body
    assert body["systemInstruction"] == {"parts": [{"text": req.system[0].text}]}
    decls = body["tools"][0]["functionDeclarations"]
    assert decls[0] == {"name": "enable_lights", "description": "Turn on the lighting system."}
    assert decls[1]["parameters"] == {
        "type": "OBJECT",
        "properties": {"rgb_hex": {"type": "STRING", "description": RGB}},
        "required": ["rgb_hex"]}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Turn on the lights please."}]}]


def test_multiturn_request_maps_calls_results_and_extras():
    req = gemini.decode_request(golden("request_multiturn_tools.json"), model="gemini-3-pro")
    call = req.messages[1].parts[0]
    result = req.messages[2].parts[0]
    assert isinstance(call, ir.ToolCallPart) and isinstance(result, ir.ToolResultPart)
    assert call.id == "call_get_current_temperature_0" == result.tool_call_id
    assert json.loads(call.arguments) == {"location": "London"}
    assert call.extras["thoughtSignature"] == "CiQB0e2Kb7rVq1rXc2lnbmF0dXJl"
    assert result.name == "get_current_temperature"
    assert json.loads(result.content[0].text) == {"temperature": 25, "unit": "Celsius"}
    assert req.tool_choice == ir.ToolChoice("tool", "get_current_temperature")
    assert req.temperature == 0.2
    assert req.reasoning == ir.Reasoning(effort="low", include_thoughts=True)
    assert req.extras["tools"] == [{"googleSearch": {}}]
    assert req.extras["safetySettings"][0]["threshold"] == "BLOCK_ONLY_HIGH"


def test_structured_multimodal_request_maps_every_generation_field():
    req = gemini.decode_request(golden("request_structured_multimodal.json"), model="m")
    assert req.messages[0].role == "user"  # a missing role is user
    image = req.messages[0].parts[0]
    assert isinstance(image, ir.ImagePart) and image.mime_type == "image/jpeg"
    assert image.data == base64.b64decode("/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAEB")
    assert (req.max_output_tokens, req.temperature, req.top_p, req.top_k) == (800, 1.0, 0.8, 10)
    assert (req.seed, req.presence_penalty, req.frequency_penalty) == (42, 0.5, 0.25)
    assert req.stop == ("Title",)
    assert req.reasoning == ir.Reasoning(budget=1024)
    fmt = req.response_format
    assert fmt.type == "json_schema"
    assert fmt.schema["type"] == "array"  # Gemini Schema turned into JSON Schema for others
    assert fmt.schema["items"]["properties"]["ingredients"] == {"type": "array",
                                                                "items": {"type": "string"}}


@pytest.mark.parametrize("name", ["request_function_calling.json", "request_multiturn_tools.json",
                                  "request_structured_multimodal.json"])
def test_golden_request_round_trip(name):
    original = golden(name)
    req = gemini.decode_request(original, model="m")
    body = gemini.encode_request(req, model="m")
    assert gemini.decode_request(body, model="m") == req
    assert json.loads(json.dumps(body)) == body  # plain JSON, no bytes or mappingproxies
    if "generationConfig" in original:  # camelCase input comes back unchanged
        for key, value in original["generationConfig"].items():
            assert body["generationConfig"][key] == value
    for key in ("safetySettings", "toolConfig"):
        if key in original:
            assert body[key] == original[key]
    if name == "request_multiturn_tools.json":
        assert body["contents"] == original["contents"]
        assert body["tools"][1] == {"googleSearch": {}}


# ---------------------------------------------------------------------------------------------
# Request details


def _req(*messages, **kw) -> ir.Request:
    return ir.Request(model="m", messages=tuple(messages), **kw)


def test_parallel_calls_get_ids_by_name_and_order():
    body = {"contents": [
        {"role": "user", "parts": [{"text": "weather in A and B, time in A"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "A"}}},
            {"functionCall": {"name": "weather", "args": {"city": "B"}}},
            {"functionCall": {"name": "time", "args": {"city": "A"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "time", "response": {"result": "noon"}}},
            {"functionResponse": {"name": "weather", "response": {"result": "sun"}}},
            {"functionResponse": {"name": "weather", "response": {"result": "rain"}}}]},
    ]}
    req = gemini.decode_request(body)
    calls = [p.id for p in req.messages[1].parts]
    assert calls == ["call_weather_0", "call_weather_1", "call_time_2"]
    results = [(p.tool_call_id, p.content[0].text) for p in req.messages[2].parts]
    assert results == [("call_time_2", "noon"), ("call_weather_0", "sun"),
                       ("call_weather_1", "rain")]


def test_wire_ids_are_kept_and_resent():
    body = {"contents": [
        {"role": "model", "parts": [{"functionCall": {"id": "abc", "name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "abc", "name": "f",
                                                         "response": {"ok": True}}}]}]}
    req = gemini.decode_request(body)
    assert req.messages[0].parts[0].id == "abc" == req.messages[1].parts[0].tool_call_id
    out = gemini.encode_request(req, model="m")
    assert out["contents"][1]["parts"][0]["functionCall"]["id"] == "abc"
    assert out["contents"][2]["parts"][0]["functionResponse"]["id"] == "abc"


def test_tool_results_are_objects_never_double_encoded():
    call = ir.ToolCallPart(id="toolu_1", name="lookup", arguments='{"q":"x"}')
    results = [
        ir.ToolResultPart("toolu_1", (ir.TextPart("plain text"),)),
        ir.ToolResultPart("toolu_1", (ir.TextPart('{"temp": 21}'),), name="lookup"),
        ir.ToolResultPart("toolu_1", (ir.TextPart('"quoted"'),), name="lookup"),
        ir.ToolResultPart("toolu_1", (ir.TextPart("boom"),), is_error=True, name="lookup"),
    ]
    req = _req(ir.Message("user", (ir.TextPart("hi"),)), ir.Message("assistant", (call,)),
               ir.Message("user", tuple(results)))
    parts = gemini.encode_request(req, model="m")["contents"][2]["parts"]
    responses = [p["functionResponse"] for p in parts]
    assert [r["name"] for r in responses] == ["lookup"] * 4  # name looked up from the call id
    assert [r["response"] for r in responses] == [
        {"result": "plain text"}, {"temp": 21}, {"result": '"quoted"'}, {"error": "boom"}]
    assert all("id" not in r for r in responses)  # foreign ids are not sent to Gemini


def test_tool_result_images_follow_as_inline_data():
    png = b"\x89PNG\r\n"
    res = ir.ToolResultPart("c1", (ir.TextPart("see"), ir.ImagePart(data=png,
                                                                    mime_type="image/png")),
                            name="shot")
    parts = gemini.encode_request(_req(ir.Message("user", (res,))), model="m")["contents"][0][
        "parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png",
                                       "data": base64.b64encode(png).decode()}}


def test_turns_merge_and_a_leading_model_turn_gets_an_empty_user_turn():
    req = _req(ir.Message("assistant", (ir.TextPart("hello"),)),
               ir.Message("user", (ir.TextPart("a"),)), ir.Message("user", (ir.TextPart("b"),)))
    contents = gemini.encode_request(req, model="m")["contents"]
    assert contents == [{"role": "user", "parts": [{"text": ""}]},
                        {"role": "model", "parts": [{"text": "hello"}]},
                        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]


def test_foreign_thinking_is_dropped_and_gemini_thinking_replayed():
    foreign = ir.ThinkingPart("claude thoughts", signature="EqQBCkYI")
    native = ir.ThinkingPart("gemini thoughts", signature="c2ln", extras={"thought": True})
    req = _req(ir.Message("user", (ir.TextPart("q"),)),
               ir.Message("assistant", (foreign, native, ir.TextPart("answer"))))
    parts = gemini.encode_request(req, model="m")["contents"][1]["parts"]
    assert parts == [{"text": "gemini thoughts", "thought": True, "thoughtSignature": "c2ln"},
                     {"text": "answer"}]


def test_unsigned_function_call_history_gets_the_documented_bypass_signature():
    call = ir.ToolCallPart(id="call_1", name="f", arguments="{}")
    req = _req(ir.Message("user", (ir.TextPart("q"),)), ir.Message("assistant", (call, call)))
    parts = gemini.encode_request(req, model="m")["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in parts[1]


def test_images_by_url_and_data_url():
    req = _req(ir.Message("user", (
        ir.ImagePart(url="data:image/webp;base64,UklGRg=="),
        ir.ImagePart(url="https://example.com/cat.jpg"),
        ir.FilePart(url="https://example.com/doc.pdf"),
        ir.FilePart(file_id="file-openai-only"))))
    parts = gemini.encode_request(req, model="m")["contents"][0]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/doc.pdf"}}]


def test_tool_names_are_sanitised_and_restored():
    tool = ir.Tool(name="mcp/github.search-issues!", parameters={"type": "object", "properties": {
        "q": {"type": "string"}}})
    req = _req(ir.Message("user", (ir.TextPart("q"),)), tools=(tool,),
               tool_choice=ir.ToolChoice("tool", tool.name))
    body = gemini.encode_request(req, model="m")
    wire_name = body["tools"][0]["functionDeclarations"][0]["name"]
    assert wire_name == "mcp_github.search-issues_"
    assert body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == [wire_name]
    names = gemini.tool_name_map(req)
    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": wire_name, "args": {"q": "bug"}}}]}, "finishReason": "STOP"}]}
    call = gemini.decode_response(answer, tool_names=names).parts[0]
    assert call.name == tool.name
    dec = gemini.StreamDecoder(tool_names=names)
    events = dec.feed(sse.Event(json.dumps(answer)))
    assert [e.name for e in events if isinstance(e, ir.ToolCallStart)] == [tool.name]


@pytest.mark.parametrize("name,expected", [
    ("get_weather", "get_weather"), ("9lives", "_9lives"), ("", "_"), ("a b/c", "a_b_c"),
    ("x" * 80, "x" * 64), ("1" + "y" * 80, "_1" + "y" * 62), ("ns:tool.v1-2", "ns:tool.v1-2")])
def test_sanitize_function_name(name, expected):
    assert gemini.sanitize_function_name(name) == expected


def test_parameterless_tools_omit_parameters():
    tools = (ir.Tool("a", parameters={"type": "object", "properties": {}}), ir.Tool("b"),
             ir.Tool("c", parameters={"type": "object", "additionalProperties": False}),
             ir.Tool("d", parameters={}),
             ir.Tool("e", parameters={"properties": {"x": {"type": "string"}}}),
             ir.Tool("f", parameters={"type": "string"}))
    decls = gemini.encode_request(_req(ir.Message("user", (ir.TextPart("q"),)), tools=tools),
                                  model="m")["tools"][0]["functionDeclarations"]
    assert decls[:4] == [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]
    assert decls[4]["parameters"] == {"type": "OBJECT", "properties": {"x": {"type": "STRING"}}}
    assert decls[5]["parameters"] == {"type": "OBJECT", "properties": {
        "value": {"type": "STRING"}}, "required": ["value"]}


@pytest.mark.parametrize("choice,config", [
    (ir.ToolChoice("auto"), {"mode": "AUTO"}), (ir.ToolChoice("none"), {"mode": "NONE"}),
    (ir.ToolChoice("required"), {"mode": "ANY"}),
    (ir.ToolChoice("tool", "f"), {"mode": "ANY", "allowedFunctionNames": ["f"]})])
def test_tool_choice_table(choice, config):
    req = _req(ir.Message("user", (ir.TextPart("q"),)), tools=(ir.Tool("f"),), tool_choice=choice)
    body = gemini.encode_request(req, model="m")
    assert body["toolConfig"] == {"functionCallingConfig": config}
    assert gemini.decode_request(body).tool_choice == choice


def test_any_with_several_names_is_kept_for_gemini():
    config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "b"]}}
    req = gemini.decode_request({"contents": [{"parts": [{"text": "q"}]}], "toolConfig": config})
    assert req.tool_choice == ir.ToolChoice("required")
    assert gemini.encode_request(req, model="m")["toolConfig"] == config


@pytest.mark.parametrize("reasoning,config", [
    (ir.Reasoning(budget=8192), {"thinkingBudget": 8192}),
    (ir.Reasoning(effort="high"), {"thinkingLevel": "high"}),
    (ir.Reasoning(effort="auto"), {"thinkingBudget": -1}),
    (ir.Reasoning(effort="none"), {"thinkingBudget": 0}),
    (ir.Reasoning(effort="low", include_thoughts=True),
     {"thinkingLevel": "low", "includeThoughts": True}),
    (ir.Reasoning(include_thoughts=False), {"includeThoughts": False}),
    (ir.Reasoning(effort="xhigh"), {"thinkingLevel": "high"}),
])
def test_reasoning_table(reasoning, config):
    req = _req(ir.Message("user", (ir.TextPart("q"),)), reasoning=reasoning)
    assert gemini.encode_request(req, model="m")["generationConfig"]["thinkingConfig"] == config


@pytest.mark.parametrize("model, reasoning, config", [
    ("gemini-2.5-flash", ir.Reasoning(effort="high"), {"thinkingBudget": 24576}),
    ("models/gemini-2.5-pro", ir.Reasoning(effort="low", include_thoughts=True),
     {"thinkingBudget": 1024, "includeThoughts": True}),
    ("gemini-2.5-flash-lite", ir.Reasoning(effort="max"), {"thinkingBudget": 24576}),
    ("gemini-2.0-flash-thinking-exp", ir.Reasoning(effort="medium"), {"thinkingBudget": 8192}),
    ("gemini-3-pro-preview", ir.Reasoning(effort="high"), {"thinkingLevel": "high"}),
    ("gemini-2.5-pro", ir.Reasoning(budget=2000), {"thinkingBudget": 2000}),
])
def test_models_before_gemini_3_get_a_budget_not_a_level(model, reasoning, config):
    # Gemini 2.x answers thinkingLevel with 400 "Thinking level is not supported for this model".
    req = _req(ir.Message("user", (ir.TextPart("q"),)), reasoning=reasoning)
    assert gemini.encode_request(req, model=model)["generationConfig"]["thinkingConfig"] == config


def test_tool_result_text_blocks_stay_separate_lines():
    call = ir.ToolCallPart(id="toolu_1", name="Bash", arguments="{}")
    result = ir.ToolResultPart("toolu_1", (ir.TextPart("1 failed"), ir.TextPart("FAILED t::a")),
                               is_error=True)
    req = _req(ir.Message("user", (ir.TextPart("hi"),)), ir.Message("assistant", (call,)),
               ir.Message("user", (result,)))
    part = gemini.encode_request(req, model="m")["contents"][2]["parts"][0]
    assert part["functionResponse"]["response"] == {"error": "1 failed\nFAILED t::a"}


def test_only_gemini_tools_of_other_formats_extras_reach_gemini():
    from cliproxyd.formats import claude, openai_responses
    fn = {"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}
    from_claude = claude.decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                         "tools": [{"type": "web_search_20250305",
                                                    "name": "web_search"}, fn]})
    from_responses = openai_responses.decode_request({"model": "m", "input": "hi", "tools": [
        {"type": "web_search"}, {"type": "function", "name": "f", "parameters": fn["input_schema"]}]})
    for req in (from_claude, from_responses):
        tools = gemini.encode_request(req, model="gemini-2.5-flash")["tools"]
        assert [list(t) for t in tools] == [["functionDeclarations"]]
    own = gemini.decode_request({"contents": [{"parts": [{"text": "q"}]}],
                                 "tools": [{"googleSearch": {}}]}, model="m")
    assert gemini.encode_request(own, model="m")["tools"] == [{"googleSearch": {}}]


def test_zero_penalties_are_not_sent():
    from cliproxyd.formats import openai_chat
    req = openai_chat.decode_request({"model": "m", "presence_penalty": 0, "frequency_penalty": 0.0,
                                      "messages": [{"role": "user", "content": "hi"}]})
    config = gemini.encode_request(req, model="gemini-2.5-flash").get("generationConfig", {})
    assert "presencePenalty" not in config and "frequencyPenalty" not in config
    asked = dataclasses.replace(req, presence_penalty=0.5)
    assert gemini.encode_request(asked, model="m")["generationConfig"]["presencePenalty"] == 0.5


def test_malformed_function_response_in_an_answer_is_an_upstream_error():
    with pytest.raises(ProxyError) as caught:
        gemini.decode_response({"candidates": [{"content": {"parts": [{"functionResponse": ""}]}}]})
    assert caught.value.kind is ErrorKind.UPSTREAM_ERROR


@pytest.mark.parametrize("config,reasoning", [
    ({"thinkingBudget": 0}, ir.Reasoning(effort="none", budget=0)),
    ({"thinking_budget": -1}, ir.Reasoning(effort="auto", budget=-1)),
    ({"thinkingLevel": "HIGH", "thinkingBudget": 100}, ir.Reasoning(effort="high", budget=100)),
    ({"includeThoughts": True}, ir.Reasoning(include_thoughts=True)),
])
def test_reasoning_decode_table(config, reasoning):
    body = {"contents": [{"parts": [{"text": "q"}]}],
            "generationConfig": {"thinkingConfig": config}}
    assert gemini.decode_request(body).reasoning == reasoning


def test_response_formats():
    base = _req(ir.Message("user", (ir.TextPart("q"),)))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    js = gemini.encode_request(
        ir.Request(**{**base.__dict__, "response_format": ir.ResponseFormat(
            "json_schema", schema=schema)}), model="m")["generationConfig"]
    assert js == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    jo = gemini.encode_request(
        ir.Request(**{**base.__dict__, "response_format": ir.ResponseFormat("json_object")}),
        model="m")["generationConfig"]
    assert jo == {"responseMimeType": "application/json"}
    back = gemini.decode_request({"contents": [{"parts": [{"text": "q"}]}],
                                  "generationConfig": js})
    assert back.response_format == ir.ResponseFormat("json_schema", schema=schema)


@pytest.mark.parametrize("body,param", [
    ({}, "contents"),
    ({"contents": []}, "contents"),
    ({"contents": "hi"}, "contents"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
    ({"contents": [{"role": "user"}]}, "contents[0].parts"),
    ({"contents": [{"parts": ["text"]}]}, "contents[0].parts[0]"),
    ({"contents": [{"parts": [{"text": 5}]}]}, "contents[0].parts[0]"),
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png"}}]}]},
     "contents[0].parts[0].inlineData"),
    ({"contents": [{"parts": [{"functionCall": {"args": {}}}]}]},
     "contents[0].parts[0].functionCall"),
    ({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"candidateCount": 2}},
     "generationConfig.candidateCount"),
    ({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"temperature": "hot"}},
     "generationConfig.temperature"),
    ({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"maxOutputTokens": 1.5}},
     "generationConfig.maxOutputTokens"),
    ({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": []}, "generationConfig"),
    ({"contents": [{"parts": [{"text": "q"}]}], "tools": {"a": 1}}, "tools"),
    ({"contents": [{"parts": [{"text": "q"}]}], "tools": [{"functionDeclarations": [{}]}]},
     "tools[0].functionDeclarations[0]"),
    ({"contents": [{"parts": [{"text": "q"}]}],
      "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}, "toolConfig"),
    ({"contents": [{"parts": [{"text": "q"}]}], "systemInstruction": {"parts": [{"x": 1}]}},
     "systemInstruction"),
    ([], "body"),
])
def test_invalid_requests_are_400(body, param):
    with pytest.raises(ProxyError) as info:
        gemini.decode_request(body, model="m")
    assert info.value.kind is ErrorKind.INVALID_REQUEST and info.value.status == 400
    assert info.value.param == param


def test_snake_case_gemini_only_fields_come_back_camel_case():
    body = {"contents": [{"parts": [{"text": "q"}]}],
            "tools": [{"google_search": {}}, {"code_execution": {}}],
            "tool_config": {"function_calling_config": {"mode": "ANY",
                                                        "allowed_function_names": ["a", "b"]}},
            "generation_config": {"response_modalities": ["TEXT", "IMAGE"],
                                  "image_config": {"aspect_ratio": "16:9"}},
            "labels": {"cost_center": "x_y"}}
    out = gemini.encode_request(gemini.decode_request(body), model="m")
    assert out["tools"] == [{"googleSearch": {}}, {"codeExecution": {}}]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY",
                                                           "allowedFunctionNames": ["a", "b"]}}
    assert out["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"],
                                       "imageConfig": {"aspectRatio": "16:9"}}
    assert out["labels"] == {"cost_center": "x_y"}  # user-named keys are left alone


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from([
        "contents", "role", "parts", "text", "thought", "inlineData", "inline_data", "mimeType",
        "data", "fileData", "fileUri", "functionCall", "functionResponse", "name", "args", "id",
        "response", "generationConfig", "thinkingConfig", "thinkingBudget", "thinkingLevel",
        "stopSequences", "maxOutputTokens", "candidateCount", "responseSchema", "tools",
        "functionDeclarations", "parameters", "toolConfig", "functionCallingConfig", "mode",
        "allowedFunctionNames", "systemInstruction", "model", "user"]), c, max_size=5),
    max_leaves=25)


_part = st.dictionaries(st.sampled_from(
    ["text", "thought", "thoughtSignature", "inlineData", "fileData", "functionCall",
     "functionResponse", "executableCode"]), _json | st.text(max_size=3), max_size=3)
_bodies = st.fixed_dictionaries(
    {"contents": st.lists(st.fixed_dictionaries(
        {"parts": st.lists(_part, max_size=3) | _json},
        optional={"role": st.sampled_from(["user", "model", "function"]) | _json}),
        min_size=1, max_size=3)},
    optional={"generationConfig": st.dictionaries(st.sampled_from(
        ["temperature", "maxOutputTokens", "stopSequences", "candidateCount", "thinkingConfig",
         "responseMimeType", "responseSchema", "responseJsonSchema", "seed", "topK"]), _json),
        "tools": st.lists(st.dictionaries(st.sampled_from(
            ["functionDeclarations", "googleSearch"]), st.lists(_json, max_size=2) | _json)),
        "toolConfig": _json, "systemInstruction": _json, "model": _json})


@settings(max_examples=300, deadline=None)
@given(_json | _bodies)
def test_any_json_body_decodes_or_is_a_400(body):
    try:
        gemini.decode_request(body, model="m")
    except ProxyError as exc:
        assert exc.kind is ErrorKind.INVALID_REQUEST


_answers = st.fixed_dictionaries({}, optional={
    "candidates": st.lists(st.fixed_dictionaries({}, optional={
        "content": st.fixed_dictionaries({"parts": st.lists(_part, max_size=3) | _json}) | _json,
        "finishReason": st.sampled_from(["STOP", "MAX_TOKENS"]) | _json}), max_size=2) | _json,
    "usageMetadata": st.dictionaries(st.sampled_from(
        ["promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount"]), _json) | _json,
    "promptFeedback": _json, "responseId": _json, "modelVersion": _json, "error": _json})


@settings(max_examples=300, deadline=None)
@given(_json | _answers)
def test_any_json_answer_decodes_or_is_upstream_error(body):
    for decode in (gemini.decode_response, lambda b: gemini.StreamDecoder().feed(
            sse.Event(json.dumps(b)))):
        try:
            decode(body)
        except ProxyError as exc:
            assert exc.kind is ErrorKind.UPSTREAM_ERROR


def test_unmodelled_parts_and_fields_do_not_break_decoding():
    body = {"contents": [{"role": "model", "parts": [
        {"executableCode": {"language": "PYTHON", "code": "print(1)"}}, {"text": "ok"}]}],
        "cachedContent": "cachedContents/abc", "labels": {"team": "x"}}
    req = gemini.decode_request(body, model="models/gemini-2.5-pro")
    assert req.model == "gemini-2.5-pro"
    assert req.messages[0].parts == (ir.TextPart("ok"),)
    out = gemini.encode_request(req, model="m")
    assert out["cachedContent"] == "cachedContents/abc" and out["labels"] == {"team": "x"}


# ---------------------------------------------------------------------------------------------
# Responses


def test_text_response_golden():
    resp = gemini.decode_response(golden("response_text.json"))
    assert resp.id == "7Nc8aKm1MeK3xN8PuYiZ2AQ" and resp.model == "gemini-2.5-flash"
    assert resp.parts[0].text.startswith("AI, or artificial intelligence")
    assert resp.stop_reason is ir.StopReason.END_TURN and resp.native_stop_reason == "STOP"
    assert resp.usage == ir.Usage(input_tokens=8, output_tokens=21 + 1033, reasoning_tokens=1033,
                                  total_tokens=1062)


def _answer_id(name: str, response_id: str, n: int = 0) -> str:
    return f"call_{name}_{hashlib.sha256(response_id.encode()).hexdigest()[:8]}_{n}"


def _answer_with_call(response_id: str) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "Bash", "args": {"command": "ls"}}},
        {"functionCall": {"name": "Bash", "args": {"command": "pwd"}}}]},
        "finishReason": "STOP"}], "responseId": response_id}


def test_answer_call_ids_differ_between_turns_and_match_streamed_ones():
    # Counting from 0 in every answer gave every turn's first Bash call the id call_Bash_0;
    # Anthropic rejects a history whose tool_use ids repeat ("tool_use ids must be unique").
    def ids(body):
        return [p.id for p in gemini.decode_response(body).parts]

    turn1, turn2 = ids(_answer_with_call("resp-turn-1")), ids(_answer_with_call("resp-turn-2"))
    assert len(set(turn1 + turn2)) == 4
    assert turn1 == ids(_answer_with_call("resp-turn-1"))  # deterministic
    streamed = gemini.StreamDecoder().feed(sse.Event(json.dumps(_answer_with_call("resp-turn-1"))))
    assert [e.id for e in streamed if isinstance(e, ir.ToolCallStart)] == turn1
    assert ids({**_answer_with_call("x"), "responseId": None}) == ["call_Bash_0", "call_Bash_1"]


def test_function_call_response_golden():
    resp = gemini.decode_response(golden("response_function_call.json"))
    thought, call = resp.parts
    assert isinstance(thought, ir.ThinkingPart) and thought.text.startswith("**Checking")
    assert isinstance(call, ir.ToolCallPart)
    assert (call.id, call.name) == (_answer_id("get_current_temperature", "Xo8aaeuWNqGgz7IP7cHmiQU"),
                                    "get_current_temperature")
    assert call.extras["thoughtSignature"] == "CiQB0e2Kb7rVq1rXc2lnbmF0dXJl"
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert resp.usage.cached_input_tokens == 32 and resp.usage.output_tokens == 80


def test_blocked_prompt_is_content_filter():
    resp = gemini.decode_response(golden("response_blocked.json"))
    assert resp.parts == () and resp.stop_reason is ir.StopReason.CONTENT_FILTER
    assert resp.native_stop_reason == "SAFETY"
    body = gemini.encode_response(resp, CTX)
    assert "candidates" not in body and body["promptFeedback"]["blockReason"] == "SAFETY"
    types.GenerateContentResponse.model_validate(body)


@pytest.mark.parametrize("name", ["response_text.json", "response_function_call.json",
                                  "response_blocked.json"])
def test_golden_response_round_trip(name):
    original = golden(name)
    resp = gemini.decode_response(original)
    body = gemini.encode_response(resp, CTX)
    again = gemini.decode_response(body)
    assert again.parts == tuple(
        p if not isinstance(p, ir.ToolCallPart) else ir.ToolCallPart(
            p.id, p.name, p.arguments, {**p.extras, "id": p.id}) for p in resp.parts)
    assert (again.stop_reason, again.native_stop_reason, again.id) == (
        resp.stop_reason, resp.native_stop_reason, resp.id)
    assert again.usage.merged(ir.Usage()) == resp.usage
    assert body["modelVersion"] == "gemini-client-name"
    if "candidates" in original:
        assert body["candidates"][0]["content"]["parts"][0] == {
            k: v for k, v in original["candidates"][0]["content"]["parts"][0].items()}


def test_encoded_response_parses_with_sdk_and_foreign_parts():
    resp = ir.Response(
        id="msg_01", model="claude", stop_reason=ir.StopReason.TOOL_USE,
        parts=(ir.ThinkingPart("hmm", signature="EqQB"), ir.TextPart("Let me look."),
               ir.ToolCallPart("toolu_9", "search", '{"q":"cats"}'),
               ir.RedactedThinkingPart("opaque")),
        usage=ir.Usage(input_tokens=100, output_tokens=40, cached_input_tokens=60,
                       reasoning_tokens=10))
    body = gemini.encode_response(resp, CTX)
    sdk = types.GenerateContentResponse.model_validate(body)
    assert sdk.text == "Let me look."
    assert sdk.function_calls[0].id == "toolu_9" and sdk.function_calls[0].args == {"q": "cats"}
    assert sdk.candidates[0].finish_reason == types.FinishReason.STOP
    meta = sdk.usage_metadata
    assert (meta.prompt_token_count, meta.candidates_token_count, meta.thoughts_token_count,
            meta.cached_content_token_count, meta.total_token_count) == (100, 30, 10, 60, 140)
    assert body["responseId"] == "msg_01"


@pytest.mark.parametrize("finish,tool,stop", [
    ("STOP", False, ir.StopReason.END_TURN), ("STOP", True, ir.StopReason.TOOL_USE),
    (None, True, ir.StopReason.TOOL_USE),
    ("MAX_TOKENS", True, ir.StopReason.MAX_TOKENS), ("SAFETY", False, ir.StopReason.CONTENT_FILTER),
    ("RECITATION", False, ir.StopReason.CONTENT_FILTER),
    ("BLOCKLIST", False, ir.StopReason.CONTENT_FILTER),
    ("PROHIBITED_CONTENT", False, ir.StopReason.CONTENT_FILTER),
    ("SPII", False, ir.StopReason.CONTENT_FILTER), ("LANGUAGE", False, ir.StopReason.REFUSAL),
    ("MALFORMED_FUNCTION_CALL", False, ir.StopReason.ERROR),
    ("OTHER", False, ir.StopReason.ERROR), ("SOMETHING_NEW", False, ir.StopReason.END_TURN)])
def test_finish_reason_table(finish, tool, stop):
    assert gemini.stop_reason_from_gemini(finish, tool) is stop


@pytest.mark.parametrize("stop,native,finish", [
    (ir.StopReason.END_TURN, None, "STOP"), (ir.StopReason.TOOL_USE, "tool_use", "STOP"),
    (ir.StopReason.STOP_SEQUENCE, "stop_sequence", "STOP"),
    (ir.StopReason.MAX_TOKENS, "length", "MAX_TOKENS"),
    (ir.StopReason.CONTENT_FILTER, "content_filter", "SAFETY"),
    (ir.StopReason.REFUSAL, "refusal", "SAFETY"), (ir.StopReason.ERROR, None, "OTHER"),
    (ir.StopReason.CONTENT_FILTER, "RECITATION", "RECITATION"),
    (ir.StopReason.PAUSE_TURN, "pause_turn", "STOP")])
def test_finish_reason_encode_table(stop, native, finish):
    assert gemini.finish_reason_for(stop, native) == finish


def test_usage_tables():
    meta = {"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
            "cachedContentTokenCount": 40, "toolUsePromptTokenCount": 5, "totalTokenCount": 155}
    usage = gemini.usage_from_gemini(meta)
    assert usage == ir.Usage(input_tokens=105, output_tokens=50, cached_input_tokens=40,
                             reasoning_tokens=30, total_tokens=155)
    assert gemini.usage_to_gemini(usage) == {
        "promptTokenCount": 105, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
        "cachedContentTokenCount": 40, "totalTokenCount": 155}
    assert gemini.usage_from_gemini(None) == ir.Usage()
    assert gemini.usage_to_gemini(ir.Usage(input_tokens=3, output_tokens=4)) == {
        "promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}


def test_malformed_upstream_response_is_upstream_error():
    for body in ([], {"candidates": "x"}, {"candidates": [{"content": {"parts": [1]}}]}):
        with pytest.raises(ProxyError) as info:
            gemini.decode_response(body)
        assert info.value.kind is ErrorKind.UPSTREAM_ERROR


# ---------------------------------------------------------------------------------------------
# Stream decoder playbooks


def test_stream_decoder_text_playbook():
    assert decode_stream("stream_text.sse") == [
        ir.MessageStart(id="a1b2c3d4e5f6g7h8", model="gemini-2.0-flash"),
        ir.BlockStart(0, "text"),
        ir.TextDelta(0, "The"),
        ir.TextDelta(0, " quick brown fox jumps over"),
        ir.TextDelta(0, " the lazy dog.\n"),
        ir.BlockStop(0),
        ir.UsageUpdate(ir.Usage(input_tokens=9, output_tokens=11, total_tokens=20)),
        ir.MessageStop(ir.StopReason.END_TURN, native_stop_reason="STOP"),
    ]


def test_stream_decoder_thinking_and_tool_playbook():
    assert decode_stream("stream_thinking_tool.sse") == [
        ir.MessageStart(id="tH1nkStr3am", model="gemini-2.5-flash"),
        ir.BlockStart(0, "thinking"),
        ir.ThinkingDelta(0, "**Planning the call**\nI need the current temperature."),
        ir.ThinkingDelta(0, "", "CiQB0e2Kb7rVq1rXc2lnbmF0dXJl"),
        ir.BlockStop(0),
        ir.BlockStart(1, "text"),
        ir.TextDelta(1, "Let me check."),
        ir.BlockStop(1),
        ir.ToolCallStart(2, _answer_id("get_current_temperature", "tH1nkStr3am"),
                         "get_current_temperature"),
        ir.ToolArgsDelta(2, '{"location":"London"}'),
        ir.BlockStop(2),
        ir.UsageUpdate(ir.Usage(input_tokens=70, output_tokens=84, reasoning_tokens=62,
                                total_tokens=154)),
        ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="STOP"),
    ]


def test_stream_decoder_in_stream_error():
    events = decode_stream("stream_error.sse")
    assert events[:3] == [ir.MessageStart(id="err0r5tr3am", model="gemini-2.5-flash"),
                          ir.BlockStart(0, "text"), ir.TextDelta(0, "Once upon")]
    (error,) = events[3:]
    assert isinstance(error, ir.StreamError)
    assert error.error.status == 503 and error.error.kind is ErrorKind.UPSTREAM_UNAVAILABLE
    assert "overloaded" in error.error.message


def test_stream_decoder_truncated_stream_is_error():
    dec = gemini.StreamDecoder()
    first = golden_events("stream_text.sse")[0]
    assert dec.feed(first)[-1] == ir.TextDelta(0, "The")
    (error,) = dec.finish()
    assert error.error.status == 502 and error.error.kind is ErrorKind.UPSTREAM_ERROR
    assert error.error.message == "upstream stream ended before completion"
    assert gemini.StreamDecoder().finish()[0].error.status == 502


def test_stream_decoder_blocked_prompt_and_late_usage():
    dec = gemini.StreamDecoder()
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
               "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}
    events = dec.feed(sse.Event(json.dumps(blocked)))
    assert events[-1] == ir.MessageStop(ir.StopReason.CONTENT_FILTER,
                                        native_stop_reason="PROHIBITED_CONTENT")
    late = dec.feed(sse.Event(json.dumps({"usageMetadata": {"promptTokenCount": 6},
                                          "candidates": [{"content": {"parts": [
                                              {"text": "after the end"}]}}]})))
    assert late == [ir.UsageUpdate(ir.Usage(input_tokens=6))]
    assert dec.finish() == []


def test_stream_decoder_malformed_part_ends_the_stream():
    dec = gemini.StreamDecoder()
    chunk = {"candidates": [{"content": {"parts": [{"text": "a"}, {"inlineData": 7},
                                                   {"text": "b"}]}, "finishReason": "STOP"}]}
    events = dec.feed(sse.Event(json.dumps(chunk)))
    assert events[:3] == [ir.MessageStart(), ir.BlockStart(0, "text"), ir.TextDelta(0, "a")]
    assert isinstance(events[3], ir.StreamError) and len(events) == 4
    assert events[3].error.kind is ErrorKind.UPSTREAM_ERROR
    assert dec.finish() == []


def test_stream_decoder_rejects_garbage_as_stream_error():
    dec = gemini.StreamDecoder()
    (error,) = dec.feed(sse.Event("not json"))
    assert isinstance(error, ir.StreamError) and error.error.status == 502
    assert dec.feed(sse.Event('{"candidates": []}')) == [] and dec.finish() == []


# ---------------------------------------------------------------------------------------------
# Stream encoder, checked with the official google-genai SDK


def encode_stream(events, ctx=CTX) -> bytes:
    enc = gemini.StreamEncoder(ctx)
    out = [e for ev in events for e in enc.feed(ev)] + enc.finish()
    return b"".join(sse.serialize(e) for e in out)


def sdk_client(payload: bytes, *, stream: bool, seen: list | None = None) -> genai.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        kind = "text/event-stream" if stream else "application/json"
        return httpx.Response(200, content=payload, headers={"content-type": kind})

    return genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url="http://127.0.0.1:9/", client_args={"transport": httpx.MockTransport(handler)}))


SAMPLE_STREAM = [
    ir.MessageStart(id="msg_abc", model="claude-x"),
    ir.BlockStart(0, "thinking"), ir.ThinkingDelta(0, "Thinking "),
    ir.ThinkingDelta(0, "hard."), ir.ThinkingDelta(0, "", signature="c2lnbmF0dXJl"),
    ir.BlockStop(0),
    ir.BlockStart(1, "text"), ir.TextDelta(1, "Hello"), ir.TextDelta(1, ", world"),
    ir.BlockStop(1),
    ir.ToolCallStart(2, "toolu_1", "get_weather"), ir.ToolArgsDelta(2, '{"city":'),
    ir.ToolArgsDelta(2, '"Paris"}'), ir.BlockStop(2),
    ir.MessageStop(ir.StopReason.TOOL_USE, native_stop_reason="tool_use"),
    ir.UsageUpdate(ir.Usage(input_tokens=12, output_tokens=30, reasoning_tokens=8)),
]


def test_stream_encoder_output_through_sdk_stream_parser():
    seen: list[httpx.Request] = []
    client = sdk_client(encode_stream(SAMPLE_STREAM), stream=True, seen=seen)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi"))
    assert seen[0].url.path.endswith("/models/gemini-2.5-flash:streamGenerateContent")
    assert seen[0].url.params["alt"] == "sse"
    text = "".join(c.text or "" for c in chunks)
    assert text == "Hello, world"
    thoughts = [p for c in chunks for p in c.candidates[0].content.parts if p.thought]
    assert "".join(p.text for p in thoughts) == "Thinking hard."
    assert thoughts[-1].thought_signature == b"signature"
    calls = [fc for c in chunks for fc in (c.function_calls or [])]
    assert [(fc.id, fc.name, fc.args) for fc in calls] == [("toolu_1", "get_weather",
                                                            {"city": "Paris"})]
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.prompt_token_count == 12
    assert last.usage_metadata.candidates_token_count == 22
    assert last.usage_metadata.thoughts_token_count == 8
    assert all(c.response_id == "msg_abc" and c.model_version == "gemini-client-name"
               for c in chunks)
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])


def test_stream_encoder_without_message_start_and_usage_before_stop():
    events = [ir.BlockStart(0, "text"), ir.TextDelta(0, "abc"), ir.BlockStop(0),
              ir.UsageUpdate(ir.Usage(input_tokens=1, output_tokens=2)),
              ir.MessageStop(ir.StopReason.MAX_TOKENS)]
    client = sdk_client(encode_stream(events), stream=True)
    chunks = list(client.models.generate_content_stream(model="m", contents="hi"))
    assert "".join(c.text or "" for c in chunks) == "abc"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert chunks[-1].usage_metadata.total_token_count == 3
    assert chunks[0].response_id == "resp-ctx"


def test_stream_encoder_error_raises_in_sdk_and_ends_stream():
    enc = gemini.StreamEncoder(CTX)
    out = enc.feed(ir.TextDelta(0, "partial"))
    err = ProxyError(ErrorKind.RATE_LIMITED, "quota exhausted")
    out += enc.feed(ir.StreamError(err))
    assert enc.feed(ir.TextDelta(0, "more")) == [] and enc.finish() == []
    assert out[-1].event is None
    assert json.loads(out[-1].data) == {"error": {"code": 429, "message": "quota exhausted",
                                                  "status": "RESOURCE_EXHAUSTED"}}
    payload = b"".join(sse.serialize(e) for e in out)
    client = sdk_client(payload, stream=True)
    stream = client.models.generate_content_stream(model="m", contents="hi")
    assert next(stream).text == "partial"
    with pytest.raises(genai_errors.ClientError) as info:
        next(stream)
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"


def test_stream_round_trip_through_decoder():
    enc_bytes = encode_stream(SAMPLE_STREAM)
    parser = sse.Parser()
    dec = gemini.StreamDecoder()
    events = [e for ev in parser.feed(enc_bytes) + parser.finish() for e in dec.feed(ev)]
    events += dec.finish()
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["MessageStart", "BlockStart", "ThinkingDelta", "ThinkingDelta",
                     "ThinkingDelta", "BlockStop", "BlockStart", "TextDelta", "TextDelta",
                     "BlockStop", "ToolCallStart", "ToolArgsDelta", "BlockStop", "UsageUpdate",
                     "MessageStop"]
    assert events[10] == ir.ToolCallStart(2, "toolu_1", "get_weather")
    assert events[-1].stop_reason is ir.StopReason.TOOL_USE


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_thinking_tool.sse"])
def test_golden_stream_decoded_and_reencoded_matches_original(name):
    original = [json.loads(e.data) for e in golden_events(name)]
    ctx = ir.EncodeContext(model=original[0]["modelVersion"], created=0, response_id="unused")
    again = [json.loads(e.data)
             for e in sse.Parser().feed(encode_stream(decode_stream(name), ctx))]

    def summary(chunks):
        parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
        calls = [{k: v for k, v in p["functionCall"].items() if k != "id"}
                 for p in parts if "functionCall" in p]
        return ("".join(p.get("text", "") for p in parts if not p.get("thought")),
                "".join(p.get("text", "") for p in parts if p.get("thought")),
                [p["thoughtSignature"] for p in parts if "thoughtSignature" in p], calls)
    assert summary(again) == summary(original)
    assert again[-1]["candidates"][0]["finishReason"] == "STOP"
    last_usage = original[-1]["usageMetadata"]
    for key in ("promptTokenCount", "candidatesTokenCount", "totalTokenCount"):
        assert again[-1]["usageMetadata"][key] == last_usage[key]
    assert {c["responseId"] for c in again} == {original[0]["responseId"]}
    assert {c["modelVersion"] for c in again} == {original[0]["modelVersion"]}


def test_non_stream_body_through_sdk_generate_content():
    resp = gemini.decode_response(golden("response_function_call.json"))
    payload = json.dumps(gemini.encode_response(resp, CTX)).encode()
    seen: list[httpx.Request] = []
    client = sdk_client(payload, stream=False, seen=seen)
    result = client.models.generate_content(model="gemini-3-pro-preview",
                                            contents="temperature in London?")
    assert seen[0].url.path.endswith("/models/gemini-3-pro-preview:generateContent")
    (call,) = result.function_calls
    assert (call.name, call.args) == ("get_current_temperature", {"location": "London"})
    parts = result.candidates[0].content.parts
    assert parts[0].thought is True
    assert parts[1].thought_signature == base64.b64decode("CiQB0e2Kb7rVq1rXc2lnbmF0dXJl")
    assert result.usage_metadata.thoughts_token_count == 62


def test_sdk_request_decodes():
    seen: list[httpx.Request] = []
    payload = json.dumps(golden("response_text.json")).encode()
    client = sdk_client(payload, stream=False, seen=seen)  # keep it alive: GC closes it
    client.models.generate_content(
        model="gemini-2.5-flash", contents=["Describe", types.Part.from_bytes(
            data=b"\x89PNG", mime_type="image/png")],
        config=types.GenerateContentConfig(
            system_instruction="terse", temperature=0.3, max_output_tokens=50,
            stop_sequences=["END"], seed=7,
            thinking_config=types.ThinkingConfig(thinking_budget=512, include_thoughts=True),
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
                name="f", description="d", parameters=types.Schema(
                    type="OBJECT", properties={"x": types.Schema(type="INTEGER")}))])]))
    req = gemini.decode_request(json.loads(seen[0].content), model="gemini-2.5-flash")
    assert req.system == (ir.TextPart("terse"),)
    assert req.messages[0].parts[1] == ir.ImagePart(data=b"\x89PNG", mime_type="image/png")
    assert (req.temperature, req.max_output_tokens, req.stop, req.seed) == (0.3, 50, ("END",), 7)
    assert req.reasoning == ir.Reasoning(budget=512, include_thoughts=True)
    assert req.tools[0].parameters == {"type": "object",
                                       "properties": {"x": {"type": "integer"}}}


# ---------------------------------------------------------------------------------------------
# Errors and countTokens


@pytest.mark.parametrize("kind,status,google", [
    (ErrorKind.INVALID_REQUEST, 400, "INVALID_ARGUMENT"),
    (ErrorKind.AUTHENTICATION, 401, "UNAUTHENTICATED"),
    (ErrorKind.PERMISSION, 403, "PERMISSION_DENIED"),
    (ErrorKind.MODEL_NOT_FOUND, 404, "NOT_FOUND"),
    (ErrorKind.PAYLOAD_TOO_LARGE, 413, "INVALID_ARGUMENT"),
    (ErrorKind.RATE_LIMITED, 429, "RESOURCE_EXHAUSTED"),
    (ErrorKind.UPSTREAM_ERROR, 502, "INTERNAL"),
    (ErrorKind.UPSTREAM_TIMEOUT, 504, "DEADLINE_EXCEEDED"),
    (ErrorKind.UPSTREAM_UNAVAILABLE, 503, "UNAVAILABLE"),
    (ErrorKind.INTERNAL, 500, "INTERNAL")])
def test_render_error(kind, status, google):
    body = gemini.render_error(ProxyError(kind, "went wrong"))
    assert body == {"error": {"code": status, "message": "went wrong", "status": google}}
    reference = golden("error_body.json")
    assert set(body["error"]) == set(reference["error"])


def test_count_tokens_round_trip():
    req = gemini.decode_count_tokens_request(
        {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}, model="gemini-2.5-pro")
    assert req.messages[0].parts == (ir.TextPart("hello"),)
    inner = golden("request_function_calling.json")
    full = gemini.decode_count_tokens_request({"generateContentRequest": inner}, model="g")
    assert full.system and full.tools
    body = gemini.encode_count_tokens_request(full, model="gemini-2.5-pro")
    gcr = body["generateContentRequest"]
    assert gcr["model"] == "models/gemini-2.5-pro"
    assert set(gcr) == {"model", "contents", "systemInstruction", "tools"}
    assert gemini.decode_count_tokens_response({"totalTokens": 31}) == 31
    assert gemini.encode_count_tokens_response(31) == {"totalTokens": 31}
    with pytest.raises(ProxyError):
        gemini.decode_count_tokens_response({})
    types.CountTokensResponse.model_validate(gemini.encode_count_tokens_response(5))


# ---------------------------------------------------------------------------------------------
# Property: random IR requests survive encode → decode


# "{" is left out: a text tool result that is a JSON object is sent as that object (by design).
_text = st.text(st.characters(blacklist_characters="{", blacklist_categories=("Cs",)),
                min_size=1, max_size=20)
_name = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_schema = st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(
    _name, st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                            {"type": "array", "items": {"type": "number"}}]),
    min_size=1, max_size=3)})


@st.composite
def ir_requests(draw):
    tools = draw(st.lists(st.builds(ir.Tool, name=_name, description=st.none() | _text,
                                    parameters=st.none() | _schema),
                          max_size=3, unique_by=lambda t: t.name))
    messages = [ir.Message("user", (ir.TextPart(draw(_text)),))]
    for i in range(draw(st.integers(0, 2))):
        name = draw(_name)
        args = json.dumps({"n": draw(st.integers())}, separators=(",", ":"))
        call = ir.ToolCallPart(f"call_{name}_{i}", name, args)
        parts = [ir.TextPart(draw(_text))] if draw(st.booleans()) else []
        messages.append(ir.Message("assistant", (*parts, call)))
        result = ir.ToolResultPart(call.id, (ir.TextPart(draw(_text)),), name=name,
                                   is_error=draw(st.booleans()))
        image = ir.ImagePart(data=draw(st.binary(min_size=1, max_size=8)), mime_type="image/png")
        messages.append(ir.Message("user", (result, image)))
    return ir.Request(
        model="m", messages=tuple(messages),
        system=tuple(ir.TextPart(t) for t in draw(st.lists(_text, max_size=2))),
        tools=tuple(tools),
        tool_choice=draw(st.none() | st.sampled_from(
            [ir.ToolChoice("auto"), ir.ToolChoice("none"), ir.ToolChoice("required")])),
        max_output_tokens=draw(st.none() | st.integers(1, 10000)),
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)), top_k=draw(st.none() | st.integers(1, 100)),
        stop=tuple(draw(st.lists(_text, max_size=2))),
        seed=draw(st.none() | st.integers(0, 2**31)),
        presence_penalty=draw(st.none() | st.floats(-2, 2)),
        frequency_penalty=draw(st.none() | st.floats(-2, 2)),
        reasoning=draw(st.none() | st.builds(ir.Reasoning, effort=st.sampled_from(
            [None, "low", "high"]), budget=st.none() | st.integers(1, 30000),
            include_thoughts=st.none() | st.booleans())),
    )


def _expressible(req: ir.Request) -> ir.Request:
    """What Gemini gives back of ``req``: an effort next to a budget is dropped (the budget is
    sent), the first unsigned function call of a model turn carries the bypass signature and
    zero penalties are not sent."""
    messages = []
    for msg in req.messages:
        parts = list(msg.parts)
        for i, part in enumerate(parts):
            if msg.role == "assistant" and isinstance(part, ir.ToolCallPart):
                sig = {"thoughtSignature": "skip_thought_signature_validator"}
                parts[i] = ir.ToolCallPart(part.id, part.name, part.arguments, sig)
                break
        messages.append(ir.Message(msg.role, tuple(parts)))
    reasoning = req.reasoning
    if reasoning is not None:
        effort = reasoning.effort if reasoning.budget is None else None
        reasoning = ir.Reasoning(effort, reasoning.budget, reasoning.include_thoughts)
        if reasoning == ir.Reasoning():
            reasoning = None
    penalties = {k: None if getattr(req, k) == 0 else getattr(req, k)  # zero: not sent
                 for k in ("presence_penalty", "frequency_penalty")}
    return ir.Request(**{**req.__dict__, "reasoning": reasoning, "messages": tuple(messages),
                         **penalties})


@settings(max_examples=60, deadline=None)
@given(ir_requests())
def test_encode_decode_property(req):
    body = gemini.encode_request(req, model="m")
    back = gemini.decode_request(json.loads(json.dumps(body)), model="m")
    assert back == _expressible(req)


# ---------------------------------------------------------------------------------------------
# Passthrough stream watcher

_WATCHED = (ir.MessageStart, ir.UsageUpdate, ir.MessageStop, ir.StreamError)


def _comparable(events: list) -> list:
    """Errors compare by identity; compare what a client would see of them."""
    return [("error", e.error.kind, e.error.message, e.error.status)
            if isinstance(e, ir.StreamError) else e for e in events]


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_thinking_tool.sse", "stream_error.sse"])
@pytest.mark.parametrize("cut", [None, -1, 1])
def test_watcher_reads_opening_usage_stop_and_errors_as_the_decoder(name, cut):
    """``cut`` drops the stream's tail (a truncated stream must still be noticed).  The tool
    stream's stop is a tool call, which the watcher sees without decoding the parts."""
    decoder, watcher = gemini.StreamDecoder(), gemini.StreamWatcher()
    decoded: list = []
    watched: list = []
    for ev in golden_events(name)[:cut]:
        decoded += decoder.feed(ev)
        watched += watcher.feed(ev)
        assert watcher.model_seen == decoder.model_seen  # the relay's model-name splice
        assert watcher.usage_only is False
    decoded += decoder.finish()
    watched += watcher.finish()
    assert _comparable(watched) == _comparable([e for e in decoded if isinstance(e, _WATCHED)])
    assert watched


def test_watcher_leaves_parts_to_the_client_but_not_bad_json():
    """A part the decoder cannot read goes to the client as it came; an event that is not JSON
    still ends the stream with an error, and a function call still makes the stop a tool call."""
    odd = sse.Event(data=json.dumps({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": 7}}]}, "index": 0}], "modelVersion": "g-up"}))
    assert isinstance(gemini.StreamDecoder().feed(odd)[-1], ir.StreamError)
    watcher = gemini.StreamWatcher()
    assert watcher.feed(odd) == [ir.MessageStart(id=None, model="g-up")]
    assert watcher.model_seen == "g-up"
    stop = watcher.feed(sse.Event(data=json.dumps({"candidates": [
        {"content": {"parts": []}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}})))
    assert [type(e) for e in stop] == [ir.UsageUpdate, ir.MessageStop]
    assert stop[1].stop_reason is ir.StopReason.TOOL_USE
    bad = gemini.StreamWatcher().feed(sse.Event(data="{not json"))
    assert len(bad) == 1 and isinstance(bad[0], ir.StreamError)


# ---------------------------------------------------------------------------------------------
# Passthrough whole answers

@pytest.mark.parametrize("name", ["response_text.json", "response_function_call.json",
                                  "response_blocked.json"])
def test_watch_response_reads_the_usage_decode_response_reads(name):
    body = golden(name)
    assert gemini.watch_response(body) == gemini.decode_response(body).usage


def test_watch_response_leaves_parts_to_the_client():
    body = {"candidates": [{"content": {"parts": {"text": "not a list"}}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}}
    with pytest.raises(ProxyError):
        gemini.decode_response(body)
    assert gemini.watch_response(body).output_tokens == 4
