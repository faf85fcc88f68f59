"""Every (client format, upstream format) pair, 16 in all, through the real codecs (issue 3).

Each case: a client body in the client's real wire format → client ``decode_request`` →
upstream ``encode_request`` → assertions on the upstream wire body (read directly, not through a
codec) → an upstream answer in the upstream's real wire format → upstream ``decode_response`` →
client ``encode_response`` → assertions on the client's wire body.  Streams run the whole byte
pipeline: upstream SSE bytes (split into small chunks) → `sse.Parser` → upstream
``StreamDecoder`` → client ``StreamEncoder`` → `sse.serialize` → `sse.Parser` → the client
codec's own ``StreamDecoder`` → `aggregate.collect`, and the client's stream is also read at the
wire level.  Scenarios: plain text, system prompt, multi-turn with images, a tool round trip,
thinking, stop sequences, and streaming with thinking, text and tool-call deltas (also folded
into one answer for a non-streaming client).
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
import weakref
from typing import Any

import pytest

from cliproxyd import formats
from cliproxyd.formats import aggregate, ir, sse

FORMATS = formats.FORMAT_NAMES
PAIRS = [(c, u) for c in FORMATS for u in FORMATS]
PAIR_IDS = [f"{c}->{u}" for c, u in PAIRS]
pairs = pytest.mark.parametrize("client, upstream", PAIRS, ids=PAIR_IDS)

CLIENT_MODEL = "client-model"
UP_MODEL = "upstream-model"
PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAAB"
           "JRU5ErkJggg==")
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}},
                  "required": ["city"]}
GEMINI_WEATHER_SCHEMA = {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                         "required": ["city"]}


def ctx_for(request: ir.Request) -> ir.EncodeContext:
    return ir.EncodeContext(model=CLIENT_MODEL, created=1_700_000_000, response_id="resp_test_1",
                            request=request)


def decode_client(client: str, body: dict, *, stream: bool = False) -> ir.Request:
    # Gemini carries model and streaming in the URL: the pipeline passes them in.
    if client == "gemini":
        req = formats.codec(client).decode_request(body, model=CLIENT_MODEL)
        return dataclasses.replace(req, stream=stream)
    return formats.codec(client).decode_request(body)


def to_upstream(client: str, upstream: str, body: dict, *, stream: bool = False) -> dict:
    req = decode_client(client, body, stream=stream)
    out = formats.codec(upstream).encode_request(req, model=UP_MODEL)
    json.dumps(out)  # must be JSON-serialisable as is
    if upstream != "gemini":
        assert out["model"] == UP_MODEL
    else:
        assert "model" not in out
    return out


def to_client(client: str, upstream: str, client_body: dict, upstream_answer: dict) -> dict:
    req = decode_client(client, client_body)
    resp = formats.codec(upstream).decode_response(upstream_answer)
    out = formats.codec(client).encode_response(resp, ctx_for(req))
    json.dumps(out)
    return out


# ---------------------------------------------------------------------------------------------
# Client request bodies, each in the client's own wire format


def user_text(fmt: str, text: str) -> dict:
    if fmt == "gemini":
        return {"role": "user", "parts": [{"text": text}]}
    if fmt == "openai_responses":
        return {"role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"role": "user", "content": text}


def assistant_text(fmt: str, text: str) -> dict:
    if fmt == "gemini":
        return {"role": "model", "parts": [{"text": text}]}
    if fmt == "openai_responses":
        return {"role": "assistant", "content": [{"type": "output_text", "text": text}]}
    return {"role": "assistant", "content": text}


def body_for(fmt: str, turns: list[dict], **extra: Any) -> dict:
    if fmt == "gemini":
        return {"contents": turns, **extra}
    if fmt == "openai_responses":
        return {"model": CLIENT_MODEL, "input": turns, **extra}
    if fmt == "claude":
        return {"model": CLIENT_MODEL, "max_tokens": 1024, "messages": turns, **extra}
    return {"model": CLIENT_MODEL, "messages": turns, **extra}


def plain_body(fmt: str) -> dict:
    if fmt == "openai_responses":
        return {"model": CLIENT_MODEL, "input": "What is the capital of France?"}
    return body_for(fmt, [user_text(fmt, "What is the capital of France?")])


def system_body(fmt: str) -> dict:
    turns = [user_text(fmt, "Name a colour.")]
    if fmt == "gemini":
        return body_for(fmt, turns, systemInstruction={"parts": [{"text": "You are terse."}]})
    if fmt == "openai_responses":
        return body_for(fmt, turns, instructions="You are terse.")
    if fmt == "claude":
        return body_for(fmt, turns, system="You are terse.")
    return body_for(fmt, [{"role": "system", "content": "You are terse."}, *turns])


def image_user(fmt: str) -> dict:
    text = "What is in this image?"
    if fmt == "gemini":
        return {"role": "user", "parts": [{"text": text},
                                          {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}
    if fmt == "openai_responses":
        return {"role": "user", "content": [
            {"type": "input_text", "text": text},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}"}]}
    if fmt == "claude":
        return {"role": "user", "content": [
            {"type": "text", "text": text},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG_B64}}]}
    return {"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]}


def images_body(fmt: str) -> dict:
    return body_for(fmt, [image_user(fmt), assistant_text(fmt, "A single red pixel."),
                          user_text(fmt, "Are you sure?")])


def tools_body(fmt: str) -> dict:
    ask = user_text(fmt, "What is the weather in Paris?")
    if fmt == "gemini":
        return body_for(fmt, [
            ask,
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                          "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {
                "name": "get_weather", "response": {"result": "18C and sunny"}}}]},
        ], tools=[{"functionDeclarations": [{"name": "get_weather",
                                             "description": "Current weather for a city",
                                             "parameters": GEMINI_WEATHER_SCHEMA}]}])
    if fmt == "openai_responses":
        return body_for(fmt, [
            ask,
            {"type": "function_call", "call_id": "call_abc", "name": "get_weather",
             "arguments": '{"city":"Paris"}'},
            {"type": "function_call_output", "call_id": "call_abc", "output": "18C and sunny"},
        ], tools=[{"type": "function", "name": "get_weather",
                   "description": "Current weather for a city", "parameters": WEATHER_SCHEMA}])
    if fmt == "claude":
        return body_for(fmt, [
            ask,
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_abc",
                                               "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_abc",
                                          "content": "18C and sunny"}]},
        ], tools=[{"name": "get_weather", "description": "Current weather for a city",
                   "input_schema": WEATHER_SCHEMA}])
    return body_for(fmt, [
        ask,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "18C and sunny"},
    ], tools=[{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": WEATHER_SCHEMA}}])


def thinking_body(fmt: str) -> dict:
    turns = [user_text(fmt, "Prove that there are infinitely many primes.")]
    if fmt == "gemini":
        return body_for(fmt, turns, generationConfig={
            "thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}})
    if fmt == "openai_responses":
        return body_for(fmt, turns, reasoning={"effort": "high", "summary": "auto"})
    if fmt == "claude":
        return dict(body_for(fmt, turns, thinking={"type": "enabled", "budget_tokens": 24576}),
                    max_tokens=32000)
    return body_for(fmt, turns, reasoning_effort="high")


def stop_body(fmt: str) -> dict:
    turns = [user_text(fmt, "Count to ten.")]
    if fmt == "gemini":
        return body_for(fmt, turns, generationConfig={"stopSequences": ["END"]})
    if fmt == "openai_responses":
        return body_for(fmt, turns)  # Responses has no stop sequences
    if fmt == "claude":
        return body_for(fmt, turns, stop_sequences=["END"])
    return body_for(fmt, turns, stop=["END"])


def stream_body(fmt: str) -> dict:
    body = tools_body(fmt)
    if fmt == "openai_chat":
        return dict(body, stream=True, stream_options={"include_usage": True})
    if fmt in ("claude", "openai_responses"):
        return dict(body, stream=True)
    return body


# ---------------------------------------------------------------------------------------------
# Reading upstream request bodies at the wire level


def _texts(value: Any) -> list[str]:
    """Every text a message-ish value carries, in order (content strings and text parts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str) and not value.get("thought"):
            return [value["text"]]
        for key in ("content", "parts"):
            if key in value:
                return _texts(value[key])
    return []


def turns_of(fmt: str, body: dict) -> list[dict]:
    if fmt == "gemini":
        return body["contents"]
    if fmt == "openai_responses":
        items = body["input"]
        return [{"role": "user", "content": items}] if isinstance(items, str) else items
    return body["messages"]


def conversation_texts(fmt: str, body: dict) -> list[str]:
    """User/assistant texts (system and developer turns excluded)."""
    turns = [t for t in turns_of(fmt, body) if t.get("role") not in ("system", "developer")]
    return [t for turn in turns if turn.get("type") in (None, "message") for t in _texts(turn)]


def system_texts(fmt: str, body: dict) -> list[str]:
    if fmt == "gemini":
        return _texts(body.get("systemInstruction", {}))
    if fmt == "claude":
        return _texts(body.get("system", []))
    turns = [t for t in turns_of(fmt, body) if t.get("role") in ("system", "developer")]
    found = [t for turn in turns for t in _texts(turn)]
    if fmt == "openai_responses" and body.get("instructions"):
        found.insert(0, body["instructions"])
    return found


def images_of(fmt: str, body: dict) -> list[tuple[str, str]]:
    """(mime type, base64 data) of every inline image."""
    found = []

    def data_uri(uri: str) -> tuple[str, str]:
        head, _, data = uri.partition(",")
        return head[len("data:"):].split(";")[0], data

    for turn in turns_of(fmt, body):
        for part in turn.get("parts") or (turn.get("content") if isinstance(turn.get("content"), list) else []):
            if "inlineData" in part or "inline_data" in part:
                inline = part.get("inlineData") or part.get("inline_data")
                found.append((inline.get("mimeType") or inline.get("mime_type"), inline["data"]))
            elif part.get("type") == "image":
                found.append((part["source"]["media_type"], part["source"]["data"]))
            elif part.get("type") == "image_url":
                found.append(data_uri(part["image_url"]["url"]))
            elif part.get("type") == "input_image":
                found.append(data_uri(part["image_url"]))
    return found


def tools_of(fmt: str, body: dict) -> dict[str, dict]:
    """Tool name → JSON Schema of its parameters."""
    tools = body.get("tools") or []
    if fmt == "gemini":
        return {d["name"]: d.get("parameters") or d.get("parametersJsonSchema")
                for t in tools for d in t.get("functionDeclarations", [])}
    if fmt == "claude":
        return {t["name"]: t["input_schema"] for t in tools}
    if fmt == "openai_responses":
        return {t["name"]: t["parameters"] for t in tools if t.get("type") == "function"}
    return {t["function"]["name"]: t["function"]["parameters"] for t in tools}


def calls_and_results(fmt: str, body: dict) -> tuple[list[tuple], list[tuple]]:
    """Tool calls (id, name, args) and results (id, name, text) in the conversation."""
    calls, results = [], []
    for turn in turns_of(fmt, body):
        if fmt == "openai_chat":
            for c in turn.get("tool_calls") or []:
                calls.append((c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])))
            if turn.get("role") == "tool":
                results.append((turn["tool_call_id"], None, " ".join(_texts(turn["content"]))))
        elif fmt == "openai_responses":
            if turn.get("type") == "function_call":
                calls.append((turn["call_id"], turn["name"], json.loads(turn["arguments"])))
            elif turn.get("type") == "function_call_output":
                out = turn["output"]
                results.append((turn["call_id"], None, out if isinstance(out, str)
                                else " ".join(_texts(out))))
        elif fmt == "claude":
            for b in turn["content"] if isinstance(turn["content"], list) else []:
                if b["type"] == "tool_use":
                    calls.append((b["id"], b["name"], b["input"]))
                elif b["type"] == "tool_result":
                    text = b.get("content", "")
                    results.append((b["tool_use_id"], None,
                                    text if isinstance(text, str) else " ".join(_texts(text))))
        else:
            for p in turn.get("parts", []):
                if "functionCall" in p:
                    c = p["functionCall"]
                    calls.append((c.get("id"), c["name"], c.get("args", {})))
                elif "functionResponse" in p:
                    r = p["functionResponse"]
                    results.append((r.get("id"), r["name"], json.dumps(r["response"])))
    return calls, results


def stop_of(fmt: str, body: dict) -> list[str] | None:
    if fmt == "gemini":
        return body.get("generationConfig", {}).get("stopSequences")
    if fmt == "claude":
        return body.get("stop_sequences")
    if fmt == "openai_chat":
        stop = body.get("stop")
        return [stop] if isinstance(stop, str) else stop
    return None


# ---------------------------------------------------------------------------------------------
# Upstream answers in each upstream's real wire format


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str = "Paris."
    thinking: str | None = None
    tool: tuple[str, dict] | None = None
    usage: tuple[int, int] = (25, 12)
    stop: str | None = None  # a stop sequence that ended the answer


def upstream_answer(fmt: str, a: Answer) -> dict:
    return {"claude": _claude_answer, "openai_chat": _chat_answer,
            "openai_responses": _responses_answer, "gemini": _gemini_answer}[fmt](a)


def _claude_answer(a: Answer) -> dict:
    content: list[dict] = []
    if a.thinking:
        content.append({"type": "thinking", "thinking": a.thinking, "signature": "EqQBCkYIARgCsig"})
    content.append({"type": "text", "text": a.text})
    if a.tool:
        content.append({"type": "tool_use", "id": "toolu_01A", "name": a.tool[0], "input": a.tool[1]})
    stop = "tool_use" if a.tool else ("stop_sequence" if a.stop else "end_turn")
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": UP_MODEL, "content": content, "stop_reason": stop, "stop_sequence": a.stop,
            "usage": {"input_tokens": a.usage[0], "output_tokens": a.usage[1],
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def _chat_answer(a: Answer) -> dict:
    message: dict = {"role": "assistant", "content": a.text, "refusal": None}
    if a.thinking:
        message["reasoning_content"] = a.thinking  # DeepSeek/vLLM-style compatible upstreams
    if a.tool:
        message["tool_calls"] = [{"id": "call_up_1", "type": "function", "function": {
            "name": a.tool[0], "arguments": json.dumps(a.tool[1])}}]
    return {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion",
            "created": 1_741_570_283, "model": UP_MODEL,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if a.tool else "stop"}],
            "usage": {"prompt_tokens": a.usage[0], "completion_tokens": a.usage[1],
                      "total_tokens": sum(a.usage),
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}}


def _responses_answer(a: Answer) -> dict:
    output: list[dict] = []
    if a.thinking:
        output.append({"type": "reasoning", "id": "rs_1", "summary": [
            {"type": "summary_text", "text": a.thinking}]})
    output.append({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": a.text, "annotations": []}]})
    if a.tool:
        output.append({"type": "function_call", "id": "fc_1", "call_id": "call_up_1",
                       "name": a.tool[0], "arguments": json.dumps(a.tool[1]),
                       "status": "completed"})
    return {"id": "resp_67ccd2bed1ec8190b14f964abc054267", "object": "response",
            "created_at": 1_741_476_542, "status": "completed", "error": None,
            "incomplete_details": None, "model": UP_MODEL, "output": output,
            "usage": {"input_tokens": a.usage[0], "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": a.usage[1],
                      "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": sum(a.usage)}}


def _gemini_answer(a: Answer) -> dict:
    parts: list[dict] = []
    if a.thinking:
        parts.append({"text": a.thinking, "thought": True})
    parts.append({"text": a.text})
    if a.tool:
        parts.append({"functionCall": {"name": a.tool[0], "args": a.tool[1]}})
    return {"candidates": [{"content": {"parts": parts, "role": "model"},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": a.usage[0], "candidatesTokenCount": a.usage[1],
                              "totalTokenCount": sum(a.usage)},
            "modelVersion": UP_MODEL, "responseId": "mAitaLmkHPPlz7IPvtfUqQ4"}


# ---------------------------------------------------------------------------------------------
# Reading client response bodies at the wire level


def answer_text(fmt: str, body: dict) -> str:
    if fmt == "openai_chat":
        return body["choices"][0]["message"].get("content") or ""
    if fmt == "openai_responses":
        return "".join(c["text"] for o in body["output"] if o["type"] == "message"
                       for c in o["content"] if c["type"] == "output_text")
    if fmt == "claude":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    return "".join(p["text"] for p in body["candidates"][0]["content"]["parts"]
                   if "text" in p and not p.get("thought"))


def answer_thinking(fmt: str, body: dict) -> str:
    if fmt == "openai_chat":
        return body["choices"][0]["message"].get("reasoning_content") or ""
    if fmt == "openai_responses":
        return "".join(s["text"] for o in body["output"] if o["type"] == "reasoning"
                       for s in o.get("summary", []))
    if fmt == "claude":
        return "".join(b["thinking"] for b in body["content"] if b["type"] == "thinking")
    return "".join(p["text"] for p in body["candidates"][0]["content"]["parts"]
                   if p.get("thought"))


def answer_tools(fmt: str, body: dict) -> list[tuple[str, dict]]:
    if fmt == "openai_chat":
        return [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in body["choices"][0]["message"].get("tool_calls") or []]
    if fmt == "openai_responses":
        return [(o["name"], json.loads(o["arguments"])) for o in body["output"]
                if o["type"] == "function_call"]
    if fmt == "claude":
        return [(b["name"], b["input"]) for b in body["content"] if b["type"] == "tool_use"]
    return [(p["functionCall"]["name"], p["functionCall"].get("args", {}))
            for p in body["candidates"][0]["content"]["parts"] if "functionCall" in p]


def answer_usage(fmt: str, body: dict) -> tuple[int, int]:
    u = body.get("usage") or body.get("usageMetadata")
    if fmt == "openai_chat":
        return u["prompt_tokens"], u["completion_tokens"]
    if fmt == "gemini":
        return u["promptTokenCount"], u["candidatesTokenCount"] + u.get("thoughtsTokenCount", 0)
    return u["input_tokens"], u["output_tokens"]


def answer_finished_normally(fmt: str, body: dict, tool: bool) -> bool:
    if fmt == "openai_chat":
        return body["choices"][0]["finish_reason"] == ("tool_calls" if tool else "stop")
    if fmt == "openai_responses":
        return body["status"] == "completed"
    if fmt == "claude":
        return body["stop_reason"] in (("tool_use",) if tool else ("end_turn", "stop_sequence"))
    return body["candidates"][0]["finishReason"] == "STOP"


def answer_model(fmt: str, body: dict) -> str | None:
    return body.get("modelVersion") if fmt == "gemini" else body.get("model")


# ---------------------------------------------------------------------------------------------
# The scenarios


@pairs
def test_plain_text(client, upstream):
    up = to_upstream(client, upstream, plain_body(client))
    assert conversation_texts(upstream, up) == ["What is the capital of France?"]
    assert system_texts(upstream, up) == []
    out = to_client(client, upstream, plain_body(client), upstream_answer(upstream, Answer()))
    assert answer_text(client, out) == "Paris."
    assert answer_usage(client, out) == (25, 12)
    assert answer_model(client, out) == CLIENT_MODEL
    assert answer_finished_normally(client, out, tool=False)


@pairs
def test_system_prompt(client, upstream):
    up = to_upstream(client, upstream, system_body(client))
    assert system_texts(upstream, up) == ["You are terse."]
    assert conversation_texts(upstream, up) == ["Name a colour."]
    out = to_client(client, upstream, system_body(client),
                    upstream_answer(upstream, Answer(text="Blue.")))
    assert answer_text(client, out) == "Blue."


@pairs
def test_multi_turn_with_images(client, upstream):
    up = to_upstream(client, upstream, images_body(client))
    assert conversation_texts(upstream, up) == [
        "What is in this image?", "A single red pixel.", "Are you sure?"]
    assert images_of(upstream, up) == [("image/png", PNG_B64)]
    assert base64.b64decode(images_of(upstream, up)[0][1]).startswith(b"\x89PNG")
    out = to_client(client, upstream, images_body(client),
                    upstream_answer(upstream, Answer(text="Yes, it is red.")))
    assert answer_text(client, out) == "Yes, it is red."


@pairs
def test_tool_round_trip(client, upstream):
    up = to_upstream(client, upstream, tools_body(client))
    tools = tools_of(upstream, up)
    assert list(tools) == ["get_weather"]
    assert "city" in tools["get_weather"]["properties"]
    if upstream != "gemini":
        assert tools["get_weather"]["type"] == "object"  # plain JSON Schema, whatever came in
    calls, results = calls_and_results(upstream, up)
    assert [(name, args) for _, name, args in calls] == [("get_weather", {"city": "Paris"})]
    assert len(results) == 1 and "18C and sunny" in results[0][2]
    if upstream == "gemini":
        assert results[0][1] == "get_weather"  # Gemini matches results by name
        assert json.loads(results[0][2]) != "18C and sunny"  # an object, not a JSON string
    else:
        assert calls[0][0] and results[0][0] == calls[0][0]  # matched by id
    answer = Answer(text="Let me check Lyon too.", tool=("get_weather", {"city": "Lyon"}))
    out = to_client(client, upstream, tools_body(client), upstream_answer(upstream, answer))
    assert answer_tools(client, out) == [("get_weather", {"city": "Lyon"})]
    assert answer_text(client, out) == "Let me check Lyon too."
    assert answer_finished_normally(client, out, tool=True)


def reasoning_of(fmt: str, body: dict) -> tuple[str | None, int | None]:
    """(effort level, token budget) the upstream body asks for."""
    if fmt == "openai_chat":
        return body.get("reasoning_effort"), None
    if fmt == "openai_responses":
        return (body.get("reasoning") or {}).get("effort"), None
    if fmt == "claude":
        thinking = body.get("thinking") or {}
        effort = (body.get("output_config") or {}).get("effort")
        return effort, thinking.get("budget_tokens")
    cfg = body.get("generationConfig", {}).get("thinkingConfig", {})
    level = cfg.get("thinkingLevel")
    return (level.lower() if level else None), cfg.get("thinkingBudget")


@pairs
def test_thinking(client, upstream):
    up = to_upstream(client, upstream, thinking_body(client))
    effort, budget = reasoning_of(upstream, up)
    assert effort == "high" or budget == 24576, (effort, budget)
    if upstream == "claude":
        assert up["thinking"]["type"] in ("enabled", "adaptive")
        assert up["max_tokens"] > (up["thinking"].get("budget_tokens") or 0)
    answer = Answer(text="Assume finitely many; their product plus one has a new prime factor.",
                    thinking="Euclid's argument is the shortest route.")
    out = to_client(client, upstream, thinking_body(client), upstream_answer(upstream, answer))
    assert answer_text(client, out) == answer.text
    assert answer_thinking(client, out) == answer.thinking


@pairs
def test_stop_sequences(client, upstream):
    up = to_upstream(client, upstream, stop_body(client))
    expressible = "openai_responses" not in (client, upstream)
    assert stop_of(upstream, up) == (["END"] if expressible else None)
    answer = Answer(text="1 2 3 4 5 6 7 8 9 10", stop="END" if expressible else None)
    out = to_client(client, upstream, stop_body(client), upstream_answer(upstream, answer))
    assert answer_text(client, out) == "1 2 3 4 5 6 7 8 9 10"
    assert answer_finished_normally(client, out, tool=False)


# ---------------------------------------------------------------------------------------------
# Streaming: upstream wire bytes → ... → client wire bytes → client's own decoder

STREAM_THINKING = ["The user wants ", "the weather."]
STREAM_TEXT = ["The weather ", "in Paris ", "is mild. ✓"]
STREAM_ARGS = ['{"ci', 'ty": "Pa', 'ris"}']
STREAM_USAGE = (30, 15)


def _ev(data: Any, event: str | None = None) -> bytes:
    return sse.serialize(sse.Event(json.dumps(data, ensure_ascii=False), event=event))


def upstream_stream(fmt: str) -> bytes:
    return {"claude": _claude_stream, "openai_chat": _chat_stream,
            "openai_responses": _responses_stream, "gemini": _gemini_stream}[fmt]()


def _claude_stream() -> bytes:
    inp, out = STREAM_USAGE
    msg = {"id": "msg_01", "type": "message", "role": "assistant", "model": UP_MODEL,
           "content": [], "stop_reason": None, "stop_sequence": None,
           "usage": {"input_tokens": inp, "output_tokens": 1, "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 0}}
    parts = [_ev({"type": "message_start", "message": msg}, "message_start"),
             _ev({"type": "content_block_start", "index": 0, "content_block": {
                 "type": "thinking", "thinking": "", "signature": ""}}, "content_block_start"),
             _ev({"type": "ping"}, "ping")]
    parts += [_ev({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": t}}, "content_block_delta")
              for t in STREAM_THINKING]
    parts += [_ev({"type": "content_block_delta", "index": 0, "delta": {
                  "type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}},
                  "content_block_delta"),
              _ev({"type": "content_block_stop", "index": 0}, "content_block_stop"),
              _ev({"type": "content_block_start", "index": 1,
                   "content_block": {"type": "text", "text": ""}}, "content_block_start")]
    parts += [_ev({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "text_delta", "text": t}}, "content_block_delta")
              for t in STREAM_TEXT]
    parts += [_ev({"type": "content_block_stop", "index": 1}, "content_block_stop"),
              _ev({"type": "content_block_start", "index": 2, "content_block": {
                  "type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}},
                  "content_block_start")]
    parts += [_ev({"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": p}},
                  "content_block_delta") for p in STREAM_ARGS]
    parts += [_ev({"type": "content_block_stop", "index": 2}, "content_block_stop"),
              _ev({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                      "stop_sequence": None},
                   "usage": {"output_tokens": out}}, "message_delta"),
              _ev({"type": "message_stop"}, "message_stop")]
    return b"".join(parts)


def _chat_stream() -> bytes:
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return _ev({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                    "model": UP_MODEL, "system_fingerprint": None, "usage": None,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                 "finish_reason": finish}]})
    parts = [chunk({"role": "assistant", "content": "", "refusal": None})]
    parts += [chunk({"reasoning_content": t}) for t in STREAM_THINKING]  # DeepSeek/vLLM style
    parts += [chunk({"content": t}) for t in STREAM_TEXT]
    parts.append(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                        "function": {"name": "get_weather", "arguments": ""}}]}))
    parts += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
              for p in STREAM_ARGS]
    parts.append(chunk({}, "tool_calls"))
    inp, out = STREAM_USAGE
    parts.append(_ev({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                      "model": UP_MODEL, "choices": [],
                      "usage": {"prompt_tokens": inp, "completion_tokens": out,
                                "total_tokens": inp + out}}))
    return b"".join(parts) + b"data: [DONE]\n\n"


def _responses_stream() -> bytes:
    seq = iter(range(1000))
    inp, out = STREAM_USAGE
    text, args = "".join(STREAM_TEXT), "".join(STREAM_ARGS)
    thought = "".join(STREAM_THINKING)

    def ev(kind: str, **fields: Any) -> bytes:
        return _ev(dict(type=kind, sequence_number=next(seq), **fields), kind)

    def resp(status: str, output: list, usage: dict | None) -> dict:
        return {"id": "resp_1", "object": "response", "created_at": 1, "status": status,
                "model": UP_MODEL, "output": output, "usage": usage, "error": None,
                "incomplete_details": None}

    msg = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant",
           "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    done_msg = dict(msg, status="completed", content=[dict(part, text=text)])
    call = {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_1",
            "name": "get_weather", "arguments": ""}
    done_call = dict(call, status="completed", arguments=args)
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
    summary = {"type": "summary_text", "text": ""}
    done_reasoning = dict(reasoning, summary=[dict(summary, text=thought)])
    at_r = {"item_id": "rs_1", "output_index": 0, "summary_index": 0}
    at0, at1 = {"item_id": "msg_1", "output_index": 1}, {"item_id": "fc_1", "output_index": 2}
    parts = [ev("response.created", response=resp("in_progress", [], None)),
             ev("response.in_progress", response=resp("in_progress", [], None)),
             ev("response.output_item.added", output_index=0, item=reasoning),
             ev("response.reasoning_summary_part.added", part=summary, **at_r)]
    parts += [ev("response.reasoning_summary_text.delta", delta=t, **at_r)
              for t in STREAM_THINKING]
    parts += [ev("response.reasoning_summary_text.done", text=thought, **at_r),
              ev("response.reasoning_summary_part.done", part=dict(summary, text=thought), **at_r),
              ev("response.output_item.done", output_index=0, item=done_reasoning),
              ev("response.output_item.added", output_index=1, item=msg),
              ev("response.content_part.added", content_index=0, part=part, **at0)]
    parts += [ev("response.output_text.delta", content_index=0, delta=t, logprobs=[], **at0)
              for t in STREAM_TEXT]
    parts += [ev("response.output_text.done", content_index=0, text=text, logprobs=[], **at0),
              ev("response.content_part.done", content_index=0, part=dict(part, text=text), **at0),
              ev("response.output_item.done", output_index=1, item=done_msg),
              ev("response.output_item.added", output_index=2, item=call)]
    parts += [ev("response.function_call_arguments.delta", delta=p, **at1) for p in STREAM_ARGS]
    parts += [ev("response.function_call_arguments.done", arguments=args, **at1),
              ev("response.output_item.done", output_index=2, item=done_call),
              ev("response.completed", response=resp("completed", [
                  done_reasoning, done_msg, done_call], {
                  "input_tokens": inp, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": inp + out}))]
    return b"".join(parts)


def _gemini_stream() -> bytes:
    inp, out = STREAM_USAGE

    def chunk(parts: list, n: int, final: bool = False) -> bytes:
        cand: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if final:
            cand["finishReason"] = "STOP"
        data = {"candidates": [cand], "usageMetadata": {
            "promptTokenCount": inp, "candidatesTokenCount": n, "totalTokenCount": inp + n},
            "modelVersion": UP_MODEL, "responseId": "r1"}
        # Google frames SSE with CRLF line ends
        return f"data: {json.dumps(data, ensure_ascii=False)}\r\n\r\n".encode()

    parts = [chunk([{"text": t, "thought": True}], 0) for t in STREAM_THINKING]
    parts += [chunk([{"text": t}], i + 1) for i, t in enumerate(STREAM_TEXT)]
    parts.append(chunk([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
                       out, final=True))
    return b"".join(parts)


def run_stream(client: str, upstream: str, request: ir.Request) -> tuple[bytes, list]:
    """Upstream bytes through both codecs; returns the client's bytes and the IR it decodes to."""
    raw = upstream_stream(upstream)
    parser, decoder = sse.Parser(), formats.codec(upstream).StreamDecoder()
    encoder = formats.codec(client).StreamEncoder(ctx_for(request))
    out: list[bytes] = []

    def forward(events: list) -> None:
        for ir_event in events:
            out.extend(sse.serialize(e) for e in encoder.feed(ir_event))

    for i in range(0, len(raw), 7):  # small chunks: events and characters split everywhere
        for wire_event in parser.feed(raw[i:i + 7]):
            forward(decoder.feed(wire_event))
    for wire_event in parser.finish():
        forward(decoder.feed(wire_event))
    forward(decoder.finish())
    out.extend(sse.serialize(e) for e in encoder.finish())
    client_bytes = b"".join(out)
    back_parser, back_decoder = sse.Parser(), formats.codec(client).StreamDecoder()
    ir_events: list = []
    for wire_event in back_parser.feed(client_bytes) + back_parser.finish():
        ir_events += back_decoder.feed(wire_event)
    return client_bytes, ir_events + back_decoder.finish()


def wire_stream_text(fmt: str, raw: bytes) -> str:
    """The answer text read straight from the client's SSE bytes (no codec involved)."""
    text = []
    for event in sse.Parser().feed(raw):
        if event.data == "[DONE]":
            continue
        data = json.loads(event.data)
        if fmt == "openai_chat":
            text += [c["delta"].get("content") or "" for c in data.get("choices", [])]
        elif fmt == "openai_responses" and data["type"] == "response.output_text.delta":
            text.append(data["delta"])
        elif fmt == "claude" and data["type"] == "content_block_delta" and \
                data["delta"]["type"] == "text_delta":
            text.append(data["delta"]["text"])
        elif fmt == "gemini":
            for cand in data.get("candidates", []):
                text += [p.get("text", "") for p in cand.get("content", {}).get("parts", [])
                         if not p.get("thought")]
    return "".join(text)


def wire_stream_terminated(fmt: str, raw: bytes) -> bool:
    events = sse.Parser().feed(raw)
    last = events[-1]
    if fmt == "openai_chat":
        return last.data == "[DONE]"
    if fmt == "gemini":
        return json.loads(last.data)["candidates"][0].get("finishReason") == "STOP"
    kind = json.loads(last.data)["type"]
    return kind == ("message_stop" if fmt == "claude" else "response.completed")


@pairs
def test_streaming_text_and_tool_call(client, upstream):
    up = to_upstream(client, upstream, stream_body(client), stream=True)
    if upstream == "openai_chat":
        assert up["stream"] is True and up["stream_options"]["include_usage"] is True
    elif upstream in ("claude", "openai_responses"):
        assert up["stream"] is True
    request = decode_client(client, stream_body(client), stream=True)
    assert request.stream
    client_bytes, ir_events = run_stream(client, upstream, request)
    assert wire_stream_text(client, client_bytes) == "".join(STREAM_TEXT)
    assert wire_stream_terminated(client, client_bytes)
    resp = aggregate.collect(ir_events)
    assert "".join(p.text for p in resp.parts if isinstance(p, ir.TextPart)) == "".join(STREAM_TEXT)
    assert "".join(p.text for p in resp.parts if isinstance(p, ir.ThinkingPart)) == \
        "".join(STREAM_THINKING)
    calls = [p for p in resp.parts if isinstance(p, ir.ToolCallPart)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert all(c.id for c in calls)
    assert resp.stop_reason is ir.StopReason.TOOL_USE
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == STREAM_USAGE
    assert resp.model in (CLIENT_MODEL, "")  # never the upstream's name for the model
    assert UP_MODEL.encode() not in client_bytes


@pairs
def test_stream_codecs_are_freed_without_the_garbage_collector(client, upstream):
    """A reference cycle inside a decoder, watcher or encoder would leave every stream as garbage
    that only the cyclic collector frees; under load those collections cost the daemon whole
    percents of its CPU.  With the collector off, dropping them must free them."""
    request = decode_client(client, stream_body(client), stream=True)
    up = formats.codec(upstream)
    decoder, encoder = up.StreamDecoder(), formats.codec(client).StreamEncoder(ctx_for(request))
    watcher = up.StreamWatcher() if hasattr(up, "StreamWatcher") else None
    refs = [weakref.ref(o) for o in (decoder, encoder, watcher) if o is not None]
    gc.disable()
    try:
        wire = sse.Parser().feed(upstream_stream(upstream))
        for event in wire:
            for ir_event in decoder.feed(event):
                encoder.feed(ir_event)
            if watcher is not None:
                watcher.feed(event)
        assert [e for e in decoder.finish() if isinstance(e, ir.StreamError)] == []
        assert encoder.finish()
        del decoder, encoder, watcher
        assert [r() for r in refs] == [None] * len(refs)
    finally:
        gc.enable()


def upstream_collect(upstream: str) -> ir.Response:
    """The upstream stream folded into one response (a non-streaming client of a streaming
    upstream, e.g. Codex): the same answer must come out."""
    parser, decoder = sse.Parser(), formats.codec(upstream).StreamDecoder()
    events: list = []
    for wire_event in parser.feed(upstream_stream(upstream)) + parser.finish():
        events += decoder.feed(wire_event)
    return aggregate.collect(events + decoder.finish())


@pairs
def test_streamed_upstream_answers_non_streaming_client(client, upstream):
    request = decode_client(client, tools_body(client))
    out = formats.codec(client).encode_response(upstream_collect(upstream), ctx_for(request))
    assert answer_text(client, out) == "".join(STREAM_TEXT)
    assert answer_thinking(client, out) == "".join(STREAM_THINKING)
    assert answer_tools(client, out) == [("get_weather", {"city": "Paris"})]
    assert answer_usage(client, out) == STREAM_USAGE
    assert answer_finished_normally(client, out, tool=True)


# ---------------------------------------------------------------------------------------------
# Mapping tables across pairs: generation settings, cached usage, stop reasons, broken streams


def settings_body(fmt: str) -> dict:
    turns = [user_text(fmt, "Write a haiku.")]
    if fmt == "gemini":
        return body_for(fmt, turns, generationConfig={
            "maxOutputTokens": 321, "temperature": 0.3, "topP": 0.9})
    if fmt == "openai_responses":
        return body_for(fmt, turns, max_output_tokens=321, temperature=0.3, top_p=0.9)
    if fmt == "claude":
        return dict(body_for(fmt, turns, temperature=0.3, top_p=0.9), max_tokens=321)
    return body_for(fmt, turns, max_completion_tokens=321, temperature=0.3, top_p=0.9)


def settings_of(fmt: str, body: dict) -> tuple:
    if fmt == "gemini":
        cfg = body.get("generationConfig", {})
        return cfg.get("maxOutputTokens"), cfg.get("temperature"), cfg.get("topP")
    if fmt == "openai_responses":
        return body.get("max_output_tokens"), body.get("temperature"), body.get("top_p")
    if fmt == "claude":
        return body.get("max_tokens"), body.get("temperature"), body.get("top_p")
    return (body.get("max_completion_tokens") or body.get("max_tokens"), body.get("temperature"),
            body.get("top_p"))


@pairs
def test_generation_settings(client, upstream):
    up = to_upstream(client, upstream, settings_body(client))
    # Recent Claude models refuse temperature together with top_p: temperature wins.
    top_p = None if upstream == "claude" else 0.9
    assert settings_of(upstream, up) == (321, 0.3, top_p)


def cached_answer(fmt: str) -> dict:
    """An answer whose prompt of 100 tokens had 80 served from the cache; 20 output tokens."""
    body = upstream_answer(fmt, Answer())
    if fmt == "claude":
        body["usage"] = {"input_tokens": 20, "cache_read_input_tokens": 80,
                         "cache_creation_input_tokens": 0, "output_tokens": 20}
    elif fmt == "openai_chat":
        body["usage"] = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                         "prompt_tokens_details": {"cached_tokens": 80}}
    elif fmt == "openai_responses":
        body["usage"] = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 80},
                         "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                         "total_tokens": 120}
    else:
        body["usageMetadata"] = {"promptTokenCount": 100, "cachedContentTokenCount": 80,
                                 "candidatesTokenCount": 20, "totalTokenCount": 120}
    return body


def cached_usage(fmt: str, body: dict) -> tuple[int, int, int]:
    """(whole prompt, cached part of it, output) as the client's format reports them."""
    u = body.get("usage") or body.get("usageMetadata")
    if fmt == "claude":
        whole = u["input_tokens"] + u.get("cache_read_input_tokens", 0) + \
            u.get("cache_creation_input_tokens", 0)
        return whole, u.get("cache_read_input_tokens", 0), u["output_tokens"]
    if fmt == "openai_chat":
        return (u["prompt_tokens"], (u.get("prompt_tokens_details") or {}).get("cached_tokens"),
                u["completion_tokens"])
    if fmt == "openai_responses":
        return (u["input_tokens"], (u.get("input_tokens_details") or {}).get("cached_tokens"),
                u["output_tokens"])
    return u["promptTokenCount"], u.get("cachedContentTokenCount"), u["candidatesTokenCount"]


@pairs
def test_cached_usage(client, upstream):
    out = to_client(client, upstream, plain_body(client), cached_answer(upstream))
    assert cached_usage(client, out) == (100, 80, 20)


def max_tokens_answer(fmt: str) -> dict:
    body = upstream_answer(fmt, Answer(text="A very long"))
    if fmt == "claude":
        body["stop_reason"] = "max_tokens"
    elif fmt == "openai_chat":
        body["choices"][0]["finish_reason"] = "length"
    elif fmt == "openai_responses":
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "max_output_tokens"}
        body["output"][0]["status"] = "incomplete"
    else:
        body["candidates"][0]["finishReason"] = "MAX_TOKENS"
    return body


def hit_max_tokens(fmt: str, body: dict) -> bool:
    if fmt == "claude":
        return body["stop_reason"] == "max_tokens"
    if fmt == "openai_chat":
        return body["choices"][0]["finish_reason"] == "length"
    if fmt == "openai_responses":
        return body["status"] == "incomplete" and \
            body["incomplete_details"]["reason"] == "max_output_tokens"
    return body["candidates"][0]["finishReason"] == "MAX_TOKENS"


@pairs
def test_max_tokens_stop_reason(client, upstream):
    out = to_client(client, upstream, plain_body(client), max_tokens_answer(upstream))
    assert answer_text(client, out) == "A very long"
    assert hit_max_tokens(client, out)


def truncate(fmt: str, raw: bytes) -> bytes:
    """The upstream stream cut after its text deltas: no tool call, no terminal event."""
    events = sse.Parser().feed(raw)
    keep = []
    for event in events:
        keep.append(event)
        if json.dumps(STREAM_TEXT[1]) in event.data:  # the second text delta
            break
    return b"".join(sse.serialize(e) for e in keep)


def client_error_event(fmt: str, raw: bytes) -> dict | None:
    """The in-stream error the client's format shows at the end of its stream, if any."""
    events = sse.Parser().feed(raw)
    last = events[-1]
    if last.data == "[DONE]":
        last = events[-2]
    data = json.loads(last.data)
    if fmt in ("openai_chat", "gemini"):
        return data.get("error")
    if fmt == "claude":
        return data["error"] if data["type"] == "error" else None
    if data["type"] == "response.failed":
        return data["response"]["error"]
    return data if data["type"] == "error" else None


@pairs
def test_truncated_upstream_stream_ends_client_stream_with_error(client, upstream):
    raw = truncate(upstream, upstream_stream(upstream))
    request = decode_client(client, stream_body(client), stream=True)
    parser, decoder = sse.Parser(), formats.codec(upstream).StreamDecoder()
    encoder = formats.codec(client).StreamEncoder(ctx_for(request))
    ir_events = []
    for wire_event in parser.feed(raw) + parser.finish():
        ir_events += decoder.feed(wire_event)
    ir_events += decoder.finish()
    assert isinstance(ir_events[-1], ir.StreamError)
    out = [sse.serialize(e) for ev in ir_events for e in encoder.feed(ev)]
    out += [sse.serialize(e) for e in encoder.finish()]
    client_bytes = b"".join(out)
    assert wire_stream_text(client, client_bytes).startswith("".join(STREAM_TEXT[:2]))
    assert client_error_event(client, client_bytes), client_bytes[-300:]
    back_parser, back_decoder = sse.Parser(), formats.codec(client).StreamDecoder()
    back = []
    for wire_event in back_parser.feed(client_bytes) + back_parser.finish():
        back += back_decoder.feed(wire_event)
    back += back_decoder.finish()
    with pytest.raises(Exception) as info:  # the client's own decoder sees a failed stream
        aggregate.collect(back)
    assert info.type.__name__ == "ProxyError"


# ---------------------------------------------------------------------------------------------
# Tool choice, parallel tool calls, and Gemini's JSON-array stream for clients


def forced_tool_body(fmt: str) -> dict:
    body = tools_body(fmt)
    if fmt == "gemini":
        return dict(body, toolConfig={"functionCallingConfig": {
            "mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    if fmt == "openai_responses":
        return dict(body, tool_choice={"type": "function", "name": "get_weather"})
    if fmt == "claude":
        return dict(body, tool_choice={"type": "tool", "name": "get_weather"})
    return dict(body, tool_choice={"type": "function", "function": {"name": "get_weather"}})


def forced_tool_of(fmt: str, body: dict) -> str | None:
    """The tool name the upstream body forces, if it forces exactly one."""
    if fmt == "gemini":
        cfg = body.get("toolConfig", {}).get("functionCallingConfig", {})
        names = cfg.get("allowedFunctionNames") or []
        return names[0] if cfg.get("mode") == "ANY" and len(names) == 1 else None
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    if fmt == "openai_chat":
        return choice.get("function", {}).get("name")
    return choice.get("name") if choice.get("type") in ("tool", "function") else None


@pairs
def test_forced_tool_choice(client, upstream):
    up = to_upstream(client, upstream, forced_tool_body(client))
    assert forced_tool_of(upstream, up) == "get_weather"


def parallel_body(fmt: str) -> dict:
    """Two calls of the same function, answered in order: Gemini must match them by order."""
    body = tools_body(fmt)
    turns = turns_of(fmt, body)
    if fmt == "gemini":
        turns[1]["parts"].append({"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}})
        turns[2]["parts"].append({"functionResponse": {
            "name": "get_weather", "response": {"result": "12C and rain"}}})
    elif fmt == "openai_responses":
        turns.insert(2, {"type": "function_call", "call_id": "call_def", "name": "get_weather",
                         "arguments": '{"city":"Lyon"}'})
        turns.append({"type": "function_call_output", "call_id": "call_def",
                      "output": "12C and rain"})
    elif fmt == "claude":
        turns[1]["content"].append({"type": "tool_use", "id": "toolu_def", "name": "get_weather",
                                    "input": {"city": "Lyon"}})
        turns[2]["content"].append({"type": "tool_result", "tool_use_id": "toolu_def",
                                    "content": "12C and rain"})
    else:
        turns[1]["tool_calls"].append({"id": "call_def", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city":"Lyon"}'}})
        turns.append({"role": "tool", "tool_call_id": "call_def", "content": "12C and rain"})
    return body


@pairs
def test_parallel_tool_calls_matched(client, upstream):
    up = to_upstream(client, upstream, parallel_body(client))
    calls, results = calls_and_results(upstream, up)
    assert [args["city"] for _, _, args in calls] == ["Paris", "Lyon"]
    assert len(results) == 2
    by_call = {}
    for i, (cid, _, _) in enumerate(calls):
        by_call[cid if upstream != "gemini" else i] = calls[i][2]["city"]
    for i, (rid, _, text) in enumerate(results):
        city = by_call[rid if upstream != "gemini" else i]
        assert ("18C and sunny" if city == "Paris" else "12C and rain") in text
    if upstream != "gemini":
        assert len({cid for cid, _, _ in calls}) == 2


def two_calls_answer(fmt: str) -> dict:
    body = upstream_answer(fmt, Answer(text="Checking both.", tool=("get_weather", {"city": "Paris"})))
    if fmt == "claude":
        body["content"].append({"type": "tool_use", "id": "toolu_02", "name": "get_weather",
                                "input": {"city": "Lyon"}})
    elif fmt == "openai_chat":
        body["choices"][0]["message"]["tool_calls"].append({
            "id": "call_up_2", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}})
    elif fmt == "openai_responses":
        body["output"].append({"type": "function_call", "id": "fc_2", "call_id": "call_up_2",
                               "name": "get_weather", "arguments": '{"city": "Lyon"}',
                               "status": "completed"})
    else:
        body["candidates"][0]["content"]["parts"].append(
            {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}})
    return body


def answer_call_ids(fmt: str, body: dict) -> list[str | None]:
    if fmt == "openai_chat":
        return [c["id"] for c in body["choices"][0]["message"]["tool_calls"]]
    if fmt == "openai_responses":
        return [o["call_id"] for o in body["output"] if o["type"] == "function_call"]
    if fmt == "claude":
        return [b["id"] for b in body["content"] if b["type"] == "tool_use"]
    return [p["functionCall"].get("id") for p in body["candidates"][0]["content"]["parts"]
            if "functionCall" in p]


@pairs
def test_two_tool_calls_in_answer_get_distinct_ids(client, upstream):
    out = to_client(client, upstream, tools_body(client), two_calls_answer(upstream))
    assert answer_tools(client, out) == [("get_weather", {"city": "Paris"}),
                                         ("get_weather", {"city": "Lyon"})]
    ids = answer_call_ids(client, out)
    assert all(ids) and len(set(ids)) == 2


@pytest.mark.parametrize("upstream", FORMATS)
def test_gemini_client_json_array_stream(upstream):
    """A Gemini client without ``alt=sse`` gets the same answer as a streamed JSON array."""
    request = decode_client("gemini", stream_body("gemini"), stream=True)
    parser, decoder = sse.Parser(), formats.codec(upstream).StreamDecoder()
    encoder = formats.codec("gemini").StreamEncoder(ctx_for(request))
    writer, pieces = sse.JSONArrayWriter(), []
    ir_events = []
    for wire_event in parser.feed(upstream_stream(upstream)) + parser.finish():
        ir_events += decoder.feed(wire_event)
    for event in ir_events + decoder.finish():
        pieces += [writer.feed(e.data) for e in encoder.feed(event)]
    pieces += [writer.feed(e.data) for e in encoder.finish()] + [writer.finish()]
    raw = b"".join(pieces)
    chunks = json.loads(raw)  # a well-formed JSON array
    array_parser, back_decoder, back = sse.JSONArrayParser(), formats.codec("gemini").StreamDecoder(), []
    for i in range(0, len(raw), 5):
        for obj in array_parser.feed(raw[i:i + 5]):
            back += back_decoder.feed(sse.Event(json.dumps(obj)))
    assert array_parser.complete and len(chunks) >= 2
    resp = aggregate.collect(back + back_decoder.finish())
    assert "".join(p.text for p in resp.parts if isinstance(p, ir.TextPart)) == "".join(STREAM_TEXT)
    assert [(p.name, json.loads(p.arguments)) for p in resp.parts
            if isinstance(p, ir.ToolCallPart)] == [("get_weather", {"city": "Paris"})]


def wire_invariants(fmt: str, raw: bytes, include_usage: bool) -> None:
    """Format rules of the client's stream that SDK parsers rely on."""
    events = sse.Parser().feed(raw)
    datas = [json.loads(e.data) for e in events if e.data != "[DONE]"]
    if fmt in ("claude", "openai_responses"):  # named events: the name repeats data.type
        assert [e.event for e in events] == [d["type"] for d in datas]
    if fmt == "openai_responses":
        assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
        assert datas[0]["type"] == "response.created"
    elif fmt == "claude":
        assert datas[0]["type"] == "message_start" and datas[-1]["type"] == "message_stop"
        starts = [d["index"] for d in datas if d["type"] == "content_block_start"]
        assert starts == list(range(len(starts)))
    elif fmt == "openai_chat":
        assert len({d["id"] for d in datas}) == 1
        assert datas[0]["choices"][0]["delta"]["role"] == "assistant"
        usage_chunks = [d for d in datas if not d["choices"]]
        assert len(usage_chunks) == (1 if include_usage else 0)
        assert all("error" not in d for d in datas)
    else:
        assert "usageMetadata" in datas[-1]


@pairs
@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "no-usage"])
def test_client_stream_wire_rules(client, upstream, include_usage):
    body = stream_body(client)
    if client == "openai_chat" and not include_usage:
        body.pop("stream_options")
    request = decode_client(client, body, stream=True)
    client_bytes, _ = run_stream(client, upstream, request)
    wire_invariants(client, client_bytes, include_usage)
