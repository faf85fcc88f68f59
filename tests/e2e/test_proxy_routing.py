"""End to end: routing (prefix, alias, exclusions, strategies), failover and cooldown, listings,
token counting, and what clients get when things go wrong (unknown model, bad body, dead or
broken upstream, client disconnect), each in the client's own format."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time

import anthropic
import openai
import pytest
import tornado.web
from harness import Daemon, free_port

from tests.fakes.server import BackgroundServer
from tests.fakes.upstreams import start_fake

KEY = "client-key-routing-0001"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def claude_fake():
    fake = start_fake("claude")
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def openai_fake():
    fake = start_fake("openai")
    yield fake
    fake.stop()


@pytest.fixture
def fresh(claude_fake, openai_fake):
    for fake in (claude_fake, openai_fake):
        fake.requests.clear()
        fake.set_mode("ok")
        fake.set_reply()
        fake.state._by_key.clear()
        fake.state._queue.clear()
    return claude_fake, openai_fake


def claude_keys(fake, *keys, **extra):
    return [{"api-key": k, "base-url": fake.base_url, **extra} for k in keys]


def chat(daemon: Daemon, model: str, **extra):
    return daemon.request("POST", "/v1/chat/completions", headers=AUTH,
                          json_body={"model": model, **CHAT, **extra})


def keys_used(fake) -> list[str]:
    return [r.headers.get("x-api-key") for r in fake.requests]


# -- routing ----------------------------------------------------------------------------------


def test_prefix_and_alias_routing(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": [
        {"api-key": "key-plain-0001", "base-url": fake.base_url,
         "models": [{"name": "claude-sonnet-4-5-20250929", "alias": "sonnet"}]},
        {"api-key": "key-teama-0002", "base-url": fake.base_url, "prefix": "team-a",
         "models": [{"name": "claude-opus-4-1-20250805", "alias": "sonnet"}]},
    ]})
    assert chat(d, "team-a/sonnet").status == 200
    assert keys_used(fake) == ["key-teama-0002"]
    assert fake.requests[-1].body["model"] == "claude-opus-4-1-20250805"
    listed = {m["id"] for m in d.request("GET", "/v1/models", headers=AUTH).json()["data"]}
    assert {"sonnet", "team-a/sonnet"} <= listed
    assert "claude-opus-4-1-20250805" not in listed  # an aliased model is listed by its alias
    assert chat(d, "claude-opus-4-1-20250805").status == 404  # the upstream name is not routable


def test_force_model_prefix_limits_unprefixed_names(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "force-model-prefix": True, "claude-api-key": [
        {"api-key": "key-teama-0002", "base-url": fake.base_url, "prefix": "team-a",
         "models": [{"name": "claude-sonnet-4-5", "alias": "sonnet"}]}]})
    assert chat(d, "sonnet").status == 404
    assert fake.requests == []
    assert chat(d, "team-a/sonnet").status == 200


def test_excluded_models_are_not_listed_nor_routed(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(
        fake, "key-excl-0001", **{"excluded-models": ["*haiku*", "claude-opus-4-1*"]})})
    listed = {m["id"] for m in d.request("GET", "/v1/models", headers=AUTH).json()["data"]}
    assert listed and not any("haiku" in m or m.startswith("claude-opus-4-1") for m in listed)
    assert any(m.startswith("claude-sonnet") for m in listed)
    r = chat(d, "claude-haiku-4-5")
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"
    assert fake.requests == []


def test_round_robin_spreads_over_three_keys(daemon, fresh):
    fake, _ = fresh
    keys = ["key-rr-000001", "key-rr-000002", "key-rr-000003"]
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, *keys)})
    for _ in range(6):
        assert chat(d, "claude-sonnet-4-5").status == 200
    used = keys_used(fake)
    assert sorted(used) == sorted(keys * 2)
    assert used[:3] != used[1:4] and len(set(used[:3])) == 3


def test_fill_first_uses_the_first_key_until_it_fails(daemon, fresh):
    fake, _ = fresh
    keys = ["key-ff-000001", "key-ff-000002", "key-ff-000003"]
    d = daemon({"api-keys": [KEY], "routing": {"strategy": "fill-first"},
                "claude-api-key": claude_keys(fake, *keys)})
    for _ in range(3):
        assert chat(d, "claude-sonnet-4-5").status == 200
    assert keys_used(fake) == [keys[0]] * 3
    fake.set_mode("429", key=keys[0], retry_after=120)
    assert chat(d, "claude-sonnet-4-5").status == 200
    assert keys_used(fake)[3:] == [keys[0], keys[1]]
    assert chat(d, "claude-sonnet-4-5").status == 200  # keys[0] is cooling: straight to keys[1]
    assert keys_used(fake)[5:] == [keys[1]]


def test_failover_on_429_then_all_cooling_gives_429_with_retry_after(daemon, fresh):
    fake, _ = fresh
    keys = ["key-fo-000001", "key-fo-000002"]
    d = daemon({"api-keys": [KEY], "routing": {"strategy": "fill-first"},
                "claude-api-key": claude_keys(fake, *keys)})
    fake.set_mode("429", key=keys[0], retry_after=300)
    ok = chat(d, "claude-sonnet-4-5")
    assert ok.status == 200 and keys_used(fake) == keys
    fake.set_mode("429", key=keys[1], retry_after=200)
    limited = chat(d, "claude-sonnet-4-5")
    assert limited.status == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert 150 <= int(limited.headers["Retry-After"]) <= 200
    before = len(fake.requests)
    again = d.request("POST", "/v1/messages", headers=AUTH, json_body={
        "model": "claude-sonnet-4-5", "max_tokens": 10, "messages": CHAT["messages"]})
    assert again.status == 429 and again.json()["type"] == "error"
    assert int(again.headers["Retry-After"]) > 0
    assert len(fake.requests) == before  # nothing sent upstream while every key cools down


def test_400_from_upstream_is_not_retried(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(
        fake, "key-400-000001", "key-400-000002")})
    fake.set_mode("400")
    r = d.request("POST", "/v1/messages", headers=AUTH, json_body={
        "model": "claude-sonnet-4-5", "max_tokens": 10, "messages": CHAT["messages"]})
    assert r.status == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert len(fake.requests) == 1
    assert chat(d, "claude-sonnet-4-5").status == 400  # and no cooldown: tried again, same 400


def test_request_retry_zero_means_one_attempt(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "request-retry": 0, "claude-api-key": claude_keys(
        fake, "key-rt-000001", "key-rt-000002")})
    fake.set_mode("500", times=1)
    r = chat(d, "claude-sonnet-4-5")
    assert r.status == 500 and r.json()["error"]["type"] == "server_error"
    assert len(fake.requests) == 1


# -- listings and token counts ----------------------------------------------------------------


def test_model_listings_in_each_shape(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, "key-list-00001")})
    openai_shape = d.request("GET", "/v1/models", headers=AUTH).json()
    assert openai_shape["object"] == "list"
    assert all(m["object"] == "model" and m["owned_by"] for m in openai_shape["data"])
    claude_shape = d.request("GET", "/v1/models", headers={**AUTH, "anthropic-version": "2023-06-01"})
    data = claude_shape.json()
    assert data["has_more"] is False and data["first_id"] == data["data"][0]["id"]
    assert all(m["type"] == "model" and m["display_name"] for m in data["data"])
    listed = anthropic.Anthropic(base_url=d.url, api_key=KEY).models.list()
    assert {m.id for m in listed.data} == {m["id"] for m in openai_shape["data"]}
    gemini = d.request("GET", "/v1beta/models", headers=AUTH).json()["models"]
    name = gemini[0]["name"]
    assert name.startswith("models/")
    one = d.request("GET", f"/v1beta/{name}", headers=AUTH)
    assert one.status == 200 and one.json()["name"] == name
    missing = d.request("GET", "/v1beta/models/no-such-model", headers=AUTH)
    assert missing.status == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_count_tokens_uses_upstream_or_estimates(daemon, fresh):
    claude, compat = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(claude, "key-count-0001"),
                "openai-compatibility": [{"name": "c", "base-url": compat.base_url + "/v1",
                                          "api-key-entries": [{"api-key": "k-compat-0001"}],
                                          "models": [{"name": "up", "alias": "compat-model"}]}]})
    client = anthropic.Anthropic(base_url=d.url, api_key=KEY)
    counted = client.messages.count_tokens(model="claude-sonnet-4-5",
                                           messages=[{"role": "user", "content": "hello there"}])
    assert counted.input_tokens > 0
    assert claude.requests[-1].path == "/v1/messages/count_tokens"
    estimated = client.messages.count_tokens(model="compat-model", messages=[
        {"role": "user", "content": "word " * 400}])
    assert estimated.input_tokens >= 300
    assert compat.requests == []  # no count endpoint upstream: estimated locally


# -- errors in the client's format ------------------------------------------------------------


def test_unknown_model_in_every_client_format_without_upstream_call(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, "key-unk-00001")})
    r = chat(d, "no-such-model")
    assert r.status == 404
    assert r.json()["error"]["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=d.url + "/v1", api_key=KEY, max_retries=0).responses.create(
            model="no-such-model", input="x")
    r = d.request("POST", "/v1/messages", headers=AUTH, json_body={
        "model": "no-such-model", "max_tokens": 5, "messages": CHAT["messages"]})
    assert r.status == 404 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "not_found_error"
    r = d.request("POST", "/v1beta/models/no-such-model:generateContent", headers=AUTH,
                  json_body={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.status == 404
    err = r.json()["error"]
    assert (err["code"], err["status"]) == (404, "NOT_FOUND") and "no-such-model" in err["message"]
    assert fake.requests == []


@pytest.mark.parametrize("body, fragment", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"", "empty"),
    (b"\xff\xfe{}", "UTF-8"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested"),
    (b'{"model": "x", "n": 1' + b"0" * 6000 + b"}", "not valid JSON"),
    (b'{"temperature": 1e999}', "not valid JSON"),
])
def test_bad_bodies_are_400_in_each_format(daemon, fresh, body, fragment):
    d = daemon({"api-keys": [KEY]})
    for path, shape in [("/v1/chat/completions", "openai"), ("/v1/messages", "claude"),
                        ("/v1/responses", "openai"),
                        ("/v1beta/models/m:generateContent", "gemini")]:
        r = d.request("POST", path, headers=AUTH, body=body)
        assert r.status == 400, (path, r.body[:200])
        err = r.json()["error"]
        assert fragment in err["message"]
        if shape == "claude":
            assert r.json()["type"] == "error" and err["type"] == "invalid_request_error"
        elif shape == "gemini":
            assert err["code"] == 400 and err["status"] == "INVALID_ARGUMENT"
        else:
            assert err["type"] == "invalid_request_error"


def test_passthrough_leaves_the_body_to_the_upstream(daemon, fresh):
    """A Chat body our codec would refuse (``n`` 2, an unknown message role) goes to a Chat
    upstream as it came, but for the model; its answer reaches the client."""
    _, fake = fresh
    d = daemon({"api-keys": [KEY], "openai-compatibility": [
        {"name": "compat", "base-url": fake.base_url + "/v1",
         "api-key-entries": [{"api-key": "key-compat-0001"}],
         "models": [{"name": "up-model", "alias": "shared"}]}]})
    messages = [{"role": "developer-note", "content": "kept"}, {"role": "user", "content": "hi"}]
    r = d.request("POST", "/v1/chat/completions", headers=AUTH,
                  json_body={"model": "shared", "messages": messages, "n": 2})
    assert r.status == 200, r.body[:300]
    assert r.json()["model"] == "shared"
    sent = fake.requests[-1].body
    assert (sent["model"], sent["n"], sent["messages"]) == ("up-model", 2, messages)
    # What routing reads is still checked by us, in the client's format.
    r = d.request("POST", "/v1/chat/completions", headers=AUTH,
                  json_body={"model": "shared", "messages": messages, "stream": "yes"})
    assert r.status == 400 and r.json()["error"]["param"] == "stream"
    assert len(fake.requests) == 1


def test_a_body_to_translate_is_checked_before_any_attempt(daemon, fresh):
    """When any credential for the model speaks another format, the body is decoded up front:
    one we cannot translate is the client's 400, and no credential is tried (or cooled)."""
    claude, compat = fresh
    d = daemon({"api-keys": [KEY], "openai-compatibility": [
                    {"name": "compat", "base-url": compat.base_url + "/v1",
                     "api-key-entries": [{"api-key": "key-compat-0001"}],
                     "models": [{"name": "up-model", "alias": "shared"}]}],
                "claude-api-key": [{"api-key": "key-claude-0001", "base-url": claude.base_url,
                                    "models": [{"name": "claude-sonnet-4-5", "alias": "shared"}]}]})
    for _ in range(4):  # round robin: each credential's turn comes
        r = chat(d, "shared", n=2)
        assert r.status == 400 and r.json()["error"]["param"] == "n"
    assert compat.requests == [] and claude.requests == []
    assert chat(d, "shared").status == 200  # nobody was cooled down by the client's mistake


def test_oversized_body_is_a_readable_413_and_nothing_goes_upstream(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "max-body-size": 4096,
                "claude-api-key": claude_keys(fake, "key-big-00001")})
    big = {"model": "claude-sonnet-4-5", "max_tokens": 5,
           "messages": [{"role": "user", "content": "x" * 10000}]}
    r = d.request("POST", "/v1/messages", headers=AUTH, json_body=big)
    assert r.status == 413
    assert r.json()["type"] == "error" and "max-body-size" in r.json()["error"]["message"]
    assert fake.requests == []


def test_upstream_down_is_502_in_client_format(daemon):
    dead = f"http://127.0.0.1:{free_port()}"
    d = daemon({"api-keys": [KEY], "claude-api-key": [{"api-key": "key-dead-0001",
                                                        "base-url": dead}]})
    r = d.request("POST", "/v1/messages", headers=AUTH, json_body={
        "model": "claude-sonnet-4-5", "max_tokens": 5, "messages": CHAT["messages"]})
    assert r.status == 502 and r.json()["type"] == "error"
    r = d.request("POST", "/v1beta/models/claude-opus-4-1:streamGenerateContent?alt=sse",
                  headers=AUTH, json_body={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.status == 502 and r.json()["error"]["status"] == "INTERNAL"
    # The dead host's credential now pauses briefly for that model: a 429 with Retry-After,
    # not a pile of connection attempts.
    r = d.request("POST", "/v1/messages", headers=AUTH, json_body={
        "model": "claude-sonnet-4-5", "max_tokens": 5, "messages": CHAT["messages"]})
    assert r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 5
    assert d.request("GET", "/healthz").status == 200


def test_upstream_errors_are_rerendered_not_passed_through(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "request-retry": 0,
                "claude-api-key": claude_keys(fake, "key-rer-00001")})
    fake.set_mode("html_error")
    r = chat(d, "claude-sonnet-4-5")
    assert r.status == 502 and set(r.json()) == {"error"}
    assert "<html" not in r.body.decode().lower()
    fake.set_mode("malformed")
    r = chat(d, "claude-opus-4-1")  # another model: the first one's credential is cooling down
    assert r.status == 502 and r.json()["error"]["type"] == "server_error"


def test_truncated_stream_ends_with_the_formats_error_event(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, "key-trunc-0001")})
    fake.set_reply(text="a long answer that will be cut", chunks=6)
    fake.set_mode("truncated")
    client = anthropic.Anthropic(base_url=d.url, api_key=KEY, max_retries=0)
    # Claude → Claude (passthrough) and Claude → OpenAI Chat (translated) both end in an error.
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50,
                                    messages=CHAT["messages"]) as stream:
            for _ in stream:
                pass
    r = d.request("POST", "/v1/chat/completions", headers=AUTH, json_body={
        "model": "claude-sonnet-4-5", "stream": True, **CHAT})
    text = r.body.decode()
    assert r.status == 200 and '"error"' in text.splitlines()[-2 if text.endswith("\n\n") else -1]
    assert "[DONE]" not in text


def test_client_disconnect_cancels_the_upstream(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, "key-disc-0001")})
    fake.set_reply(text="first part then a stall", chunks=4)
    fake.set_mode("stall")
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", headers=AUTH, body=json.dumps({
        "model": "claude-sonnet-4-5", "stream": True, **CHAT}))
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read1(65536).startswith(b"data: ")  # the stream is flowing
    resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    assert fake.wait_disconnects(1, timeout=5)
    assert d.request("GET", "/healthz").status == 200
    assert "never retrieved" not in d.logs and "Traceback" not in d.logs


def test_keepalive_comments_while_the_upstream_is_quiet(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "streaming": {"keepalive-seconds": 0.2},
                "claude-api-key": claude_keys(fake, "key-kalive-001")})
    fake.set_reply(text="slow stream", chunks=2)
    fake.set_mode("stall")
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    conn.request("POST", "/v1/messages", headers=AUTH, body=json.dumps({
        "model": "claude-sonnet-4-5", "max_tokens": 10, "stream": True, **CHAT}))
    resp = conn.getresponse()
    seen, deadline = b"", time.monotonic() + 5
    while time.monotonic() < deadline and b": keep-alive\n\n" not in seen:
        seen += resp.read1(65536)
    conn.close()
    assert seen.startswith(b"event: message_start") and b": keep-alive\n\n" in seen


# -- the legacy completions API and Gemini's JSON-array stream --------------------------------


def test_legacy_completions_through_chat(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, "key-legacy-001")})
    client = openai.OpenAI(base_url=d.url + "/v1", api_key=KEY, max_retries=0)
    done = client.completions.create(model="claude-sonnet-4-5", prompt="Once upon a time",
                                     max_tokens=20)
    assert done.object == "text_completion"
    assert done.choices[0].text == "Hello from claude-sonnet-4-5."
    assert done.usage.prompt_tokens > 0
    assert fake.requests[-1].body["messages"][0]["content"] in (
        "Once upon a time", [{"type": "text", "text": "Once upon a time"}])
    fake.set_reply(text="and they lived happily.", chunks=4)
    streamed = client.completions.create(model="claude-sonnet-4-5", prompt="x", max_tokens=20,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "and they lived happily."


def test_gemini_stream_without_alt_is_a_json_array(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, "key-array-0001")})
    fake.set_reply(text="one two three", chunks=3)
    r = d.request("POST", "/v1beta/models/claude-sonnet-4-5:streamGenerateContent",
                  headers={"x-goog-api-key": KEY, "Content-Type": "application/json"},
                  json_body={"contents": [{"role": "user", "parts": [{"text": "count"}]}]})
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    chunks = r.json()
    assert isinstance(chunks, list) and len(chunks) >= 2
    text = "".join(p.get("text", "") for c in chunks for cand in c.get("candidates", [])
                   for p in cand["content"].get("parts", []))
    assert text == "one two three"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] > 0


def test_model_listing_errors_follow_the_clients_shape(daemon):
    d = daemon({"api-keys": [KEY]})
    anthropic_style = d.request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01",
                                                              "x-api-key": "wrong"})
    assert anthropic_style.status == 401
    assert anthropic_style.json()["type"] == "error"
    assert anthropic_style.json()["error"]["type"] == "authentication_error"
    openai_style = d.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
    assert openai_style.status == 401 and "type" not in openai_style.json()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=d.url, api_key="wrong", max_retries=0).models.list()


def test_in_stream_upstream_errors_never_echo_the_key(daemon, fresh):
    fake, _ = fresh
    secret = "key-echo-secret-000000001"
    d = daemon({"api-keys": [KEY], "debug": True,
                "claude-api-key": claude_keys(fake, secret)})
    fake.set_reply(text="a reply that the upstream will break off", chunks=6)
    fake.set_mode("echo_error")
    for path, body in [
        ("/v1/chat/completions", {"model": "claude-sonnet-4-5", "stream": True, **CHAT}),
        # another model: an HTTP-level failure cools the first one down
        ("/v1/messages", {"model": "claude-opus-4-1", "max_tokens": 50, "stream": True,
                          **CHAT}),
    ]:
        r = d.request("POST", path, headers=AUTH, json_body=body)
        text = r.body.decode()
        # Before any output reached the client the failure is an HTTP error status; after, the
        # format's in-stream error event.  Either way the upstream's words arrive masked.
        assert r.status == 200 or r.status >= 500, path
        assert "error" in text and "overloaded" in text, path
        assert secret not in text and "[redacted]" in text, path
    assert secret not in d.logs


def test_chat_completions_accepts_a_responses_shaped_body(daemon, fresh):
    fake, _ = fresh
    d = daemon({"api-keys": [KEY], "claude-api-key": claude_keys(fake, "key-rshape-001")})
    r = d.request("POST", "/v1/chat/completions", headers=AUTH, json_body={
        "model": "claude-sonnet-4-5", "instructions": "Be brief.",
        "input": [{"role": "user", "content": "Say hello"}]})
    assert r.status == 200, r.body
    assert r.json()["object"] == "chat.completion"
    assert r.json()["choices"][0]["message"]["content"] == "Hello from claude-sonnet-4-5."
    sent = fake.requests[-1].body
    assert "Be brief." in json.dumps(sent["system"]) and "Say hello" in json.dumps(sent["messages"])
    fake.set_reply(text="streamed hello", chunks=3)
    r = d.request("POST", "/v1/chat/completions", headers=AUTH, json_body={
        "model": "claude-sonnet-4-5", "input": "hi", "stream": True})
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in r.body.decode().splitlines()
                   if line.startswith("data: {") and json.loads(line[6:])["choices"])
    assert r.status == 200 and text == "streamed hello" and r.body.decode().rstrip().endswith("[DONE]")
    # A body with neither messages nor input is still the chat codec's clear 400.
    bad = d.request("POST", "/v1/chat/completions", headers=AUTH,
                    json_body={"model": "claude-sonnet-4-5"})
    assert bad.status == 400 and "messages" in bad.json()["error"]["message"]


class _ErrorThenTerminator(tornado.web.RequestHandler):
    """An upstream that sends a good event, then in one write a malformed event and its
    format's clean terminator."""

    FIRST = {
        "responses": b'event: response.created\ndata: {"type":"response.created",'
                     b'"sequence_number":0,"response":{"id":"resp_1","object":"response",'
                     b'"created_at":1,"status":"in_progress","model":"gpt-5","output":[]}}\n\n',
        "chat": b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
                b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},'
                b'"finish_reason":null}]}\n\n',
    }
    LAST = {
        "responses": b'event: response.completed\ndata: {"type":"response.completed",'
                     b'"sequence_number":2,"response":{"id":"resp_1","object":"response",'
                     b'"created_at":1,"status":"completed","model":"gpt-5","output":[]}}\n\n',
        "chat": b"data: [DONE]\n\n",
    }

    async def post(self) -> None:
        kind = "responses" if self.request.path.endswith("/responses") else "chat"
        self.set_header("Content-Type", "text/event-stream")
        self.write(self.FIRST[kind])
        await self.flush()
        await asyncio.sleep(0.2)  # the client's stream starts with the good event
        self.finish(b"data: {this is not json\n\n" + self.LAST[kind])


def test_nothing_after_an_upstream_stream_error_is_passed_on(daemon):
    with BackgroundServer(lambda: tornado.web.Application([(r".*", _ErrorThenTerminator)]),
                          "error-then-terminator") as upstream:
        d = daemon({"api-keys": [KEY], "request-retry": 0,
                    "codex-api-key": [{"api-key": "key-err-term-01", "base-url": upstream.url,
                                       "models": [{"name": "gpt-5", "alias": "x"}]}],
                    "openai-compatibility": [{"name": "c", "base-url": upstream.url,
                                              "api-key-entries": [{"api-key": "key-err-term-02"}],
                                              "models": [{"name": "m", "alias": "o"}]}]})
        # The stream ends with the format's error; the terminator after it is not passed on.
        r = d.request("POST", "/v1/responses", headers=AUTH,
                      json_body={"model": "x", "input": "hi", "stream": True})
        assert r.status == 200 and b"event: error" in r.body
        assert b"response.completed" not in r.body and b"response.failed" in r.body
        r = d.request("POST", "/v1/chat/completions", headers=AUTH,
                      json_body={"model": "o", "stream": True, **CHAT})
        assert r.status == 200 and b'"error"' in r.body and b"[DONE]" not in r.body
