"""The fault suite's shared stack: four fake upstreams (one per kind) and one daemon whose config
gives every cell of the grid its own credential, so cells run side by side without sharing a
failure mode or a cooldown.

A cell is (client format, streaming, route, fault).  ``route`` is ``same`` (the upstream speaks
the client's format: the passthrough path) or ``cross`` (a translated path).  The cell's
credential has the key ``fk-<cell>`` and offers one model under the alias ``<cell>``, so the
client asks for model ``<cell>`` and the fake applies the cell's failure mode to that key only.  Timeouts are short
(`TIMEOUTS`) so the timeout cells stay quick.
"""

from __future__ import annotations

import http.client
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import Daemon, free_port

from tests.fakes.upstreams import start_fake

CLIENT_KEY = "client-key-faults-0001"
CLIENTS = ("openai_chat", "openai_responses", "claude", "gemini")
# The upstream kind a client format reaches on each route.
ROUTES = {
    "same": {"openai_chat": "openai", "openai_responses": "responses", "claude": "claude",
             "gemini": "gemini"},
    "cross": {"openai_chat": "claude", "openai_responses": "gemini", "claude": "openai",
              "gemini": "responses"},
}
FAULTS = ("refused", "first_byte_timeout", "stall", "500", "429_retry_after", "429",
          "malformed", "truncated", "html_error")
# Short upstream timeouts and client-side limits, so timeout cells end in a second or two, yet
# long enough that a healthy answer on a busy 2-core machine is never cut.
TIMEOUTS = {"connect": 2, "first-byte": 1.5, "idle": 1.5, "client-idle": 1.0, "client-body": 1.0}
UPSTREAM_MODEL = {"openai": "up-model", "responses": "gpt-5", "claude": "claude-sonnet-4-5",
                  "gemini": "gemini-2.5-flash"}


@dataclass(frozen=True)
class Cell:
    """One cell of the upstream-fault grid."""

    client: str
    stream: bool
    route: str
    fault: str

    @property
    def upstream(self) -> str:
        return ROUTES[self.route][self.client]

    @property
    def name(self) -> str:
        short = {"openai_chat": "oc", "openai_responses": "or", "claude": "cl", "gemini": "ge"}
        return f"{short[self.client]}{'s' if self.stream else 'p'}{self.route[0]}-{self.fault}"

    @property
    def key(self) -> str:
        return f"fk-{self.name}"

    @property
    def model(self) -> str:
        return self.name


def all_cells() -> list[Cell]:
    return [Cell(c, s, r, f) for f in FAULTS for r in ROUTES for c in CLIENTS
            for s in (False, True)]


def _entry(kind: str, cell: Cell, base: str) -> dict:
    return {"api-key": cell.key, "base-url": base,
            "models": [{"name": UPSTREAM_MODEL[kind], "alias": cell.model}]}


def stack_config(fakes: dict[str, Any], cells: list[Cell], extra_cells: list[Cell] = ()) -> dict:
    """Daemon config: one credential per cell on its fake (or on a dead port for ``refused``)."""
    dead = f"http://127.0.0.1:{free_port()}"
    config: dict[str, Any] = {"api-keys": [CLIENT_KEY], "request-retry": 0, "timeouts": TIMEOUTS,
                              "streaming": {"keepalive-seconds": 0}, "shutdown-timeout": 2,
                              "gemini-api-key": [], "claude-api-key": [], "codex-api-key": [],
                              "openai-compatibility": []}
    for cell in list(cells) + list(extra_cells):
        kind = cell.upstream
        base = dead if cell.fault == "refused" else fakes[kind].base_url
        if kind == "openai":
            entry = {"name": cell.name, "base-url": base + "/v1",
                     "api-key-entries": [{"api-key": cell.key}],
                     "models": [{"name": UPSTREAM_MODEL[kind], "alias": cell.model}]}
            config["openai-compatibility"].append(entry)
        elif kind == "responses":
            config["codex-api-key"].append(_entry(kind, cell, base + "/v1"))
        else:
            config[f"{kind}-api-key"].append(_entry(kind, cell, base))
    return config


# -- client requests ------------------------------------------------------------------------------

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"}
PROMPT = "hello"


def client_request(client: str, model: str, stream: bool) -> tuple[str, dict]:
    """(path, body) of a one-turn request in ``client``'s format."""
    if client == "openai_chat":
        return "/v1/chat/completions", {"model": model, "stream": stream,
                                        "messages": [{"role": "user", "content": PROMPT}]}
    if client == "openai_responses":
        return "/v1/responses", {"model": model, "stream": stream, "input": PROMPT}
    if client == "claude":
        return "/v1/messages", {"model": model, "stream": stream, "max_tokens": 32,
                                "messages": [{"role": "user", "content": PROMPT}]}
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{model}:{action}", {"contents": [{"role": "user",
                                                             "parts": [{"text": PROMPT}]}]}


@dataclass
class Answer:
    """What a client got back, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(port: int, client: str, model: str, stream: bool, timeout: float = 20.0) -> Answer:
    """One request in ``client``'s format on a fresh connection."""
    path, body = client_request(client, model, stream)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body), headers=AUTH)
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@pytest.fixture(scope="session")
def fakes():
    made = {kind: start_fake(kind, chunks=4) for kind in ("openai", "responses", "claude", "gemini")}
    yield made
    for fake in made.values():
        fake.stop()


@pytest.fixture(scope="session")
def grid_daemon(fakes, tmp_path_factory):
    """The daemon serving every grid cell (plus ``ok`` cells used as health probes)."""
    cells = all_cells()
    probes = [Cell(c, False, r, "ok") for r in ROUTES for c in CLIENTS]
    for cell in cells:
        if cell.fault != "refused":
            mode, opts = _fake_mode(cell.fault)
            fakes[cell.upstream].set_mode(mode, key=cell.key, **opts)
    daemon = Daemon(tmp_path_factory.mktemp("faults"), stack_config(fakes, cells, probes)).start()
    yield daemon
    daemon.stop()


def _fake_mode(fault: str) -> tuple[str, dict]:
    return {
        "first_byte_timeout": ("slow", {"delay": 6.0}),
        "stall": ("stall", {}),
        "500": ("500", {}),
        "429_retry_after": ("429", {"retry_after": 7}),
        "429": ("429", {}),
        "malformed": ("malformed", {}),
        "truncated": ("truncated", {}),
        "html_error": ("html_error", {}),
    }[fault]
