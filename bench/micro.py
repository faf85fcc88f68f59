"""In-process micro-benchmark of the streaming hot path (no sockets): upstream SSE bytes →
`pipeline._Relay` (SSE parser, upstream stream decoder, client encoder or passthrough) → a sink
that frames events as the HTTP handler does.  Reports microseconds of CPU per upstream chunk,
best of several repeats, for each client ← upstream pair; steadier than the socket lanes on a
busy machine, so it is what the optimisation commits quote.

Usage: ``python bench/micro.py [--chunks 500] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_upstream

from cliproxyd.formats import codec, sse
from cliproxyd.pipeline import ClientSide, Pipeline, _Relay
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
    client = ClientSide.of(client_fmt)
    pipeline = Pipeline(None, None)  # type: ignore[arg-type]
    extra = [{}] if "client_headers" in inspect.signature(pipeline._plan).parameters else []
    plan = pipeline._plan(client, BODIES[client_fmt], None, None, *extra)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for client_fmt, upstream_fmt, kind in PAIRS:
        best = min(run_once(client_fmt, upstream_fmt, kind, args.chunks)
                   for _ in range(args.repeat))
        print(f"{client_fmt:16} <- {upstream_fmt:16} {1e6 * best:7.1f} us/chunk")


if __name__ == "__main__":
    main()
