"""Shared pytest fixtures.  ``daemon`` builds `harness.Daemon` objects and stops them all
at the end of the test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# harness.py is imported as a top-level module (`from harness import Daemon`) by tests in any
# sub-folder; make sure its folder is importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Daemon


@pytest.fixture
def daemon(tmp_path):
    """Factory: ``daemon(config_dict_or_text, env=..., start=True)`` → a running `Daemon`."""
    made: list[Daemon] = []

    def make(config=None, *, env=None, host="127.0.0.1", start=True, name=None) -> Daemon:
        workdir = tmp_path / (name or f"d{len(made)}")
        d = Daemon(workdir, config, env=env, host=host)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        if d.alive():
            d.stop()
        else:
            d.kill()
