"""Upstream faults × every client format × streaming or not × passthrough or translated
(issue 8; reliability catalogue §2.2).

Each test fires one fault's 16 cells at the shared daemon at once, then checks every cell: the
status, the error body in the client's own format (or, once a stream has started, the format's
in-stream terminal error and no clean terminator), and that the daemon still answers healthy
requests on every route afterwards.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import CLIENTS, ROUTES, Answer, Cell, send

_ERROR_STATUS = {  # fault → status of an error answered before the stream started
    "refused": 502, "first_byte_timeout": 504, "stall": 504, "500": 500,
    "429_retry_after": 429, "429": 429, "malformed": 502, "truncated": 502, "html_error": 502,
}
_OPENAI_TYPE = {502: "server_error", 504: "server_error", 500: "server_error",
                429: "rate_limit_error"}
_CLAUDE_TYPE = {502: "api_error", 504: "timeout_error", 500: "api_error", 429: "rate_limit_error"}
_GEMINI_STATUS = {502: "INTERNAL", 504: "DEADLINE_EXCEEDED", 500: "INTERNAL",
                  429: "RESOURCE_EXHAUSTED"}


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) of each SSE event in a whole stream body (comments skipped)."""
    out = []
    for block in body.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            out.append((name, "\n".join(data)))
    return out


def check_error_body(client: str, answer: Answer, status: int) -> dict:
    """The JSON error body of ``answer`` in ``client``'s format, for ``status``."""
    assert answer.status == status, answer.body[:300]
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert "<html" not in answer.body.decode().lower()  # an upstream page is never relayed
    if client == "claude":
        assert body["type"] == "error" and set(body) == {"type", "error"}
        assert err["type"] == _CLAUDE_TYPE[status]
    elif client == "gemini":
        assert err["code"] == status and err["status"] == _GEMINI_STATUS[status]
    else:
        assert set(body) == {"error"} and err["type"] == _OPENAI_TYPE[status]
    return err


def check_stream_error(client: str, answer: Answer) -> None:
    """A started stream that ends with ``client``'s in-stream error and no clean terminator."""
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = sse_events(answer.body)
    assert len(events) >= 2, answer.body  # some output, then the error
    name, data = events[-1]
    if client == "openai_chat":
        assert json.loads(data)["error"]["type"] == "server_error"
        assert all(d != "[DONE]" for _, d in events)
    elif client == "openai_responses":
        names = [n for n, _ in events]
        assert name == "response.failed" and "error" in names
        assert json.loads(data)["response"]["status"] == "failed"
        assert "response.completed" not in names
        assert names.count("response.created") == 1, names  # one response, not a second one
    elif client == "claude":
        assert name == "error" and json.loads(data)["type"] == "error"
        assert "message_stop" not in [n for n, _ in events]
    else:
        err = json.loads(data)["error"]
        assert err["status"] in ("INTERNAL", "DEADLINE_EXCEEDED") and err["code"] in (502, 504)


def _starts_before_failing(cell: Cell) -> bool:
    """Whether the client sees output before the fault: the fake sends some events first, and
    the client's encoder turns them into output (a Gemini client has nothing to show for the
    Responses upstream's opening `response.created`/`in_progress` events)."""
    if not cell.stream:
        return False
    if cell.fault == "truncated":
        return True
    return cell.fault == "stall" and not (cell.client == "gemini" and cell.upstream == "responses")


def check_cell(cell: Cell, answer: Answer) -> None:
    status = _ERROR_STATUS[cell.fault]
    if _starts_before_failing(cell):
        check_stream_error(cell.client, answer)
        return
    if cell.fault == "malformed" and cell.stream and answer.status == 200:
        # The bad event follows a good one: whether the good one was read (and written to the
        # client) before the bad one arrived depends on how the bytes were chunked.
        check_stream_error(cell.client, answer)
        return
    err = check_error_body(cell.client, answer, status)
    if cell.fault == "429_retry_after":
        assert answer.headers.get("retry-after") == "7"
    if cell.fault == "refused":
        assert "reach the upstream" in err["message"]
    if cell.fault in ("first_byte_timeout", "stall"):
        assert "timed out" in err["message"]


def run_cells(port: int, cells: list[Cell]) -> list[tuple[Cell, Answer]]:
    with ThreadPoolExecutor(len(cells)) as pool:
        return list(pool.map(lambda c: (c, send(port, c.client, c.model, c.stream)), cells))


def check_still_serving(port: int) -> None:
    probes = [Cell(c, s, r, "ok") for r in ROUTES for c in CLIENTS for s in (False,)]
    for cell, answer in run_cells(port, probes):
        assert answer.status == 200, (cell.name, answer.body[:300])
        assert "Hello from" in answer.body.decode()


@pytest.mark.parametrize("fault", list(_ERROR_STATUS))
def test_fault_cells(grid_daemon, fault):
    cells = [Cell(c, s, r, fault) for r in ROUTES for c in CLIENTS for s in (False, True)]
    failures = []
    for cell, answer in run_cells(grid_daemon.port, cells):
        try:
            check_cell(cell, answer)
        except (AssertionError, KeyError, ValueError) as exc:
            failures.append(f"{cell.name} ({cell.client} ← {cell.upstream}, "
                            f"{'stream' if cell.stream else 'plain'}): {exc!r}")
    assert not failures, "\n".join(failures)
    check_still_serving(grid_daemon.port)
    assert grid_daemon.alive()
    assert "Traceback" not in grid_daemon.logs
