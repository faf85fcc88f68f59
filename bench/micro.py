"""In-process micro-benchmarks (no sockets), steadier than the socket lanes on a busy machine,
so they are what the optimisation commits quote.

1. The streaming hot path: upstream SSE bytes → `pipeline._Relay` (SSE parser, upstream stream
   decoder, client encoder or passthrough) → a sink that frames events as the HTTP handler does.
   Microseconds of CPU per upstream chunk, best of several repeats, for each client ← upstream
   pair.
2. A coding agent's request (``agent_request``: a long system prompt, 20 tools, 151 messages with
   tool calls and results, about 107 KB of JSON), where the socket lanes send one short message:
   microseconds of CPU to parse the body, to decode it in each client format and to encode it
   for each upstream format.  What the bare proxy does with such a body is the parse.

Usage: ``python bench/micro.py [--chunks 500] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_upstream

from cliproxyd import jsontext
from cliproxyd.formats import codec, sse
from cliproxyd.handlers.proxy import parse_json_object
from cliproxyd.pipeline import ClientSide, _Plan, _Relay
from cliproxyd.routing.models import Credential

_CREDENTIAL = Credential(id="bench-0001", kind="openai_compat", api_key="upstream-key-0001",
                         base_url="http://127.0.0.1:1")

PAIRS = [("openai_chat", "openai_chat", "openai"), ("openai_chat", "claude", "claude"),
         ("claude", "gemini", "gemini"), ("claude", "claude", "claude"),
         ("openai_responses", "openai_responses", "responses")]
BODIES = {
    "openai_chat": {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    "claude": {"model": "m", "stream": True, "max_tokens": 64,
               "messages": [{"role": "user", "content": "hi"}]},
    "openai_responses": {"model": "m", "stream": True, "input": "hi"},
}


class _Sink:
    started = False

    def __init__(self) -> None:
        self.bytes = 0

    def send_events(self, events: list[sse.Event]) -> None:
        self.started = True
        self.bytes += sum(len(sse.serialize(e)) for e in events)

    def watch(self, call: object) -> None:
        return None


def _chunks(kind: str, n: int) -> list[bytes]:
    _, head, piece, tail = fake_upstream._KINDS[kind]("up-m")
    return ([head] if head else []) + [piece] * n + [tail]


def run_once(client_fmt: str, upstream_fmt: str, kind: str, n: int) -> float:
    plan = _Plan(ClientSide.of(client_fmt), BODIES[client_fmt], None, None, {}, 1_700_000_000)
    passthrough = client_fmt == upstream_fmt
    upstream = codec(upstream_fmt)
    chunks = _chunks(kind, n)
    start = time.process_time()
    relay = _Relay(plan, upstream, passthrough, _Sink(), {}, _CREDENTIAL)
    for chunk in chunks:
        relay.feed(chunk)
    relay.close()
    assert relay.stream_error is None and relay.abort is None
    return (time.process_time() - start) / len(chunks)


def agent_request() -> dict:
    """A Messages request shaped like a coding agent's (see the module docstring)."""
    schema = {"type": "object", "required": ["p0"], "properties": {
        f"p{j}": {"type": "string", "description": "A parameter of this tool. " * 2}
        for j in range(6)}}
    tools = [{"name": f"tool_{i}", "description": "Does one thing to the workspace. " * 10,
              "input_schema": schema} for i in range(20)]
    messages: list[dict] = []
    for i in range(50):
        messages += [
            {"role": "user", "content": [{"type": "text", "text": f"Please look at file {i}. " * 10}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Reading it."},
                {"type": "tool_use", "id": f"toolu_{i:04d}", "name": "tool_1",
                 "input": {"p0": f"src/module_{i}.py", "p1": "read"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i:04d}",
                                          "content": "a line of the file's text\n" * 40}]}]
    messages.append({"role": "user", "content": "Go on."})
    return {"model": "m", "max_tokens": 4096, "stream": True, "tools": tools, "messages": messages,
            "system": [{"type": "text", "text": "You are a careful coding agent. " * 300}]}


def _best_us(fn, repeat: int, inner: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, (time.process_time() - start) / inner)
    return 1e6 * best


def agent_request_costs(repeat: int) -> list[tuple[str, float]]:
    """(step, microseconds) for `agent_request` in every format."""
    ir_request = codec("claude").decode_request(agent_request())
    bodies = {fmt: codec(fmt).encode_request(ir_request, model="m")
              for fmt in ("openai_chat", "openai_responses", "claude", "gemini")}
    rows = []
    for fmt, body in bodies.items():
        raw = jsontext.dumps_bytes(body)
        module = codec(fmt)
        rows.append((f"parse {fmt} body ({len(raw) // 1024} KB)",
                     _best_us(lambda: parse_json_object(raw), repeat)))
        rows.append((f"decode_request {fmt}",
                     _best_us(lambda: module.decode_request(body, model="m"), repeat)))
    for fmt in bodies:
        module = codec(fmt)
        rows.append((f"encode_request {fmt}",
                     _best_us(lambda: module.encode_request(ir_request, model="m"), repeat)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for client_fmt, upstream_fmt, kind in PAIRS:
        best = min(run_once(client_fmt, upstream_fmt, kind, args.chunks)
                   for _ in range(args.repeat))
        print(f"{client_fmt:16} <- {upstream_fmt:16} {1e6 * best:7.1f} us/chunk")
    print("\nA coding agent's request (bench/micro.py agent_request), CPU per request")
    for step, us in agent_request_costs(args.repeat):
        print(f"  {step:34} {us:8.0f} us")


if __name__ == "__main__":
    main()
