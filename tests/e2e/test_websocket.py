"""End to end: the Responses API over WebSocket (``GET /v1/responses``, issue 6).

The real daemon with fake upstreams of every kind, driven by a real WebSocket client
(`websockets`): the ws-auth rule (on, off, flipped by a reload), two-turn conversations whose
second upstream request carries the first turn's input and output, tool calls, error frames that
leave the socket usable, one turn at a time, cancel on client close, and shutdown (1001).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import time
from typing import Any

import openai
import pytest
from harness import Daemon
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.stack import KINDS, start_fakes
from tests.e2e.stack import provider_config as shared_provider_config

pytestmark = pytest.mark.timeout(120)

CLIENT_KEY = "client-key-ws-0123456789"
SECRET = "management-secret-ws-42"
UPSTREAMS = {
    # client-visible alias → (fake kind, upstream model, configured key)
    "g-model": ("gemini", "gemini-2.5-flash", "gem-key-AAAA1111"),
    "c-model": ("claude", "claude-sonnet-4-5", "cla-key-BBBB2222"),
    "x-model": ("responses", "gpt-5", "cdx-key-CCCC3333"),
    "o-model": ("openai", "up-model", "oai-key-DDDD4444"),
}
WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}
TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")
WAIT = 30.0  # a bound on waits, not an assertion about speed


def provider_config(fakes: dict, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    """Provider entries pointing at the fakes, each serving its alias."""
    return shared_provider_config(fakes, UPSTREAMS, kinds)


@pytest.fixture(scope="module")
def fakes():
    made = start_fakes()
    yield made
    for fake in made.values():
        fake.stop()


@pytest.fixture(scope="module")
def stack(fakes, tmp_path_factory):
    config = {"api-keys": [CLIENT_KEY], "request-retry": 0,
              "remote-management": {"secret-key": SECRET}, **provider_config(fakes)}
    daemon = Daemon(tmp_path_factory.mktemp("ws"), config).start()
    yield daemon
    daemon.stop()


@pytest.fixture
def fake_for(fakes):
    """The fake behind an alias, reset to its default reply, mode and request log."""
    def get(alias: str):
        fake = fakes[UPSTREAMS[alias][0]]
        fake.set_reply()
        fake.set_mode("ok")
        fake.requests.clear()
        return fake
    return get


# -- client helpers ---------------------------------------------------------------------------


def ws_url(daemon: Daemon, query: str = "") -> str:
    return daemon.url.replace("http://", "ws://", 1) + "/v1/responses" + query


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 2 * WAIT))


def opener(daemon: Daemon, key: str | None = CLIENT_KEY, query: str = "", **headers: str):
    """An async context manager for a socket (Bearer ``key`` unless None)."""
    if key is not None:
        headers.setdefault("Authorization", f"Bearer {key}")
    return connect(ws_url(daemon, query), additional_headers=headers, open_timeout=WAIT)


async def send(ws: ClientConnection, message: dict[str, Any] | str) -> None:
    await ws.send(message if isinstance(message, str) else json.dumps(message))


async def frames_until_terminal(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every frame of one turn, through its terminal event (or an error frame)."""
    out = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        out.append(frame)
        if frame["type"] in ("response.completed", "response.incomplete", "error"):
            return out
        if frame["type"] == "response.failed":
            return out


async def turn(ws: ClientConnection, message: dict[str, Any] | str) -> list[dict[str, Any]]:
    await send(ws, message)
    return await frames_until_terminal(ws)


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["delta"] for f in frames if f["type"] == "response.output_text.delta")


def completed(frames: list[dict[str, Any]]) -> dict[str, Any]:
    assert frames[-1]["type"] == "response.completed", frames[-1]
    return frames[-1]["response"]


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def upgrade_status(daemon: Daemon, key: str | None = None, query: str = "",
                   **headers: str) -> tuple[int, Any]:
    """(101, None) when the upgrade succeeds, else (status, JSON body)."""
    async def attempt() -> tuple[int, Any]:
        try:
            async with opener(daemon, key, query, **headers) as ws:
                frames = await turn(ws, {"type": "response.create", "model": "c-model",
                                         "generate": False})
                assert frames[-1]["type"] == "response.completed"  # the socket is usable
                return 101, None
        except InvalidStatus as exc:
            body = bytes(exc.response.body)
            return exc.response.status_code, json.loads(body) if body.startswith(b"{") else body
    return run(attempt())


def ordered(haystack: str, *needles: str) -> bool:
    positions = [haystack.find(n) for n in needles]
    return all(p >= 0 for p in positions) and positions == sorted(positions)


# -- authentication ---------------------------------------------------------------------------


def test_ws_auth_on_rejects_a_missing_or_wrong_key_before_the_upgrade(stack):
    for key in (None, "wrong-key"):
        status, body = upgrade_status(stack, key)
        assert status == 401
        assert body["error"]["message"] == "invalid password"
        assert body["error"]["type"] == "authentication_error"


def test_ws_auth_on_accepts_bearer_x_api_key_and_query_key(stack):
    assert upgrade_status(stack, CLIENT_KEY)[0] == 101
    assert upgrade_status(stack, None, **{"x-api-key": CLIENT_KEY})[0] == 101
    assert upgrade_status(stack, None, query=f"?key={CLIENT_KEY}")[0] == 101
    assert upgrade_status(stack, None, query="?key=nope")[0] == 401


def test_ws_auth_off_needs_no_key_but_http_still_does(daemon, fakes):
    d = daemon({"api-keys": [CLIENT_KEY], "ws-auth": False, **provider_config(fakes, ("claude",))})
    assert upgrade_status(d, None) == (101, None)
    assert upgrade_status(d, "wrong-key") == (101, None)
    http = d.request("POST", "/v1/responses", json_body={"model": "c-model", "input": "hi"})
    assert http.status == 401


def test_cross_origin_pages_need_a_key(daemon, fakes, stack):
    d = daemon({"api-keys": [CLIENT_KEY], "ws-auth": False, **provider_config(fakes, ("claude",))})
    evil = {"Origin": "http://evil.example"}
    assert upgrade_status(d, None, **evil)[0] == 403  # an open socket is not for any web page
    assert upgrade_status(d, None, Origin=d.url)[0] == 101  # same origin
    assert upgrade_status(stack, CLIENT_KEY, **evil)[0] == 101  # a key holder may


def test_codex_turn_state_header_is_echoed(stack):
    async def scenario() -> str | None:
        async with opener(stack, **{"x-codex-turn-state": "turn-abc"}) as ws:
            return ws.response.headers.get("x-codex-turn-state")
    assert run(scenario()) == "turn-abc"


def test_reload_flips_ws_auth_both_ways(daemon, fakes, fake_for):
    fake_for("c-model")
    base = {"api-keys": [CLIENT_KEY], **provider_config(fakes, ("claude",))}
    d = daemon({**base, "ws-auth": False})

    async def scenario() -> None:
        async with opener(d, None) as open_socket:  # connected while ws-auth is off
            assert completed(await turn(open_socket, {"type": "response.create",
                                                      "model": "c-model", "input": "hi"}))
            await asyncio.to_thread(d.reload, {**base, "ws-auth": True})
            # Its next turn falls under the new rule: a 401 frame, then the socket is closed.
            frames = await turn(open_socket, {"type": "response.append", "input": []})
            assert frames[-1]["type"] == "error" and frames[-1]["status"] == 401
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(open_socket.recv(), WAIT)
            assert open_socket.close_code == 1008

    run(scenario())
    assert upgrade_status(d, None)[0] == 401
    assert upgrade_status(d, CLIENT_KEY)[0] == 101
    d.reload({**base, "ws-auth": False})
    assert upgrade_status(d, None)[0] == 101


def test_plain_get_is_a_json_400_and_post_still_serves_http(stack, fake_for):
    fake_for("c-model")
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    plain = stack.request("GET", "/v1/responses", headers=headers)
    assert plain.status == 400 and plain.json()["error"]["type"] == "invalid_request_error"
    post = stack.request("POST", "/v1/responses", headers=headers,
                         json_body={"model": "c-model", "input": "hi"})
    assert post.status == 200 and post.json()["object"] == "response"


# -- conversations ----------------------------------------------------------------------------


@pytest.mark.parametrize("alias", list(UPSTREAMS))
def test_two_turns_carry_the_first_turn_to_the_upstream(stack, fake_for, alias):
    fake = fake_for(alias)
    upstream_model = UPSTREAMS[alias][1]

    async def scenario() -> tuple[list, list]:
        async with opener(stack) as ws:
            first = await turn(ws, {"type": "response.create", "model": alias,
                                    "instructions": "Answer like a pirate.",
                                    "input": "first question zebra"})
            second = await turn(ws, {"type": "response.append", "input": [
                {"type": "message", "role": "user", "content": "second question yak"}]})
            return first, second

    first, second = run(scenario())
    assert text_of(first) == f"Hello from {upstream_model}."
    assert completed(first)["model"] in (alias, upstream_model)
    assert text_of(second) == f"Hello from {upstream_model}."
    assert len(fake.requests) == 2
    replay = json.dumps(fake.requests[1].body)
    assert ordered(replay, "first question zebra", f"Hello from {upstream_model}.",
                   "second question yak"), replay
    assert "Answer like a pirate." in replay  # instructions inherited
    assert upstream_model in fake.requests[1].path + replay  # model inherited
    assert "Answer like a pirate." in json.dumps(fake.requests[0].body)


def test_prewarm_then_create_with_previous_response_id(stack, fake_for):
    fake = fake_for("x-model")

    async def scenario() -> tuple[list, list]:
        async with opener(stack) as ws:
            warm = await turn(ws, {"type": "response.create", "model": "x-model",
                                   "instructions": "Be terse.", "tools": [WEATHER_TOOL],
                                   "generate": False})
            frames = await turn(ws, {"type": "response.create",
                                     "previous_response_id": completed(warm)["id"],
                                     "input": "hello there"})
            return warm, frames

    warm, frames = run(scenario())
    assert [f["type"] for f in warm] == ["response.created", "response.completed"]
    assert completed(warm)["id"].startswith("resp_prewarm_")
    assert completed(warm)["output"] == []
    assert text_of(frames) == "Hello from gpt-5."
    assert len(fake.requests) == 1  # the pre-warm made no upstream call
    body = fake.requests[0].body
    assert body["model"] == "gpt-5" and body["instructions"] == "Be terse."
    assert "previous_response_id" not in body and "generate" not in body
    assert body["stream"] is True


@pytest.mark.parametrize("alias", list(UPSTREAMS))
def test_tool_call_round_trip(stack, fake_for, alias):
    fake = fake_for(alias)
    fake.set_reply(tool_name="get_weather", tool_args={"city": "Paris"})

    async def scenario() -> tuple[list, list]:
        async with opener(stack) as ws:
            first = await turn(ws, {"type": "response.create", "model": alias,
                                    "tools": [WEATHER_TOOL], "input": "weather in Paris?"})
            calls = [i for i in completed(first)["output"] if i["type"] == "function_call"]
            assert len(calls) == 1, completed(first)["output"]
            fake.set_reply(text="It is sunny in Paris.")
            second = await turn(ws, {"type": "response.append", "input": [
                {"type": "function_call_output", "call_id": calls[0]["call_id"],
                 "output": "sunny, 21C"}]})
            return first, second

    first, second = run(scenario())
    call = next(i for i in completed(first)["output"] if i["type"] == "function_call")
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    assert any(f["type"] == "response.function_call_arguments.delta" or
               f["type"] == "response.function_call_arguments.done" for f in first)
    assert text_of(second) == "It is sunny in Paris."
    replay = json.dumps(fake.requests[1].body)
    assert ordered(replay, "weather in Paris?", "get_weather", "sunny, 21C"), replay


def test_official_openai_sdk_connect(stack, fake_for):
    """``client.responses.connect()`` of the openai SDK parses every frame into its typed events."""
    fake = fake_for("g-model")
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=CLIENT_KEY, max_retries=0)

    def read_turn(conn: Any) -> list[Any]:
        events = []
        for event in conn:
            events.append(event)
            if event.type in ("response.completed", "response.failed", "error"):
                return events
        raise AssertionError("the socket closed mid-turn")

    with client.responses.connect() as conn:
        conn.response.create(model="g-model", input="sdk question one")
        first = read_turn(conn)
        conn.response.create(previous_response_id=first[-1].response.id,
                             input=[{"role": "user", "content": "sdk question two"}])
        second = read_turn(conn)
        conn.send({"type": "response.steer", "input": [], "previous_response_id": "x"})
        refused = conn.recv()

    assert first[-1].type == "response.completed"
    assert first[-1].response.output_text == "Hello from gemini-2.5-flash."
    assert second[-1].response.output_text == "Hello from gemini-2.5-flash."
    assert type(refused).__name__ == "ResponseWsError" and refused.status == 400
    assert ordered(json.dumps(fake.requests[1].body), "sdk question one",
                   "Hello from gemini-2.5-flash.", "sdk question two")


# -- errors -----------------------------------------------------------------------------------


def test_error_frames_keep_the_socket_usable(stack, fake_for):
    fake_for("c-model")

    async def scenario() -> list[list[dict]]:
        async with opener(stack) as ws:
            results = [
                await turn(ws, "this is not json"),
                await turn(ws, {"type": "response.cancel"}),
                await turn(ws, {"type": "response.append", "input": []}),
                await turn(ws, {"type": "response.create", "input": "no model"}),
                await turn(ws, {"type": "response.create", "model": "c-model",
                                "previous_response_id": "resp_unknown", "input": "x"}),
                await turn(ws, {"type": "response.create", "model": "no-such-model",
                                "input": "x"}),
            ]
            # An upstream failure (on another upstream: the failed credential cools down).
            broken = fake_for("o-model")
            broken.set_mode("500")
            results.append(await turn(ws, {"type": "response.create", "model": "o-model",
                                           "input": "x"}))
            broken.set_mode("ok")
            results.append(await turn(ws, {"type": "response.create", "model": "c-model",
                                           "input": "finally"}))
            return results

    *errors, good = run(scenario())
    for frames in errors:
        assert len(frames) == 1 and frames[0]["type"] == "error", frames
        assert set(frames[0]["error"]) >= {"message", "type", "code"}
    statuses = [f[0]["status"] for f in errors]
    assert statuses[:5] == [400, 400, 400, 400, 400]
    assert statuses[5] in (400, 404)
    assert statuses[6] >= 500
    messages = [f[0]["error"]["message"] for f in errors]
    assert "unsupported websocket request type: response.cancel" in messages[1]
    assert "before response.create" in messages[2]
    assert "missing model" in messages[3]
    assert errors[4][0]["error"]["code"] == "previous_response_not_found"
    assert text_of(good) == "Hello from claude-sonnet-4-5."


def test_a_stream_that_breaks_after_output_ends_with_an_error_frame(stack, fake_for):
    fake = fake_for("c-model")
    fake.set_mode("truncated")  # text streams, then the stream ends without message_stop

    async def scenario() -> tuple[list, list]:
        async with opener(stack) as ws:
            await send(ws, {"type": "response.create", "model": "c-model", "input": "x"})
            frames = []
            while not frames or frames[-1]["type"] != "response.failed":
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
            fake.set_mode("ok")
            # A failed turn is not part of the conversation: start again.
            return frames, await turn(ws, {"type": "response.create", "model": "c-model",
                                           "input": "again"})

    frames, after = run(scenario())
    assert text_of(frames)  # output had started
    error = [f for f in frames if f["type"] == "error"]
    assert len(error) == 1 and error[0]["status"] >= 500
    assert {"message", "type", "code"} <= set(error[0]["error"])
    numbers = [f["sequence_number"] for f in frames]
    assert numbers == list(range(len(frames)))
    assert text_of(after) == "Hello from claude-sonnet-4-5."  # the socket is still usable


def test_one_turn_at_a_time(stack, fake_for):
    fake = fake_for("c-model")
    fake.set_mode("slow", delay=1.0)  # the first turn is still running when the second arrives

    async def scenario() -> list[dict]:
        async with opener(stack) as ws:
            await send(ws, {"type": "response.create", "model": "c-model", "input": "one"})
            await send(ws, {"type": "response.create", "model": "c-model", "input": "two"})
            frames = []
            while not frames or frames[-1]["type"] != "response.completed":
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), WAIT)))
            return frames

    frames = run(scenario())
    rejected = [f for f in frames if f["type"] == "error"]
    assert len(rejected) == 1 and rejected[0]["status"] == 409
    assert text_of(frames) == "Hello from claude-sonnet-4-5."
    assert len(fake.requests) == 1


def test_client_close_cancels_the_upstream_request(stack, fake_for):
    fake = fake_for("x-model")
    fake.set_mode("stall")
    before = fake.disconnects

    async def scenario() -> None:
        async with opener(stack) as ws:
            await send(ws, {"type": "response.create", "model": "x-model", "input": "hang"})
            await asyncio.to_thread(wait_for, lambda: len(fake.requests) == 1,
                                    "the upstream request")
        # leaving the block closes the socket while the upstream is still streaming

    run(scenario())
    assert fake.wait_disconnects(before + 1, timeout=WAIT)


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``metrics`` (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _usage_details(daemon: Daemon) -> list[dict]:
    usage = daemon.request("GET", "/v0/management/usage",
                           headers={"Authorization": f"Bearer {SECRET}"}).json()["usage"]
    models = usage["apis"].get(CLIENT_KEY, {}).get("models", {})
    return models.get("c-model", {}).get("details", [])


def test_turns_are_counted_like_http_requests(stack, fake_for):
    fake_for("c-model")
    labels = {"client_format": "openai_responses", "provider": "claude", "model": "c-model",
              "code": "200"}
    before = stack.request("GET", "/metrics").body.decode()
    details_before = len(_usage_details(stack))

    async def scenario() -> None:
        async with opener(stack) as ws:
            completed(await turn(ws, {"type": "response.create", "model": "c-model",
                                      "input": "count me"}))
            completed(await turn(ws, {"type": "response.append", "input": []}))

    run(scenario())
    # A turn is recorded just after its last frame went out: wait for the second record.
    wait_for(lambda: len(_usage_details(stack)) >= details_before + 2, "the usage records")
    details = _usage_details(stack)
    assert len(details) == details_before + 2
    after = stack.request("GET", "/metrics").body.decode()
    assert _sample(after, "cliproxyd_requests_total", **labels) == \
        _sample(before, "cliproxyd_requests_total", **labels) + 2
    turns = {"route": "responses_websocket", "method": "OTHER", "code": "200"}
    assert _sample(after, "cliproxyd_http_requests_total", **turns) == \
        _sample(before, "cliproxyd_http_requests_total", **turns) + 2
    assert all(d["tokens"]["input_tokens"] > 0 for d in details[-2:]), details[-2:]


# -- shutdown ---------------------------------------------------------------------------------


def test_shutdown_finishes_the_turn_then_closes_with_1001(daemon, fakes, fake_for):
    fake = fake_for("c-model")
    fake.set_mode("slow", delay=1.0)
    d = daemon({"api-keys": [CLIENT_KEY], **provider_config(fakes, ("claude",))})

    async def scenario() -> tuple[list, int | None, int | None]:
        async with opener(d) as idle, opener(d) as busy:
            await send(busy, {"type": "response.create", "model": "c-model", "input": "slow"})
            await asyncio.to_thread(wait_for, lambda: len(fake.requests) == 1,
                                    "the upstream request")
            d.proc.send_signal(signal.SIGTERM)
            frames = await frames_until_terminal(busy)
            for ws in (idle, busy):
                with pytest.raises(ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), WAIT)
            return frames, idle.close_code, busy.close_code

    frames, idle_code, busy_code = run(scenario())
    assert text_of(frames) == "Hello from claude-sonnet-4-5."
    assert frames[-1]["type"] == "response.completed"
    assert (idle_code, busy_code) == (1001, 1001)
    assert d.proc.wait(WAIT) == 0


def test_shutdown_timeout_cancels_a_stalled_turn(daemon, fakes, fake_for):
    fake = fake_for("c-model")
    fake.set_mode("stall")
    before = fake.disconnects
    d = daemon({"api-keys": [CLIENT_KEY], "shutdown-timeout": 1,
                **provider_config(fakes, ("claude",))})

    async def scenario() -> int | None:
        async with opener(d) as ws:
            await send(ws, {"type": "response.create", "model": "c-model", "input": "stall"})
            await asyncio.to_thread(wait_for, lambda: len(fake.requests) == 1,
                                    "the upstream request")
            d.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), WAIT)
            return ws.close_code

    assert run(scenario()) == 1001
    assert fake.wait_disconnects(before + 1, timeout=WAIT)
    assert d.proc.wait(WAIT) == 0


# -- keep-alive -------------------------------------------------------------------------------


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def test_server_pings_and_drops_a_peer_that_never_answers(daemon, fakes):
    d = daemon({"api-keys": [CLIENT_KEY], "streaming": {"keepalive-seconds": 0.5},
                **provider_config(fakes, ("claude",))})
    sock = socket.create_connection(("127.0.0.1", d.port), timeout=WAIT)
    try:
        nonce = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{d.port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Authorization: Bearer {CLIENT_KEY}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += _read_exact(sock, 1)
        assert head.startswith(b"HTTP/1.1 101")
        first = _read_exact(sock, 2)
        assert first[0] & 0x0F == 0x9  # a ping, which this peer never answers
        _read_exact(sock, first[1] & 0x7F)
        opcodes = []
        try:  # ...so the server gives up on it: a close frame and/or the end of the stream
            while True:
                header = _read_exact(sock, 2)
                opcodes.append(header[0] & 0x0F)
                _read_exact(sock, header[1] & 0x7F)
        except (EOFError, ConnectionResetError):
            pass
        assert set(opcodes) <= {0x8, 0x9}
    finally:
        sock.close()
