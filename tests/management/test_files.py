"""cliproxyd.management.files: atomic 0600 writes, strict auth-file names, links never followed,
listings without token values."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cliproxyd.management import files
from cliproxyd.management.files import AuthFileError


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_replaces_with_mode_0600_and_leaves_no_temp(tmp_path):
    target = tmp_path / "config.yaml"
    target.write_text("old")
    os.chmod(target, 0o644)
    files.atomic_write(str(target), b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o600
    assert os.listdir(tmp_path) == ["config.yaml"]


@pytest.mark.parametrize("name", ["a.json", "claude-a@b.com.json", "gemini-x_y-all.json", "A1+b=c,d.json"])
def test_plain_json_names_are_accepted(name):
    assert files.check_name(name) == name


@pytest.mark.parametrize("name, message", [
    ("", "invalid name"), ("../x.json", "invalid name"), ("a/b.json", "invalid name"),
    ("a\\b.json", "invalid name"), ("..json", "invalid name"), (".hidden.json", "invalid name"),
    ("a..b.json", "invalid name"), ("x.txt", "name must end with .json"), ("a\nb.json", "invalid name"),
    ("a\0.json", "invalid name"), ("sp ace.json", "invalid name"), ("x" * 300 + ".json", "invalid name"),
])
def test_odd_names_are_refused(name, message):
    with pytest.raises(AuthFileError, match=message) as info:
        files.check_name(name)
    assert info.value.status == 400


def test_write_list_and_describe_without_tokens(tmp_path):
    auth = tmp_path / "auth"
    files.write_auth_file(str(auth), "claude-a@b.com.json", {
        "type": "claude", "email": "a@b.com", "access_token": "SECRET-ACCESS",
        "refresh_token": "SECRET-REFRESH", "prefix": "team"})
    (auth / "broken.json").write_text("{not json")
    (auth / "notes.txt").write_text("ignored")
    os.symlink(tmp_path / "elsewhere.json", auth / "link.json")
    assert mode(auth) == 0o700 and mode(auth / "claude-a@b.com.json") == 0o600
    listing = files.list_auth_files(str(auth))
    assert [e["name"] for e in listing] == ["broken.json", "claude-a@b.com.json"]
    broken, good = listing
    assert broken["status"] == "error" and broken["type"] == "unknown"
    assert (good["type"], good["email"], good["status"], good["disabled"], good["prefix"]) == (
        "claude", "a@b.com", "active", False, "team")
    assert len(good["auth_index"]) == 16
    assert "SECRET" not in json.dumps(listing)


def test_links_are_never_followed(tmp_path):
    auth = tmp_path / "auth"
    auth.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text('{"type": "claude"}')
    os.symlink(outside, auth / "link.json")
    with pytest.raises(AuthFileError) as info:
        files.read_auth_file(str(auth), "link.json")
    assert info.value.status == 404
    files.delete_auth_file(str(auth), "link.json")  # removes the link, not its target
    assert outside.exists() and not os.path.lexists(auth / "link.json")


def test_parse_auth_json_checks_shape_and_size():
    assert files.parse_auth_json(b'{"type": "codex"}') == {"type": "codex"}
    for bad in (b"[1]", b"nope", b"\xff\xfe"):
        with pytest.raises(AuthFileError) as info:
            files.parse_auth_json(bad)
        assert info.value.status == 400
    with pytest.raises(AuthFileError) as info:
        files.parse_auth_json(b" " * (files.MAX_AUTH_FILE_BYTES + 1))
    assert info.value.status == 413


def test_delete_missing_is_404(tmp_path):
    with pytest.raises(AuthFileError) as info:
        files.delete_auth_file(str(tmp_path), "gone.json")
    assert info.value.status == 404
