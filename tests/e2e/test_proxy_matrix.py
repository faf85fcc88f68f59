"""End to end: every client format (official SDKs) × every upstream kind (fake servers speaking
the providers' wire formats), for a plain turn, a streaming turn and a tool-call round trip.

Each cell asserts what the client got and what the upstream received: path, the configured key
in the provider's auth header, the upstream model name, and the translated body.
"""

from __future__ import annotations

import json
import re

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes
from harness import Daemon

from tests.e2e.stack import provider_config, start_fakes

CLIENT_KEY = "client-key-0123456789"
UPSTREAMS = {
    # client-visible alias → (fake kind, upstream model, configured key)
    "g-model": ("gemini", "gemini-2.5-flash", "gem-key-AAAA1111"),
    "c-model": ("claude", "claude-sonnet-4-5", "cla-key-BBBB2222"),
    "x-model": ("responses", "gpt-5", "cdx-key-CCCC3333"),
    "o-model": ("openai", "up-model", "oai-key-DDDD4444"),
}
CLIENTS = ("openai_chat", "openai_responses", "claude", "gemini")
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    fakes = start_fakes()
    config = {"api-keys": [CLIENT_KEY], **provider_config(fakes, UPSTREAMS)}
    daemon = Daemon(tmp_path_factory.mktemp("matrix"), config).start()
    yield daemon, fakes
    daemon.stop()
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def fake_for(stack):
    _, fakes = stack

    def get(alias: str):
        fake = fakes[UPSTREAMS[alias][0]]
        fake.set_reply()
        fake.set_mode("ok")
        fake.requests.clear()
        return fake

    return get


# -- client side: one small adapter per format ----------------------------------------------


class Client:
    """Drives one official SDK and normalises what it returns."""

    def __init__(self, fmt: str, url: str):
        self.fmt = fmt
        self.openai = openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0)
        self.anthropic = anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0)
        self.genai = genai.Client(api_key=CLIENT_KEY, http_options=gtypes.HttpOptions(
            base_url=url, api_version="v1beta"))

    def text(self, model: str, prompt: str, *, stream: bool, system: str | None = None) -> str:
        return getattr(self, f"_text_{self.fmt}")(model, prompt, stream, system)

    def _text_openai_chat(self, model, prompt, stream, system):
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}]
        if not stream:
            return self.openai.chat.completions.create(model=model, messages=messages) \
                .choices[0].message.content
        chunks = self.openai.chat.completions.create(model=model, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    def _text_openai_responses(self, model, prompt, stream, system):
        if not stream:
            return self.openai.responses.create(model=model, input=prompt,
                                                instructions=system).output_text
        with self.openai.responses.stream(model=model, input=prompt,
                                          instructions=system) as events:
            return events.get_final_response().output_text

    def _text_claude(self, model, prompt, stream, system):
        kw = dict(model=model, max_tokens=256, messages=[{"role": "user", "content": prompt}])
        if system:
            kw["system"] = system
        if not stream:
            return "".join(b.text for b in self.anthropic.messages.create(**kw).content
                           if b.type == "text")
        with self.anthropic.messages.stream(**kw) as events:
            return events.get_final_text()

    def _text_gemini(self, model, prompt, stream, system):
        config = gtypes.GenerateContentConfig(system_instruction=system) if system else None
        if not stream:
            return self.genai.models.generate_content(model=model, contents=prompt,
                                                      config=config).text
        return "".join(c.text or "" for c in self.genai.models.generate_content_stream(
            model=model, contents=prompt, config=config))

    # Tool round trip: ask with a tool, get the call, answer it, get the final text.

    def tool_call(self, model: str) -> tuple[str | None, str, dict]:
        """(call id, name, arguments) of the call the model made."""
        return getattr(self, f"_call_{self.fmt}")(model)

    def tool_result(self, model: str, call: tuple, result: str) -> str:
        return getattr(self, f"_result_{self.fmt}")(model, call, result)

    def _call_openai_chat(self, model):
        resp = self.openai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[{"type": "function", "function": WEATHER_TOOL}])
        call = resp.choices[0].message.tool_calls[0]
        assert resp.choices[0].finish_reason == "tool_calls"
        return call.id, call.function.name, json.loads(call.function.arguments)

    def _result_openai_chat(self, model, call, result):
        call_id, name, args = call
        resp = self.openai.chat.completions.create(model=model, tools=[
            {"type": "function", "function": WEATHER_TOOL}], messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}]},
            {"role": "tool", "tool_call_id": call_id, "content": result}])
        return resp.choices[0].message.content

    def _call_openai_responses(self, model):
        resp = self.openai.responses.create(model=model, input="Weather in Paris?",
                                            tools=[{"type": "function", **WEATHER_TOOL}])
        call = next(item for item in resp.output if item.type == "function_call")
        return call.call_id, call.name, json.loads(call.arguments)

    def _result_openai_responses(self, model, call, result):
        call_id, name, args = call
        resp = self.openai.responses.create(model=model, tools=[{"type": "function", **WEATHER_TOOL}],
                                            input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call_id, "name": name,
             "arguments": json.dumps(args)},
            {"type": "function_call_output", "call_id": call_id, "output": result}])
        return resp.output_text

    def _claude_tools(self):
        return [{"name": WEATHER_TOOL["name"], "description": WEATHER_TOOL["description"],
                 "input_schema": WEATHER_TOOL["parameters"]}]

    def _call_claude(self, model):
        resp = self.anthropic.messages.create(
            model=model, max_tokens=256, tools=self._claude_tools(),
            messages=[{"role": "user", "content": "Weather in Paris?"}])
        assert resp.stop_reason == "tool_use"
        block = next(b for b in resp.content if b.type == "tool_use")
        return block.id, block.name, block.input

    def _result_claude(self, model, call, result):
        call_id, name, args = call
        resp = self.anthropic.messages.create(model=model, max_tokens=256, tools=self._claude_tools(),
                                              messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": call_id, "name": name, "input": args}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call_id, "content": result}]}])
        return "".join(b.text for b in resp.content if b.type == "text")

    def _gemini_tools(self):
        return gtypes.GenerateContentConfig(tools=[gtypes.Tool(function_declarations=[
            gtypes.FunctionDeclaration(name=WEATHER_TOOL["name"],
                                       description=WEATHER_TOOL["description"],
                                       parameters_json_schema=WEATHER_TOOL["parameters"])])],
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True))

    def _call_gemini(self, model):
        resp = self.genai.models.generate_content(model=model, contents="Weather in Paris?",
                                                  config=self._gemini_tools())
        call = resp.function_calls[0]
        return call.id, call.name, dict(call.args)

    def _result_gemini(self, model, call, result):
        call_id, name, args = call
        contents = [
            gtypes.Content(role="user", parts=[gtypes.Part(text="Weather in Paris?")]),
            gtypes.Content(role="model", parts=[gtypes.Part(function_call=gtypes.FunctionCall(
                name=name, args=args))]),
            gtypes.Content(role="user", parts=[gtypes.Part(function_response=gtypes.FunctionResponse(
                name=name, response={"result": result}))]),
        ]
        return self.genai.models.generate_content(model=model, contents=contents,
                                                  config=self._gemini_tools()).text


# -- upstream side: what each provider must have received -------------------------------------


def assert_upstream_call(alias: str, request, *, stream: bool) -> None:
    kind, model, key = UPSTREAMS[alias]
    headers = request.headers
    if kind == "gemini":
        action = "streamGenerateContent" if stream else "generateContent"
        assert request.path == f"/v1beta/models/{model}:{action}"
        assert headers.get("x-goog-api-key") == key
        assert (request.query.get("alt") == "sse") is stream
    elif kind == "claude":
        assert request.path == "/v1/messages"
        assert headers.get("x-api-key") == key
        assert headers.get("anthropic-version") == "2023-06-01"
        assert request.body["model"] == model
    elif kind == "responses":
        assert request.path == "/v1/responses"
        assert headers.get("authorization") == f"Bearer {key}"
        assert request.body["model"] == model
    else:
        assert request.path == "/v1/chat/completions"
        assert headers.get("authorization") == f"Bearer {key}"
        assert request.body["model"] == model
        if stream:
            assert request.body["stream_options"]["include_usage"] is True
    assert CLIENT_KEY not in json.dumps(request.headers)  # the client's key never goes upstream


def upstream_texts(kind: str, body: dict) -> list[str]:
    """Every text the upstream was sent (system and messages), in its own format."""
    out: list[str] = []
    if kind == "gemini":
        for content in [body.get("systemInstruction") or {}] + body.get("contents", []):
            out += [p["text"] for p in content.get("parts", []) if "text" in p]
    elif kind == "claude":
        system = body.get("system")
        out += [system] if isinstance(system, str) else [b["text"] for b in system or []]
        for message in body["messages"]:
            content = message["content"]
            out += [content] if isinstance(content, str) else [
                b["text"] for b in content if b.get("type") == "text"]
    elif kind == "responses":
        if body.get("instructions"):
            out.append(body["instructions"])
        items = body["input"] if isinstance(body["input"], list) else [
            {"role": "user", "content": body["input"]}]
        for item in items:
            content = item.get("content")
            out += [content] if isinstance(content, str) else [
                p["text"] for p in content or [] if "text" in p]
    else:
        for message in body["messages"]:
            content = message.get("content")
            out += [content] if isinstance(content, str) else [
                p["text"] for p in content or [] if p.get("type") == "text"]
    return [t for t in out if t]


def upstream_tool_result(kind: str, body: dict) -> tuple[str | None, str]:
    """(call id or function name, result text) of the tool result the upstream was sent."""
    if kind == "gemini":
        for content in body["contents"]:
            for part in content.get("parts", []):
                if "functionResponse" in part:
                    fr = part["functionResponse"]
                    return fr["name"], json.dumps(fr["response"])
    elif kind == "claude":
        for message in body["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block.get("type") == "tool_result":
                    content = block["content"]
                    text = content if isinstance(content, str) else "".join(
                        b.get("text", "") for b in content)
                    return block["tool_use_id"], text
    elif kind == "responses":
        for item in body["input"]:
            if item.get("type") == "function_call_output":
                return item["call_id"], item["output"] if isinstance(item["output"], str) \
                    else json.dumps(item["output"])
    else:
        for message in body["messages"]:
            if message["role"] == "tool":
                content = message["content"]
                return message["tool_call_id"], content if isinstance(content, str) \
                    else "".join(p.get("text", "") for p in content)
    raise AssertionError(f"no tool result in the {kind} request: {body}")


def upstream_history_call_id(kind: str, body: dict) -> str:
    """The id of the assistant's tool call replayed in the conversation history."""
    if kind == "claude":
        return next(b["id"] for m in body["messages"] if isinstance(m["content"], list)
                    for b in m["content"] if b.get("type") == "tool_use")
    if kind == "responses":
        return next(i["call_id"] for i in body["input"] if i.get("type") == "function_call")
    return next(c["id"] for m in body["messages"] for c in m.get("tool_calls") or [])


CELLS = [(client, alias) for client in CLIENTS for alias in UPSTREAMS]
IDS = [f"{client}->{UPSTREAMS[alias][0]}" for client, alias in CELLS]


@pytest.mark.parametrize("client_fmt, alias", CELLS, ids=IDS)
def test_plain_turn(stack, fake_for, client_fmt, alias):
    daemon, _ = stack
    fake = fake_for(alias)
    text = Client(client_fmt, daemon.url).text(alias, "Say hello", stream=False,
                                               system="Be brief.")
    assert text == f"Hello from {UPSTREAMS[alias][1]}."
    (request,) = fake.requests
    assert_upstream_call(alias, request, stream=False)
    sent = upstream_texts(UPSTREAMS[alias][0], request.body)
    assert "Say hello" in sent and "Be brief." in sent


@pytest.mark.parametrize("client_fmt, alias", CELLS, ids=IDS)
def test_streaming_turn(stack, fake_for, client_fmt, alias):
    daemon, _ = stack
    fake = fake_for(alias)
    fake.set_reply(text="One, two, three, four, five.", chunks=5)
    text = Client(client_fmt, daemon.url).text(alias, "Count", stream=True)
    assert text == "One, two, three, four, five."
    (request,) = fake.requests
    assert_upstream_call(alias, request, stream=True)
    assert "Count" in upstream_texts(UPSTREAMS[alias][0], request.body)


@pytest.mark.parametrize("client_fmt, alias", CELLS, ids=IDS)
def test_tool_round_trip(stack, fake_for, client_fmt, alias):
    daemon, _ = stack
    kind = UPSTREAMS[alias][0]
    fake = fake_for(alias)
    fake.set_reply(tool_name="get_weather", tool_args={"city": "Paris"})
    client = Client(client_fmt, daemon.url)
    call = client.tool_call(alias)
    assert call[1:] == ("get_weather", {"city": "Paris"})

    fake.set_reply(text="It is sunny in Paris.")
    assert client.tool_result(alias, call, "sunny, 21C") == "It is sunny in Paris."
    first, second = fake.requests
    assert_upstream_call(alias, first, stream=False)
    tools = json.dumps(first.body)
    assert "get_weather" in tools and "city" in tools
    ref, text = upstream_tool_result(kind, second.body)
    assert "sunny, 21C" in text
    if kind == "gemini":
        assert ref == "get_weather"  # Gemini matches results by function name
    else:
        upstream_id = {"claude": "toolu_fake_1"}.get(kind, "call_fake_1")
        if client_fmt != "gemini":
            # The id the upstream chose travels to the client and back unchanged.
            assert ref == upstream_id
        # Gemini clients send no ids: the one derived for the result must match the call's.
        assert ref == upstream_history_call_id(kind, second.body)


def models_seen(client: Client, alias: str, stream: bool) -> set[str]:
    """Every model name the client's SDK shows for one answer (each chunk or event that has one;
    Gemini's is modelVersion)."""
    messages = [{"role": "user", "content": "Say hello"}]
    if client.fmt == "openai_chat":
        if not stream:
            return {client.openai.chat.completions.create(model=alias, messages=messages).model}
        return {c.model for c in client.openai.chat.completions.create(
            model=alias, messages=messages, stream=True)}
    if client.fmt == "claude":
        kw = dict(model=alias, max_tokens=64, messages=messages)
        if not stream:
            return {client.anthropic.messages.create(**kw).model}
        with client.anthropic.messages.stream(**kw) as events:
            seen = {e.message.model for e in events if e.type == "message_start"}
            return seen | {events.get_final_message().model}
    if client.fmt == "gemini":
        if not stream:
            return {client.genai.models.generate_content(model=alias, contents="Say hello")
                    .model_version}
        return {c.model_version for c in client.genai.models.generate_content_stream(
            model=alias, contents="Say hello")}
    if not stream:
        return {client.openai.responses.create(model=alias, input="Say hello").model}
    with client.openai.responses.stream(model=alias, input="Say hello") as events:
        return {e.response.model for e in events if hasattr(e, "response")}


SAME_FORMAT = [("openai_chat", "o-model"), ("claude", "c-model"), ("openai_responses", "x-model"),
               ("gemini", "g-model")]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("client_fmt, alias", SAME_FORMAT, ids=[c for c, _ in SAME_FORMAT])
def test_passed_through_answers_name_the_model_the_client_asked_for(stack, fake_for, client_fmt,
                                                                    alias, stream):
    """Client and upstream speak the same format, so the answer is passed through; like a
    translated one, it names the alias the client asked for, never the upstream's model, and
    a stream says the same as a whole answer."""
    daemon, _ = stack
    fake = fake_for(alias)
    assert models_seen(Client(client_fmt, daemon.url), alias, stream) == {alias}
    (request,) = fake.requests
    assert_upstream_call(alias, request, stream=stream)  # the upstream got its own name


def gc_counts(daemon: Daemon) -> tuple[int, int]:
    """(objects the cyclic collector freed, young-generation collections run) so far."""
    metrics = daemon.request("GET", "/metrics").body.decode()

    def value(pattern: str) -> int:
        return sum(int(float(v)) for v in re.findall(pattern, metrics, re.MULTILINE))

    return (value(r"^python_gc_objects_collected_total\{[^}]*\} (\S+)$"),
            value(r'^python_gc_collections_total\{generation="0"\} (\S+)$'))


@pytest.mark.parametrize("client_fmt", CLIENTS)
def test_finished_requests_leave_nothing_for_the_garbage_collector(stack, fake_for, client_fmt):
    """A reference cycle through a request's objects (handler, connection, answer) makes each
    request garbage that only the cyclic collector frees: some thirty objects a request, and
    under load those collections cost whole percents of the daemon's CPU.  Without cycles the
    daemon's collected count stays flat whatever the traffic."""
    daemon, _ = stack
    client = Client(client_fmt, daemon.url)
    (collected_before, runs_before), requests = gc_counts(daemon), 0
    for alias in UPSTREAMS:
        fake_for(alias)
        for stream in (False, True):
            for _ in range(12):
                assert client.text(alias, "Say hello", stream=stream)
                requests += 1
    collected, runs = (after - before for after, before in zip(gc_counts(daemon),
                                                               (collected_before, runs_before)))
    assert collected < requests, f"{collected} objects in reference cycles after {requests} requests"


def test_a_large_request_does_not_stop_for_the_garbage_collector(stack, fake_for):
    """The young generation's threshold is raised after start-up (`settle_garbage_collector`):
    at Python's default of 700, decoding a long conversation alone ran several collections,
    each walking every object the request had made so far."""
    daemon, _ = stack
    fake_for("o-model")
    client = Client("openai_chat", daemon.url)
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"}
                for i in range(801)]
    runs_before = gc_counts(daemon)[1]
    for _ in range(3):
        answer = client.openai.chat.completions.create(model="o-model", messages=messages)
        assert answer.choices[0].message.content
    runs = gc_counts(daemon)[1] - runs_before
    assert runs <= 1
