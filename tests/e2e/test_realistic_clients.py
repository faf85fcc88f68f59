"""End to end: the requests real tools send (Claude Code, Codex CLI, Gemini CLI, OpenAI chat apps),
through the running daemon, against every upstream kind.

Each test replays one tool's typical request (shapes taken from what those tools put on the wire:
cached system blocks, signed thinking history, strict schemas, encrypted reasoning items,
``parametersJsonSchema``, images, parallel tool calls ...) and asserts both what the client got
back and what the upstream received: the translated body must be what that provider's API
accepts, and nothing the user relies on may be lost or duplicated.  Same-format requests must
pass through untouched but for the model.
"""

from __future__ import annotations

import base64
import copy
import json

import anthropic
import openai
import pytest
from harness import Daemon

from tests.e2e.stack import provider_config, start_fakes

CLIENT_KEY = "client-key-realistic-0123"
UPSTREAMS = {
    # client-visible alias → (fake kind, upstream model, configured key)
    "g-model": ("gemini", "gemini-2.5-flash", "gem-key-RRRR1111"),
    "c-model": ("claude", "claude-sonnet-4-5", "cla-key-RRRR2222"),
    "x-model": ("responses", "gpt-5-codex", "cdx-key-RRRR3333"),
    "o-model": ("openai", "up-model", "oai-key-RRRR4444"),
}
KIND_ALIAS = {kind: alias for alias, (kind, _, _) in UPSTREAMS.items()}
ALL = sorted(KIND_ALIAS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    fakes = start_fakes()
    config = {"api-keys": [CLIENT_KEY], **provider_config(fakes, UPSTREAMS)}
    config["claude-api-key"][0]["headers"] = {"anthropic-beta": "provider-beta-1"}
    daemon = Daemon(tmp_path_factory.mktemp("realistic"), config).start()
    yield daemon, fakes
    daemon.stop()
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def upstream(stack):
    """``upstream(kind, **reply)`` → the fake of that kind, reset, answering ``reply``."""
    _, fakes = stack

    def get(kind: str, **reply):
        fake = fakes[kind]
        fake.set_reply(**reply)
        fake.set_mode("ok")
        fake.requests.clear()
        return fake

    return get


def only_request(fake):
    (request,) = fake.requests
    assert CLIENT_KEY not in json.dumps(request.headers)  # the client's key never goes upstream
    return request


def sse_data(raw: bytes) -> list[dict]:
    """The JSON ``data:`` payloads of an SSE body (comments and [DONE] skipped)."""
    out = []
    for frame in raw.decode().replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in frame.split("\n") if line.startswith("data:"))
        if data and data != "[DONE]":
            out.append(json.loads(data))
    return out


def schema_keys(schema) -> set[str]:
    """Every object key anywhere in a JSON value."""
    if isinstance(schema, dict):
        return set(schema) | {k for v in schema.values() for k in schema_keys(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in schema_keys(v)}
    return set()


# =============================================================================================
# Claude Code (anthropic SDK, streaming, signed thinking history, cached system, rich schemas)

EDIT_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object", "additionalProperties": False,
    "$defs": {"Edit": {"type": "object", "additionalProperties": False,
                       "properties": {"old_string": {"type": "string"},
                                      "new_string": {"type": "string"},
                                      "replace_all": {"type": "boolean", "default": False}},
                       "required": ["old_string", "new_string"]}},
    "properties": {"file_path": {"type": "string", "description": "Absolute path"},
                   "edits": {"type": "array", "items": {"$ref": "#/$defs/Edit"}, "minItems": 1},
                   "mode": {"anyOf": [{"type": "string", "enum": ["fast", "safe"]},
                                      {"type": "null"}]}},
    "required": ["file_path", "edits"],
}
BASH_SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
               "additionalProperties": False,
               "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
               "required": ["command"]}
CLAUDE_SIGNATURE = "EqQBCkYIBxgCKkBsigFromAnthropic"
CLAUDE_CODE_USER = ("user_0a1b2c_account_11111111-2222-3333-4444-555555555555_session_"
                    "66666666-7777-8888-9999-000000000000")
CLAUDE_CODE_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14," \
                    "fine-grained-tool-streaming-2025-05-14"


def claude_code_request(model: str) -> dict:
    """A Claude Code turn after two parallel Bash calls (one failed), thinking on."""
    return {
        "model": model, "max_tokens": 32000, "stream": True,
        "metadata": {"user_id": CLAUDE_CODE_USER},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Working directory: /repo. Be concise.",
             "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [
            {"name": "MultiEdit", "description": "Edit a file", "input_schema": EDIT_SCHEMA},
            {"name": "Bash", "description": "Run a command", "input_schema": BASH_SCHEMA,
             "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "Fix the failing test."}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Run the tests first.",
                 "signature": CLAUDE_SIGNATURE},
                {"type": "text", "text": "Running the tests."},
                {"type": "tool_use", "id": "toolu_01A", "name": "Bash",
                 "input": {"command": "pytest -q"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "Bash",
                 "input": {"command": "git status"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "is_error": True,
                 "content": [{"type": "text", "text": "1 failed"},
                             {"type": "text", "text": "FAILED test_x.py::test_a"}]},
                {"type": "tool_result", "tool_use_id": "toolu_01B",
                 "content": [{"type": "text", "text": "nothing to commit"}]},
                {"type": "text", "text": "continue", "cache_control": {"type": "ephemeral"}}]},
        ],
    }


def claude_code_turn(daemon, model: str):
    """Send the Claude Code turn with the anthropic SDK, streaming; the final message."""
    client = anthropic.Anthropic(base_url=daemon.url, api_key=CLIENT_KEY, max_retries=0)
    body = claude_code_request(model)
    kwargs = {k: v for k, v in body.items() if k not in ("model", "stream")}
    with client.messages.stream(model=model, extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS},
                                **kwargs) as events:
        return events.get_final_message()


def test_claude_code_to_claude_passes_through_with_its_beta_header(stack, upstream):
    daemon, _ = stack
    fake = upstream("claude", text="Fixed it.", thinking="The assert is off by one.",
                    signature="EqUpstreamSig")
    final = claude_code_turn(daemon, "c-model")
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "The assert is off by one."
    assert final.content[0].signature == "EqUpstreamSig"  # the client can replay it
    assert final.content[1].text == "Fixed it."

    request = only_request(fake)
    sent = copy.deepcopy(request.body)
    assert sent.pop("model") == "claude-sonnet-4-5"
    expected = claude_code_request("c-model")
    del expected["model"]
    assert sent == expected  # system cache_control, schemas, signed thinking, metadata: untouched
    betas = request.headers["anthropic-beta"].split(",")
    assert betas == ["provider-beta-1", *CLAUDE_CODE_BETAS.split(",")]
    assert request.headers["x-api-key"] == UPSTREAMS["c-model"][2]


def test_claude_code_to_gemini(stack, upstream):
    daemon, _ = stack
    fake = upstream("gemini", text="Fixed it.", thinking="Off by one.", signature="g-sig-1")
    final = claude_code_turn(daemon, "g-model")
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Off by one." and final.content[1].text == "Fixed it."

    body = only_request(fake).body
    assert body["systemInstruction"]["parts"] == [
        {"text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"text": "Working directory: /repo. Be concise."}]
    (decls,) = [t["functionDeclarations"] for t in body["tools"]]
    assert [d["name"] for d in decls] == ["MultiEdit", "Bash"]
    keys = schema_keys([d["parameters"] for d in decls])
    assert not {k for k in keys if k.startswith("$")} and "additionalProperties" not in keys
    edit = decls[0]["parameters"]["properties"]["edits"]["items"]  # the $ref, resolved
    assert set(edit["properties"]) == {"old_string", "new_string", "replace_all"}
    user, model, results = body["contents"]
    assert [p["text"] for p in user["parts"]] == ["<system-reminder>ctx</system-reminder>",
                                                  "Fix the failing test."]
    # The Claude signature means nothing to Gemini: the thought is not replayed.
    assert not any(p.get("thought") for p in model["parts"])
    assert CLAUDE_SIGNATURE not in json.dumps(body)
    assert [p["functionCall"]["args"] for p in model["parts"] if "functionCall" in p] == [
        {"command": "pytest -q"}, {"command": "git status"}]
    responses = [p["functionResponse"] for p in results["parts"] if "functionResponse" in p]
    assert responses == [
        {"name": "Bash", "response": {"error": "1 failed\nFAILED test_x.py::test_a"}},
        {"name": "Bash", "response": {"result": "nothing to commit"}}]
    assert results["parts"][-1] == {"text": "continue"}
    config = body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 10000, "includeThoughts": True}
    assert config["maxOutputTokens"] == 32000


def test_claude_code_to_codex(stack, upstream):
    daemon, _ = stack
    fake = upstream("responses", text="Fixed it.", thinking="Off by one.",
                    signature="gAAAAABupstream-encrypted")
    final = claude_code_turn(daemon, "x-model")
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature == "gAAAAABupstream-encrypted"
    assert final.content[1].text == "Fixed it."

    body = only_request(fake).body
    assert body["model"] == "gpt-5-codex" and body["stream"] is True
    assert body["instructions"] == ("You are Claude Code, Anthropic's official CLI for Claude."
                                    "\n\nWorking directory: /repo. Be concise.")
    assert [(t["name"], t["strict"]) for t in body["tools"]] == [("MultiEdit", False),
                                                                  ("Bash", False)]
    assert body["tools"][0]["parameters"] == EDIT_SCHEMA  # OpenAI takes full JSON Schema
    kinds = [i["type"] for i in body["input"]]
    assert "reasoning" not in kinds  # an Anthropic signature is no encrypted_content
    outputs = [(i["call_id"], i["output"]) for i in body["input"]
               if i["type"] == "function_call_output"]
    assert outputs == [("toolu_01A", "1 failed\nFAILED test_x.py::test_a"),
                       ("toolu_01B", "nothing to commit")]
    calls = [i["call_id"] for i in body["input"] if i["type"] == "function_call"]
    assert calls == ["toolu_01A", "toolu_01B"]
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}  # thoughts were asked for
    assert body["store"] is False and "reasoning.encrypted_content" in body["include"]
    assert body["max_output_tokens"] == 32000
    assert len(body["user"]) <= 64


def test_claude_code_to_openai_compatible(stack, upstream):
    daemon, _ = stack
    fake = upstream("openai", text="Fixed it.", thinking="Off by one.")
    final = claude_code_turn(daemon, "o-model")
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[1].text == "Fixed it."

    body = only_request(fake).body
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "system", "user", "assistant", "tool", "tool", "user"]
    assistant = body["messages"][3]
    assert [c["id"] for c in assistant["tool_calls"]] == ["toolu_01A", "toolu_01B"]
    tools = {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}
    assert set(tools) == {"toolu_01A", "toolu_01B"}
    # ~110 characters is more than compatible servers take (OpenRouter: 128, and Claude Code's
    # real ids are longer): a stable hash stands in.
    assert body["user"].startswith("user_") and len(body["user"]) <= 64
    assert CLAUDE_CODE_USER not in json.dumps(body)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("kind", ALL)
def test_claude_code_count_tokens(stack, upstream, kind):
    daemon, _ = stack
    fake = upstream(kind)
    body = claude_code_request(KIND_ALIAS[kind])
    del body["stream"], body["max_tokens"], body["metadata"]  # not count_tokens fields
    client = anthropic.Anthropic(base_url=daemon.url, api_key=CLIENT_KEY, max_retries=0)
    count = client.messages.count_tokens(extra_headers={"anthropic-beta": "token-counting-x"},
                                         **body)
    assert count.input_tokens > 0
    if kind in ("responses", "openai"):  # no count endpoint: a local estimate
        assert fake.requests == []
        return
    request = only_request(fake)
    if kind == "claude":
        assert request.path == "/v1/messages/count_tokens"
        assert request.headers["anthropic-beta"] == "provider-beta-1,token-counting-x"
        assert set(request.body) == {"model", "messages", "system", "tools", "thinking"}
        return
    assert request.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    (inner,) = request.body.values()  # {"generateContentRequest": {...}}, wrapped once
    assert set(request.body) == {"generateContentRequest"}
    assert inner["model"] == "models/gemini-2.5-flash"
    assert set(inner) == {"model", "contents", "systemInstruction", "tools"}


# =============================================================================================
# Codex CLI (openai SDK, Responses API, streaming, encrypted reasoning, strict tools)

SHELL_TOOL = {"type": "function", "name": "shell", "description": "Run a shell command",
              "strict": True,
              "parameters": {"type": "object", "additionalProperties": False,
                             "properties": {"command": {"type": "array",
                                                        "items": {"type": "string"}},
                                            "workdir": {"type": ["string", "null"]}},
                             "required": ["command", "workdir"]}}
CODEX_INPUT = [
    {"type": "message", "role": "developer",
     "content": [{"type": "input_text", "text": "<permissions>workspace-write</permissions>"}]},
    {"type": "message", "role": "user",
     "content": [{"type": "input_text", "text": "<environment_context>/repo</environment_context>"}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List files"}]},
    {"type": "reasoning", "id": "rs_01", "summary": [{"type": "summary_text",
                                                       "text": "**Listing** the files"}],
     "encrypted_content": "gAAAAABcodex-encrypted-1"},
    {"type": "function_call", "id": "fc_01", "call_id": "call_1", "name": "shell",
     "arguments": "{\"command\":[\"ls\"],\"workdir\":null}"},
    {"type": "function_call", "id": "fc_02", "call_id": "call_2", "name": "shell",
     "arguments": "{\"command\":[\"pwd\"],\"workdir\":\"/repo\"}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "a.py\nb.py"},
    {"type": "function_call_output", "call_id": "call_2", "output": "/repo"},
]


def codex_request(model: str) -> dict:
    return {"model": model, "instructions": "You are Codex, a coding agent.",
            "input": copy.deepcopy(CODEX_INPUT), "tools": [SHELL_TOOL], "tool_choice": "auto",
            "parallel_tool_calls": True, "reasoning": {"effort": "high", "summary": "auto"},
            "store": False, "stream": True, "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "019a-session-key"}


def codex_turn(daemon, model: str):
    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    body = codex_request(model)
    body.pop("stream")
    events = list(client.responses.create(stream=True, **body))
    assert events[-1].type == "response.completed"
    return events, events[-1].response


PARALLEL = (("shell", {"command": ["cat", "a.py"], "workdir": None}),
            ("shell", {"command": ["cat", "b.py"], "workdir": None}))


def assert_codex_client_output(response, *, encrypted: str | None) -> None:
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "function_call", "function_call"]
    reasoning = response.output[0]
    assert [s.text for s in reasoning.summary] == ["Reading both."]
    assert reasoning.encrypted_content == encrypted
    calls = response.output[1:]
    assert len({c.call_id for c in calls}) == 2  # two distinct ids to answer
    assert [json.loads(c.arguments) for c in calls] == [dict(a) for _, a in PARALLEL]


def test_codex_to_codex_passes_through(stack, upstream):
    daemon, _ = stack
    fake = upstream("responses", tool_calls=PARALLEL, thinking="Reading both.",
                    signature="gAAAAABnext")
    _, response = codex_turn(daemon, "x-model")
    assert_codex_client_output(response, encrypted="gAAAAABnext")
    sent = copy.deepcopy(only_request(fake).body)
    assert sent.pop("model") == "gpt-5-codex"
    expected = codex_request("x-model")
    del expected["model"]
    assert sent == expected


def test_codex_to_claude(stack, upstream):
    daemon, _ = stack
    fake = upstream("claude", tool_calls=PARALLEL, thinking="Reading both.", signature="EqSig")
    events, response = codex_turn(daemon, "c-model")
    assert_codex_client_output(response, encrypted="EqSig")
    assert [e.type for e in events].count("response.function_call_arguments.done") == 2

    body = only_request(fake).body
    assert body["system"] == [{"type": "text", "text": "You are Codex, a coding agent."},
                              {"type": "text", "text": "<permissions>workspace-write</permissions>"}]
    assistant = body["messages"][2]
    assert assistant["role"] == "assistant"
    # OpenAI's encrypted reasoning is not an Anthropic signature: not replayed ...
    assert "gAAAAAB" not in json.dumps(body)
    assert [b["type"] for b in assistant["content"]] == ["tool_use", "tool_use"]
    # ... and Anthropic refuses thinking when the last tool-calling turn has no signed thinking.
    assert "thinking" not in body
    results = body["messages"][3]["content"]
    assert [(r["tool_use_id"], r["content"]) for r in results] == [("call_1", "a.py\nb.py"),
                                                                  ("call_2", "/repo")]
    assert body["tools"] == [{"name": "shell", "description": "Run a shell command",
                              "input_schema": SHELL_TOOL["parameters"], "strict": True}]
    assert body["tool_choice"] == {"type": "auto"} and body["stream"] is True


def test_codex_to_gemini_before_gemini_3_gets_a_budget(stack, upstream):
    daemon, _ = stack
    fake = upstream("gemini", tool_calls=PARALLEL, thinking="Reading both.", signature="g-sig")
    _, response = codex_turn(daemon, "g-model")
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "function_call", "function_call"]
    assert [json.loads(c.arguments) for c in response.output[1:]] == [dict(a) for _, a in PARALLEL]

    body = only_request(fake).body
    # gemini-2.5 refuses thinkingLevel ("Thinking level is not supported for this model").
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576,
                                                          "includeThoughts": True}
    model_turn = body["contents"][1]
    assert [p["functionCall"]["args"] for p in model_turn["parts"]] == [
        {"command": ["ls"], "workdir": None}, {"command": ["pwd"], "workdir": "/repo"}]
    responses = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert responses == [{"name": "shell", "response": {"result": "a.py\nb.py"}},
                         {"name": "shell", "response": {"result": "/repo"}}]
    workdir = body["tools"][0]["functionDeclarations"][0]["parameters"]["properties"]["workdir"]
    assert workdir == {"type": "STRING", "nullable": True}


def test_codex_to_openai_compatible(stack, upstream):
    daemon, _ = stack
    fake = upstream("openai", tool_calls=PARALLEL, thinking="Reading both.")
    _, response = codex_turn(daemon, "o-model")
    assert [item.type for item in response.output] == ["reasoning", "function_call",
                                                        "function_call"]
    body = only_request(fake).body
    assert [m["role"] for m in body["messages"]] == ["system", "developer", "user", "user",
                                                     "assistant", "tool", "tool"]
    assert [c["id"] for c in body["messages"][4]["tool_calls"]] == ["call_1", "call_2"]
    assert body["reasoning_effort"] == "high" and body["parallel_tool_calls"] is True
    assert body["prompt_cache_key"] == "019a-session-key"
    assert body["tools"][0]["function"]["strict"] is True
    assert "include" not in body and "gAAAAAB" not in json.dumps(body)


# =============================================================================================
# Gemini CLI (raw JSON to :streamGenerateContent?alt=sse)

GEMINI_CLI_BODY = {
    "systemInstruction": {"role": "user", "parts": [{"text": "You are Gemini CLI."}]},
    "tools": [{"functionDeclarations": [
        {"name": "read_file", "description": "Read a file",
         "parametersJsonSchema": {"type": "object", "required": ["absolute_path"],
                                  "properties": {"absolute_path": {"type": "string"},
                                                 "offset": {"type": "number"}}}},
        {"name": "run_shell_command", "description": "Run a command",
         "parametersJsonSchema": {"type": "object", "required": ["command"],
                                  "properties": {"command": {"type": "string"}}}}]}],
    "generationConfig": {"temperature": 0, "topP": 1,
                         "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}},
    "contents": [
        {"role": "user", "parts": [{"text": "Read README.md and run the tests"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "read_file", "args": {"absolute_path": "/r/README.md"}},
             "thoughtSignature": "gemini-sig-1"},
            {"functionCall": {"name": "run_shell_command", "args": {"command": "pytest"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {"output": "# Title"}}},
            {"functionResponse": {"name": "run_shell_command",
                                  "response": {"output": "3 passed"}}}]},
    ],
}


def gemini_cli_turn(daemon, model: str) -> list[dict]:
    resp = daemon.request("POST", f"/v1beta/models/{model}:streamGenerateContent?alt=sse",
                          headers={"x-goog-api-key": CLIENT_KEY}, json_body=GEMINI_CLI_BODY)
    assert resp.status == 200, resp.body
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return sse_data(resp.body)


def gemini_parts(chunks: list[dict]) -> list[dict]:
    return [p for c in chunks for p in c["candidates"][0]["content"].get("parts", [])]


def gemini_texts(parts: list[dict]) -> tuple[str, str, list[str]]:
    """(thought text, answer text, thought signatures) of streamed parts."""
    thought = "".join(p["text"] for p in parts if p.get("thought"))
    answer = "".join(p.get("text", "") for p in parts if not p.get("thought"))
    return thought, answer, [p["thoughtSignature"] for p in parts if "thoughtSignature" in p]


def test_gemini_cli_to_gemini_passes_through(stack, upstream):
    daemon, _ = stack
    fake = upstream("gemini", text="All good.", thinking="Summarise.", signature="g-sig-2")
    chunks = gemini_cli_turn(daemon, "g-model")
    assert gemini_texts(gemini_parts(chunks)) == ("Summarise.", "All good.", ["g-sig-2"])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    request = only_request(fake)
    assert request.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert request.body == GEMINI_CLI_BODY


def test_gemini_cli_to_claude(stack, upstream):
    daemon, _ = stack
    fake = upstream("claude", text="All good.", thinking="Summarise.", signature="EqSig2")
    parts = gemini_parts(gemini_cli_turn(daemon, "c-model"))
    # The signature travels with the thought, so a history sent back can be replayed to Claude.
    assert gemini_texts(parts) == ("Summarise.", "All good.", ["EqSig2"])

    body = only_request(fake).body
    assert body["system"] == "You are Gemini CLI."
    calls = body["messages"][1]["content"]
    results = body["messages"][2]["content"]
    assert [c["name"] for c in calls] == ["read_file", "run_shell_command"]
    # Gemini sends no ids: the ones made up for the calls answer them, in order.
    assert [r["tool_use_id"] for r in results] == [c["id"] for c in calls]
    assert len({c["id"] for c in calls}) == 2
    assert [json.loads(r["content"]) for r in results] == [{"output": "# Title"},
                                                           {"output": "3 passed"}]
    # Mid tool loop without Anthropic-signed thinking: thinking must be off or Anthropic 400s;
    # then the client's temperature 0 can be kept.
    assert "thinking" not in body and body["temperature"] == 0
    assert "top_p" not in body  # Claude 4.5+ refuses temperature and top_p together
    assert body["tools"][0]["input_schema"] == \
        GEMINI_CLI_BODY["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]


def test_gemini_cli_to_codex(stack, upstream):
    daemon, _ = stack
    fake = upstream("responses", text="All good.", thinking="Summarise.", signature="gAAAAABx")
    parts = gemini_parts(gemini_cli_turn(daemon, "x-model"))
    assert gemini_texts(parts) == ("Summarise.", "All good.", ["gAAAAABx"])

    body = only_request(fake).body
    assert body["instructions"] == "You are Gemini CLI."
    calls = [i for i in body["input"] if i["type"] == "function_call"]
    outputs = [i for i in body["input"] if i["type"] == "function_call_output"]
    assert [o["call_id"] for o in outputs] == [c["call_id"] for c in calls]
    assert [json.loads(o["output"]) for o in outputs] == [{"output": "# Title"},
                                                          {"output": "3 passed"}]
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    # Gemini CLI's temperature 0 / topP 1 would make an OpenAI reasoning model refuse the call.
    assert "temperature" not in body and "top_p" not in body
    assert [t["name"] for t in body["tools"]] == ["read_file", "run_shell_command"]


def test_gemini_cli_to_openai_compatible(stack, upstream):
    daemon, _ = stack
    fake = upstream("openai", text="All good.")
    parts = gemini_parts(gemini_cli_turn(daemon, "o-model"))
    assert gemini_texts(parts) == ("", "All good.", [])
    body = only_request(fake).body
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    ids = [c["id"] for c in body["messages"][2]["tool_calls"]]
    assert [m["tool_call_id"] for m in body["messages"][3:]] == ids
    assert body["temperature"] == 0 and body["top_p"] == 1
    assert body["reasoning_effort"] == "medium"


# =============================================================================================
# OpenAI chat apps (images, structured output, stop, seed, logprobs, parallel calls, suffix)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
CAT_URL = "https://example.com/cat.jpg"
ANSWER_SCHEMA = {"type": "object", "properties": {"animals": {"type": "array",
                                                              "items": {"type": "string"}}},
                 "required": ["animals"], "additionalProperties": False}


def chat_request(model: str) -> dict:
    return {
        "model": model, "seed": 7, "stop": ["END"], "max_completion_tokens": 4000,
        "reasoning_effort": "low", "logprobs": True, "top_logprobs": 2,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "strict": True, "schema": ANSWER_SCHEMA}},
        "tools": [{"type": "function", "function": {
            "name": "lookup", "parameters": {"type": "object", "required": ["q"],
                                             "properties": {"q": {"type": "string"}}}}}],
        "messages": [
            {"role": "developer", "content": "Answer in JSON."},
            {"role": "user", "content": [
                {"type": "text", "text": "What animals are these?"},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
                {"type": "image_url", "image_url": {"url": CAT_URL, "detail": "high"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "lookup", "arguments": "{\"q\":\"first\"}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "lookup", "arguments": "{\"q\":\"second\"}"}}]},
            {"role": "tool", "tool_call_id": "call_a", "content": "a cat"},
            {"role": "tool", "tool_call_id": "call_b", "content": "{\"animal\": \"dog\"}"},
        ],
    }


def chat_turn(daemon, model: str, **extra):
    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    body = chat_request(model)
    body.update(extra)
    return client.chat.completions.create(**body)


ANSWER = json.dumps({"animals": ["cat", "dog"]})


@pytest.mark.parametrize("kind", ALL)
def test_chat_app_client_gets_the_answer(stack, upstream, kind):
    daemon, _ = stack
    upstream(kind, text=ANSWER)
    resp = chat_turn(daemon, KIND_ALIAS[kind])
    assert json.loads(resp.choices[0].message.content) == {"animals": ["cat", "dog"]}
    assert resp.choices[0].finish_reason == "stop" and resp.model == KIND_ALIAS[kind]
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


def test_chat_app_to_openai_compatible_passes_through(stack, upstream):
    daemon, _ = stack
    fake = upstream("openai", text=ANSWER)
    chat_turn(daemon, "o-model")
    sent = copy.deepcopy(only_request(fake).body)
    assert sent.pop("model") == "up-model"
    expected = chat_request("o-model")
    del expected["model"]
    assert sent == expected  # logprobs, seed, developer role, images: all as sent


def test_chat_app_to_claude(stack, upstream):
    daemon, _ = stack
    fake = upstream("claude", text=ANSWER)
    chat_turn(daemon, "c-model")
    body = only_request(fake).body
    assert body["system"] == [{"type": "text", "text": "Answer in JSON."}]
    images = [b for b in body["messages"][0]["content"] if b["type"] == "image"]
    assert [i["source"] for i in images] == [
        {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
        {"type": "url", "url": CAT_URL}]
    calls = [b for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
    assert [(c["id"], c["input"]) for c in calls] == [("call_a", {"q": "first"}),
                                                      ("call_b", {"q": "second"})]
    (results,) = [m for m in body["messages"][2:]]
    assert [(r["tool_use_id"], r["content"]) for r in results["content"]] == [
        ("call_a", "a cat"), ("call_b", "{\"animal\": \"dog\"}")]
    assert body["stop_sequences"] == ["END"] and body["max_tokens"] == 4000
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": ANSWER_SCHEMA}}
    # A chat history carries no Anthropic-signed thinking before its tool calls: thinking off.
    assert "thinking" not in body
    assert not {"seed", "logprobs", "top_logprobs", "n"} & set(body)


def test_chat_app_to_gemini(stack, upstream):
    daemon, _ = stack
    fake = upstream("gemini", text=ANSWER)
    chat_turn(daemon, "g-model")
    body = only_request(fake).body
    assert body["systemInstruction"] == {"parts": [{"text": "Answer in JSON."}]}
    parts = body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png",
                                       "data": base64.b64encode(PNG).decode()}}
    assert parts[2] == {"fileData": {"mimeType": "image/jpeg", "fileUri": CAT_URL}}
    responses = [p["functionResponse"] for p in body["contents"][2]["parts"]]
    assert responses == [{"name": "lookup", "response": {"result": "a cat"}},
                         {"name": "lookup", "response": {"animal": "dog"}}]
    config = body["generationConfig"]
    assert config["seed"] == 7 and config["stopSequences"] == ["END"]
    assert config["maxOutputTokens"] == 4000
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == ANSWER_SCHEMA
    assert config["thinkingConfig"] == {"thinkingBudget": 1024}  # "low" on a 2.5 model


def test_chat_app_to_codex(stack, upstream):
    daemon, _ = stack
    fake = upstream("responses", text=ANSWER)
    chat_turn(daemon, "x-model")
    body = only_request(fake).body
    assert body["input"][0] == {"type": "message", "role": "developer",
                                "content": [{"type": "input_text", "text": "Answer in JSON."}]}
    images = [c for c in body["input"][1]["content"] if c["type"] == "input_image"]
    assert [(i["image_url"], i["detail"]) for i in images] == [(PNG_URL, "auto"),
                                                                (CAT_URL, "high")]
    outputs = [(i["call_id"], i["output"]) for i in body["input"]
               if i["type"] == "function_call_output"]
    assert outputs == [("call_a", "a cat"), ("call_b", "{\"animal\": \"dog\"}")]
    assert body["text"]["format"] == {"type": "json_schema", "name": "answer",
                                      "schema": ANSWER_SCHEMA, "strict": True}
    assert body["reasoning"] == {"effort": "low"} and body["max_output_tokens"] == 4000


@pytest.mark.parametrize("kind", [kind for kind in ALL if kind != "openai"])
def test_chat_app_n_2_is_a_clear_400(stack, upstream, kind):
    daemon, _ = stack
    fake = upstream(kind)
    with pytest.raises(openai.BadRequestError) as caught:
        chat_turn(daemon, KIND_ALIAS[kind], n=2)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "n" and "n" in caught.value.body["message"]
    assert fake.requests == []  # nothing went upstream


def test_chat_app_n_2_passes_through_to_a_chat_upstream(stack, upstream):
    """Only a translation needs one choice: a Chat upstream gets ``n`` as the client sent it."""
    daemon, _ = stack
    fake = upstream("openai")
    answer = chat_turn(daemon, KIND_ALIAS["openai"], n=2)
    assert answer.choices[0].message.content
    assert fake.requests[-1].body["n"] == 2


@pytest.mark.parametrize("kind", ALL)
def test_chat_app_streams_parallel_tool_calls_and_reasoning(stack, upstream, kind):
    daemon, _ = stack
    upstream(kind, tool_calls=(("lookup", {"q": "cat"}), ("lookup", {"q": "dog"})),
             thinking="Two lookups.", signature="gAAAAABsig" if kind == "responses" else "sig")
    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    chunks = list(client.chat.completions.create(
        model=KIND_ALIAS[kind], stream=True, messages=[{"role": "user", "content": "Look up"}],
        tools=chat_request("m")["tools"]))
    calls: dict[int, dict] = {}
    reasoning = ""
    for chunk in chunks:
        for choice in chunk.choices:
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": "", "args": ""})
                slot["id"] = slot["id"] or call.id
                slot["name"] += call.function.name or ""
                slot["args"] += call.function.arguments or ""
    assert sorted(calls) == [0, 1]
    assert [(c["name"], json.loads(c["args"])) for c in calls.values()] == [
        ("lookup", {"q": "cat"}), ("lookup", {"q": "dog"})]
    assert calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"]
    assert reasoning == "Two lookups."
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]


@pytest.mark.parametrize("kind, field, expected", [
    ("claude", "thinking", {"type": "enabled", "budget_tokens": 24576}),
    ("gemini", "generationConfig", {"thinkingConfig": {"thinkingBudget": 24576}}),
    ("responses", "reasoning", {"effort": "high"}),
    ("openai", "reasoning_effort", "high"),
])
def test_model_suffix_sets_reasoning_for_every_upstream(stack, upstream, kind, field, expected):
    daemon, _ = stack
    fake = upstream(kind, text="ok")
    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    resp = client.chat.completions.create(model=KIND_ALIAS[kind] + "(high)",
                                          messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "ok"
    request = only_request(fake)
    assert request.body[field] == expected
    if kind == "gemini":
        assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    else:
        assert request.body["model"] == UPSTREAMS[KIND_ALIAS[kind]][1]


# =============================================================================================
# Every client format × every upstream: an answer with reasoning and two parallel tool calls

LOOKUPS = (("lookup", {"q": "cat"}), ("lookup", {"q": "dog"}))
LOOKUP_SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def _answer_openai_chat(daemon, model: str, stream: bool):
    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    kw = dict(model=model, messages=[{"role": "user", "content": "Look up"}],
              tools=[{"type": "function", "function": {"name": "lookup",
                                                       "parameters": LOOKUP_SCHEMA}}])
    if not stream:
        message = client.chat.completions.create(**kw).choices[0].message
        calls = [(c.id, c.function.name, json.loads(c.function.arguments))
                 for c in message.tool_calls]
        return getattr(message, "reasoning_content", None) or "", calls
    reasoning, slots = "", {}
    for chunk in client.chat.completions.create(stream=True, **kw):
        for choice in chunk.choices:
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            for call in choice.delta.tool_calls or []:
                slot = slots.setdefault(call.index, ["", "", ""])
                slot[0] = slot[0] or call.id
                slot[1] += call.function.name or ""
                slot[2] += call.function.arguments or ""
    return reasoning, [(i, n, json.loads(a)) for i, n, a in (slots[k] for k in sorted(slots))]


def _answer_openai_responses(daemon, model: str, stream: bool):
    client = openai.OpenAI(base_url=daemon.url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    kw = dict(model=model, input="Look up",
              tools=[{"type": "function", "name": "lookup", "parameters": LOOKUP_SCHEMA,
                      "strict": False}])
    if stream:
        with client.responses.stream(**kw) as events:
            response = events.get_final_response()
    else:
        response = client.responses.create(**kw)
    reasoning = "".join(s.text for item in response.output if item.type == "reasoning"
                        for s in item.summary)
    calls = [(i.call_id, i.name, json.loads(i.arguments)) for i in response.output
             if i.type == "function_call"]
    return reasoning, calls


def _answer_claude(daemon, model: str, stream: bool):
    client = anthropic.Anthropic(base_url=daemon.url, api_key=CLIENT_KEY, max_retries=0)
    kw = dict(model=model, max_tokens=4096, messages=[{"role": "user", "content": "Look up"}],
              thinking={"type": "enabled", "budget_tokens": 2048},
              tools=[{"name": "lookup", "input_schema": LOOKUP_SCHEMA}])
    if stream:
        with client.messages.stream(**kw) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**kw)
    assert message.stop_reason == "tool_use"
    reasoning = "".join(b.thinking for b in message.content if b.type == "thinking")
    return reasoning, [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]


def _answer_gemini(daemon, model: str, stream: bool):
    body = {"contents": [{"role": "user", "parts": [{"text": "Look up"}]}],
            "tools": [{"functionDeclarations": [{"name": "lookup",
                                                 "parametersJsonSchema": LOOKUP_SCHEMA}]}],
            "generationConfig": {"thinkingConfig": {"includeThoughts": True,
                                                    "thinkingBudget": 2048}}}
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    resp = daemon.request("POST", f"/v1beta/models/{model}:{action}",
                          headers={"x-goog-api-key": CLIENT_KEY}, json_body=body)
    assert resp.status == 200, resp.body
    parts = gemini_parts(sse_data(resp.body) if stream else [resp.json()])
    reasoning = "".join(p["text"] for p in parts if p.get("thought"))
    calls = [(p["functionCall"].get("id"), p["functionCall"]["name"], p["functionCall"]["args"])
             for p in parts if "functionCall" in p]
    return reasoning, calls


CLIENT_FORMATS = ("openai_chat", "openai_responses", "claude", "gemini")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("client_fmt", CLIENT_FORMATS)
def test_reasoning_and_parallel_calls_reach_every_client(stack, upstream, client_fmt, kind,
                                                         stream):
    daemon, _ = stack
    signature = "gAAAAABsig" if kind == "responses" else "sig-1"
    upstream(kind, tool_calls=LOOKUPS, thinking="Two lookups.", signature=signature)
    reasoning, calls = globals()[f"_answer_{client_fmt}"](daemon, KIND_ALIAS[kind], stream)
    assert reasoning == "Two lookups."
    assert [(name, args) for _, name, args in calls] == [("lookup", {"q": "cat"}),
                                                         ("lookup", {"q": "dog"})]
    ids = [call_id for call_id, _, _ in calls]
    if (client_fmt, kind) == ("gemini", "gemini"):
        assert ids == [None, None]  # passthrough: Gemini's own answer, which has no ids
    else:
        assert all(ids) and len(set(ids)) == 2  # each call can be answered by its own id


@pytest.mark.parametrize("kind, client_reasoning, field, expected", [
    # Claude Code's "ultrathink" budget is over Gemini 2.5 Flash's maximum.
    ("gemini", {"thinking": {"type": "enabled", "budget_tokens": 31999}},
     "generationConfig", {"thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}}),
    # gpt-5-codex has no "minimal" effort (OpenAI: "Unsupported value").
    ("responses", {"thinking": {"type": "enabled", "budget_tokens": 512}},
     "reasoning", {"effort": "low", "summary": "auto"}),
])
def test_reasoning_is_fitted_to_the_catalogued_upstream_model(stack, upstream, kind,
                                                              client_reasoning, field, expected):
    daemon, _ = stack
    fake = upstream(kind, text="ok")
    client = anthropic.Anthropic(base_url=daemon.url, api_key=CLIENT_KEY, max_retries=0)
    with client.messages.stream(model=KIND_ALIAS[kind], max_tokens=40000,
                                messages=[{"role": "user", "content": "think hard"}],
                                **client_reasoning) as events:
        assert events.get_final_text() == "ok"
    body = only_request(fake).body
    got = body[field]
    if kind == "gemini":
        got = {"thinkingConfig": got["thinkingConfig"]}
    assert got == expected
