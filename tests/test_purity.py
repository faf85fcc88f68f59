"""The sans-IO rule (STYLE.md 6.2.2, issue 3): protocol code never imports Tornado, reads the
clock or draws randomness; `now` and generated ids are passed in.

Checked by parsing (ast) every module of cliproxyd/formats, cliproxyd/routing, cliproxyd/providers
(except providers/transport.py, the one HTTP client user), config.py and its private
``_config*.py`` helpers, errors.py and credentials/oauth.py, whichever exist.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "cliproxyd"
PURE_PACKAGES = ("formats", "routing", "providers")
PURE_FILES = ("config.py", "errors.py", "credentials/oauth.py")
EXEMPT = {"providers/transport.py"}

BANNED_MODULES = {"tornado", "random", "uuid"}
CLOCK_FUNCS = {"time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
                        "perf_counter_ns"}}
DATE_NAMES = {"datetime", "date"}
DATE_FUNCS = {"now", "utcnow", "today"}


def pure_modules() -> list[Path]:
    files = [p for pkg in PURE_PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    files += [ROOT / f for f in PURE_FILES] + sorted(ROOT.glob("_config*.py"))
    return [p for p in files if p.is_file() and p.relative_to(ROOT).as_posix() not in EXEMPT]


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _import_problems(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        roots = [alias.name.split(".")[0] for alias in node.names]
        return [f"imports {r}" for r in roots if r in BANNED_MODULES]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        root = node.module.split(".")[0]
        if root in BANNED_MODULES:
            return [f"imports from {node.module}"]
        if root in CLOCK_FUNCS:
            return [f"imports {root}.{a.name}" for a in node.names if a.name in CLOCK_FUNCS[root]]
    return []


def _clock_problem(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Attribute):
        return None
    base = _dotted(node.value)
    if base in CLOCK_FUNCS and node.attr in CLOCK_FUNCS[base]:
        return f"reads the clock: {base}.{node.attr}"
    if base and base.split(".")[-1] in DATE_NAMES and node.attr in DATE_FUNCS:
        return f"reads the clock: {base}.{node.attr}"
    return None


def problems(source: str) -> list[str]:
    """Every violation of the rule in one module's source, with line numbers."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for message in _import_problems(node) + [_clock_problem(node)]:
            if message:
                found.append(f"line {node.lineno}: {message}")
    return found


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_is_pure(path: Path):
    assert problems(path.read_text(encoding="utf-8")) == []


def test_the_scan_covers_the_codecs():
    names = {p.relative_to(ROOT).as_posix() for p in pure_modules()}
    assert {"formats/ir.py", "formats/sse.py", "errors.py"} <= names
    assert "providers/transport.py" not in names


@pytest.mark.parametrize("source", [
    "import tornado",
    "import tornado.httpclient as hc",
    "from tornado.ioloop import IOLoop",
    "import random",
    "from random import choice",
    "import uuid",
    "from uuid import uuid4",
    "import time\nx = time.time()",
    "import time\nx = time.monotonic()",
    "from time import monotonic",
    "import datetime\nx = datetime.datetime.now()",
    "from datetime import datetime\nx = datetime.utcnow()",
    "from datetime import date\nx = date.today()",
    "import datetime as dt\nf = dt.datetime.now",
])
def test_checker_catches(source):
    assert problems(source)


@pytest.mark.parametrize("source", [
    "import time\ntime.sleep",  # not a clock read (and would be caught in review anyway)
    "import datetime\nx = datetime.datetime.fromtimestamp(now)",
    "from datetime import timezone",
    "import hashlib, json, re",
    "def f(now: float) -> float:\n    return now + 1",
])
def test_checker_allows(source):
    assert problems(source) == []
