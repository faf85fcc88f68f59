"""Tests for cliproxyd/credentials/store.py (auth-dir scanning and atomic writes)."""

from __future__ import annotations

import json
import os
import stat

from cliproxyd.credentials import store


def test_scan_reads_accounts_and_reports_corrupt_files(tmp_path):
    (tmp_path / "claude-a@x.json").write_text(json.dumps({"type": "Claude", "access_token": "t"}))
    (tmp_path / "broken.json").write_text("{nope")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.json").write_text("{}")
    os.symlink(tmp_path / "claude-a@x.json", tmp_path / "link.json")
    records = {r.name: r for r in store.scan(str(tmp_path))}
    assert set(records) == {"broken.json", "claude-a@x.json"}
    assert records["claude-a@x.json"].kind == "claude" and not records["claude-a@x.json"].problem
    assert records["broken.json"].problem and records["broken.json"].data == {}
    assert store.scan(str(tmp_path / "missing")) == []


def test_write_is_0600_in_a_0700_dir_and_drops_private_keys(tmp_path):
    folder = tmp_path / "auth"
    store.write(str(folder), "codex-a.json", {"type": "codex", "_plan": "plus", "email": "a"})
    path = folder / "codex-a.json"
    assert json.loads(path.read_text()) == {"type": "codex", "email": "a"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert [p.name for p in folder.iterdir()] == ["codex-a.json"]  # no temp files left
    record = store.read(str(folder), "codex-a.json")
    assert record is not None and record.data["email"] == "a" and record.mtime_ns
    assert store.read(str(folder), "../etc.json") is None
    assert store.read(str(folder), "absent.json") is None
