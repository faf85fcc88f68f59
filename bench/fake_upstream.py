"""A fast fake LLM upstream for the benchmark, run in its own process (not the test fakes:
those are Tornado apps built for fidelity and failure modes, this one for speed).

A bare asyncio protocol with HTTP/1.1 keep-alive that answers, from pre-built bytes:

* ``POST .../chat/completions`` (OpenAI Chat), ``POST /v1/messages`` (Anthropic Messages),
  ``POST .../responses`` (OpenAI Responses, as Codex speaks it),
  ``POST /v1beta/models/{model}:generateContent`` / ``:streamGenerateContent`` (Gemini).
* A stream when the body says ``"stream": true`` (or the Gemini stream action).  The number of
  chunks is in the model name: ``...-c500`` streams 500 content chunks (default 10); ``...-slow``
  streams one chunk a second for 60 seconds (the "many open streams" lane).  Each chunk is a
  separate write after yielding to the loop, so chunks are not all coalesced into one.

Usage: ``python bench/fake_upstream.py PORT`` (prints ``ready`` when listening).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys

_MODEL = re.compile(rb'"model"\s*:\s*"([^"]*)"')
_GEMINI_PATH = re.compile(rb"/models/([^/:]+):(\w+)")
_CREATED = 1_700_000_000


def _chunks(model: str) -> tuple[int, float]:
    """(content chunks, seconds between them) from the model name."""
    if model.endswith("-slow"):
        return 60, 1.0
    match = re.search(r"-c(\d+)$", model)
    return (int(match.group(1)) if match else 10), 0.0


def _sse(obj: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


def _openai(model: str) -> tuple[bytes, bytes, list[bytes], bytes]:
    """(whole body, stream head, one content chunk, stream tail) for OpenAI Chat."""
    usage = {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    whole = {"id": "chatcmpl-b", "object": "chat.completion", "created": _CREATED, "model": model,
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                          "finish_reason": "stop"}], "usage": usage}
    base = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": _CREATED,
            "model": model}
    head = _sse(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                     "finish_reason": None}]))
    piece = _sse(dict(base, choices=[{"index": 0, "delta": {"content": "word "},
                                      "finish_reason": None}]))
    tail = _sse(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])) + \
        _sse(dict(base, choices=[], usage=usage)) + b"data: [DONE]\n\n"
    return json.dumps(whole).encode(), head, piece, tail


def _claude(model: str) -> tuple[bytes, bytes, bytes, bytes]:
    usage = {"input_tokens": 9, "output_tokens": 12}
    whole = {"id": "msg_b", "type": "message", "role": "assistant", "model": model,
             "content": [{"type": "text", "text": "Hello there!"}], "stop_reason": "end_turn",
             "stop_sequence": None, "usage": usage}
    start = dict(whole, content=[], stop_reason=None, usage={"input_tokens": 9, "output_tokens": 1})
    head = _sse({"type": "message_start", "message": start}, "message_start") + _sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start")
    piece = _sse({"type": "content_block_delta", "index": 0,
                  "delta": {"type": "text_delta", "text": "word "}}, "content_block_delta")
    tail = _sse({"type": "content_block_stop", "index": 0}, "content_block_stop") + _sse(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 12}}, "message_delta") + \
        _sse({"type": "message_stop"}, "message_stop")
    return json.dumps(whole).encode(), head, piece, tail


def _gemini(model: str) -> tuple[bytes, bytes, bytes, bytes]:
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 12, "totalTokenCount": 21}

    def chunk(text: str, final: bool) -> dict:
        cand = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if final:
            cand["finishReason"] = "STOP"
        return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model}

    whole = chunk("Hello there!", True)
    return (json.dumps(whole).encode(), b"", _sse(chunk("word ", False)),
            _sse(chunk("", True)))


def _responses(model: str) -> tuple[bytes, bytes, bytes, bytes]:
    """The Responses event sequence for one message item (``sequence_number`` left out: the
    pieces are repeated, and nothing downstream reads it)."""
    usage = {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 12,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 21}
    item = {"id": "msg_b", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "text": "Hello there!"}]}
    whole = {"id": "resp_b", "object": "response", "created_at": _CREATED, "status": "completed",
             "model": model, "output": [item], "usage": usage}
    opening = dict(whole, status="in_progress", output=[], usage=None)
    at = {"item_id": "msg_b", "output_index": 0, "content_index": 0}
    ev = lambda kind, **fields: _sse({"type": kind, **fields}, kind)
    head = ev("response.created", response=opening) + \
        ev("response.in_progress", response=opening) + \
        ev("response.output_item.added", output_index=0,
           item=dict(item, status="in_progress", content=[])) + \
        ev("response.content_part.added", **at,
           part={"type": "output_text", "annotations": [], "text": ""})
    piece = ev("response.output_text.delta", **at, delta="word ", logprobs=[])
    tail = ev("response.output_text.done", **at, text="Hello there!", logprobs=[]) + \
        ev("response.content_part.done", **at, part=item["content"][0]) + \
        ev("response.output_item.done", output_index=0, item=item) + \
        ev("response.completed", response=whole)
    return json.dumps(whole).encode(), head, piece, tail


_KINDS = {"openai": _openai, "claude": _claude, "gemini": _gemini, "responses": _responses}


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        self.busy = True
        asyncio.ensure_future(self._answer(head[0].split(" ")[1].encode(), body))

    async def _answer(self, path: bytes, body: bytes) -> None:
        gemini = _GEMINI_PATH.search(path)
        if gemini:
            kind, model = "gemini", gemini.group(1).decode()
            stream = gemini.group(2) == b"streamGenerateContent"
        else:
            kind = "claude" if path.endswith(b"/messages") else \
                "responses" if path.endswith(b"/responses") else "openai"
            found = _MODEL.search(body)
            model = found.group(1).decode() if found else "m"
            stream = b'"stream":true' in body.replace(b" ", b"")
        whole, head, piece, tail = _KINDS[kind](model)
        assert self.transport is not None
        if not stream:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(whole), whole))
        else:
            await self._stream(head, piece, tail, *_chunks(model))
        self.busy = False
        if self.buf and not self.transport.is_closing():
            self._next()

    async def _stream(self, head: bytes, piece: bytes, tail: bytes, n: int, gap: float) -> None:
        write = self.transport.write  # type: ignore[union-attr]
        write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
        frame = b"%x\r\n%s\r\n" % (len(piece), piece)
        if head:
            write(b"%x\r\n%s\r\n" % (len(head), head))
        for _ in range(n):
            if self.transport.is_closing():  # type: ignore[union-attr]
                return
            write(frame)
            await asyncio.sleep(gap)
        write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Conn, "127.0.0.1", port,
                                                            backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
