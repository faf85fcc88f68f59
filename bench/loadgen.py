"""An asyncio HTTP/1.1 load client for the streaming lanes (wrk cannot time the first byte of a
stream or hold a thousand streams open).  Minimal on purpose: keep-alive connections, chunked or
Content-Length bodies, timings from `time.perf_counter`.

* `stream_timings(url, path, body, headers, n)` → [(ttfb, total)] for ``n`` sequential streams.
* `stream_rate(url, path, body, headers, concurrency, seconds)` → (completed streams, errors).
* `hold_streams(url, path, body, headers, count)` opens ``count`` streams and returns once each
  has delivered its first event (`HeldStreams.close()` ends them).
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str, body: bytes, headers: dict[str, str],
                      on_first=None) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port,
                                                                     limit=1 << 20)
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        reader = self.reader
        assert reader is not None
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        data = b""
        if "transfer-encoding: chunked" in head:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                chunk = await reader.readexactly(size + 2)
                if on_first is not None:
                    on_first()
                    on_first = None
                data += chunk[:-2]
        else:
            length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
            data = await reader.readexactly(length)
            if on_first is not None:
                on_first()
        if "connection: close" in head:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def stream_timings(url: str, path: str, body: dict, headers: dict[str, str],
                         n: int) -> list[tuple[float, float]]:
    """(time to first body byte, total time) of ``n`` streams, one after the other."""
    conn, raw, out = _Conn(*_endpoint(url)), json.dumps(body).encode(), []
    for _ in range(n):
        start = time.perf_counter()
        first: list[float] = []
        status, _ = await conn.request(path, raw, headers,
                                       on_first=lambda first=first: first.append(
                                           time.perf_counter()))
        if status != 200:
            raise RuntimeError(f"stream answered {status}")
        out.append((first[0] - start, time.perf_counter() - start))
    conn.close()
    return out


async def stream_rate(url: str, path: str, body: dict, headers: dict[str, str],
                      concurrency: int, seconds: float) -> tuple[int, int]:
    """Completed streams and failures in ``seconds`` with ``concurrency`` workers."""
    raw, deadline = json.dumps(body).encode(), time.perf_counter() + seconds
    done, failed = [0], [0]

    async def worker() -> None:
        conn = _Conn(*_endpoint(url))
        while time.perf_counter() < deadline:
            try:
                status, _ = await conn.request(path, raw, headers)
                if status == 200:
                    done[0] += 1
                else:
                    failed[0] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                failed[0] += 1
                conn.close()
        conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done[0], failed[0]


class HeldStreams:
    """Streams kept open (see `hold_streams`)."""

    def __init__(self, tasks: list[asyncio.Task], conns: list[_Conn]) -> None:
        self.tasks, self.conns = tasks, conns

    async def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def hold_streams(url: str, path: str, body: dict, headers: dict[str, str],
                       count: int, timeout: float = 60.0) -> HeldStreams:
    """Open ``count`` streams; return once every one has delivered its first event."""
    raw, started = json.dumps(body).encode(), asyncio.Semaphore(0)
    conns = [_Conn(*_endpoint(url)) for _ in range(count)]

    async def one(conn: _Conn) -> None:
        await conn.request(path, raw, headers, on_first=started.release)

    tasks = []
    for conn in conns:
        tasks.append(asyncio.ensure_future(one(conn)))
        await asyncio.sleep(0.002)  # do not flood the listen backlog
    async def all_started() -> None:
        for _ in range(count):
            await started.acquire()
    await asyncio.wait_for(all_started(), timeout)
    return HeldStreams(tasks, conns)
