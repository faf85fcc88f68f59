"""Shared pytest fixtures.  ``daemon`` builds `harness.Daemon` objects and stops them all
at the end of the test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# harness.py is imported as a top-level module (`from harness import Daemon`) by tests in any
# sub-folder; make sure its folder is importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Daemon

# The fake OAuth providers serve plain HTTP on 127.0.0.1; oauthlib refuses that without its own
# switch.  Daemon subprocesses inherit it through the harness environment.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


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
