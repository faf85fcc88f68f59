"""Auth-file endpoints end to end (issue 5): upload (multipart, repeatable ``file`` fields, the
contract's ``channel``/``prefix``; raw JSON with ``?name=``), list without token values,
download, enable/disable, delete one / several / all; strict names, not-JSON, oversize; files
0600 in a 0700 folder; every change re-reads the credential set (a reload, no restart)."""

from __future__ import annotations

import json
import os
import re
import stat
import uuid

import pytest

SECRET = "auth-files-secret-0001"
MGMT = {"Authorization": f"Bearer {SECRET}"}
BASE = "/v0/management/auth-files"
CLAUDE = {"type": "claude", "email": "a@b.com", "access_token": "TOKEN-ACCESS-1",
          "refresh_token": "TOKEN-REFRESH-1"}
CODEX = {"type": "codex", "email": "c@d.com", "access_token": "TOKEN-ACCESS-2"}


def multipart(files: list[tuple[str, str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, dict]:
    """A multipart/form-data body: ``files`` are (field, filename, content)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    for field, filename, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                     f'filename="{filename}"\r\nContent-Type: application/json\r\n\r\n'.encode()
                     + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {**MGMT, "Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture
def d(daemon):
    return daemon({"remote-management": {"secret-key": SECRET}})


def listing(d) -> list[dict]:
    resp = d.request("GET", BASE, headers=MGMT)
    assert resp.status == 200
    return resp.json()["files"]


def reloads(d) -> float:
    text = d.request("GET", "/metrics").body.decode()
    found = re.search(r'^cliproxyd_config_reloads_total\{result="success"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_upload_list_download_disable_delete(d):
    auth = d.workdir / "auth"
    body, headers = multipart([("file", "claude-a@b.com.json", json.dumps(CLAUDE).encode()),
                               ("file", "codex-c@d.com.json", json.dumps(CODEX).encode())])
    resp = d.request("POST", BASE, headers=headers, body=body)
    assert resp.status == 200
    assert resp.json() == {"status": "ok", "uploaded": 2,
                           "files": ["claude-a@b.com.json", "codex-c@d.com.json"]}
    assert mode(auth) == 0o700 and mode(auth / "claude-a@b.com.json") == 0o600
    assert reloads(d) == 1  # the credential set was re-read without a restart

    files = listing(d)
    assert [(f["name"], f["type"], f["email"], f["status"], f["disabled"]) for f in files] == [
        ("claude-a@b.com.json", "claude", "a@b.com", "active", False),
        ("codex-c@d.com.json", "codex", "c@d.com", "active", False)]
    assert all(f["size"] > 0 and f["modtime"].endswith("Z") for f in files)
    assert "TOKEN-" not in json.dumps(files)

    down = d.request("GET", BASE + "/download?name=claude-a@b.com.json", headers=MGMT)
    assert down.status == 200 and json.loads(down.body) == CLAUDE
    assert down.headers["Content-Disposition"] == 'attachment; filename="claude-a@b.com.json"'

    resp = d.request("PATCH", BASE + "/status", headers=MGMT,
                     json_body={"name": "codex-c@d.com.json", "disabled": True})
    assert resp.json() == {"status": "ok", "disabled": True}
    assert [f["status"] for f in listing(d)] == ["active", "disabled"]
    assert json.loads((auth / "codex-c@d.com.json").read_text())["access_token"] == "TOKEN-ACCESS-2"

    assert d.request("DELETE", BASE + "?name=claude-a@b.com.json", headers=MGMT).json() == {"status": "ok"}
    assert [f["name"] for f in listing(d)] == ["codex-c@d.com.json"]
    assert d.request("DELETE", BASE + "?name=claude-a@b.com.json", headers=MGMT).status == 404
    assert d.request("DELETE", BASE + "?all=true", headers=MGMT).json() == {"status": "ok", "deleted": 1}
    assert listing(d) == []


def test_raw_json_upload_and_several_deletes(d):
    for name in ("one.json", "two.json"):
        resp = d.request("POST", BASE + f"?name={name}", headers=MGMT, json_body=CLAUDE)
        assert resp.status == 200 and resp.json() == {"status": "ok"}
    resp = d.request("DELETE", BASE + "?name=one.json&name=missing.json", headers=MGMT)
    assert resp.status == 207
    assert resp.json()["deleted"] == 1 and resp.json()["failed"][0]["name"] == "missing.json"
    resp = d.request("DELETE", BASE, headers=MGMT, json_body={"names": ["two.json"]})
    assert resp.status == 200 and listing(d) == []


def test_channel_and_prefix_from_the_contract(d):
    account = {"type": "service_account", "project_id": "proj-1", "client_email": "sa@proj-1.iam",
               "private_key": "-----BEGIN PRIVATE KEY-----\nSECRETKEY\n"}
    body, headers = multipart([("file", "vertex-service-account.json", json.dumps(account).encode())],
                              {"channel": "vertex", "prefix": "prod"})
    assert d.request("POST", BASE, headers=headers, body=body).status == 200
    [entry] = listing(d)
    assert (entry["name"], entry["type"], entry["prefix"]) == ("vertex-prod-proj-1.json", "vertex", "prod")
    stored = json.loads((d.workdir / "auth" / "vertex-prod-proj-1.json").read_text())
    assert stored["service_account"] == account and stored["project_id"] == "proj-1"
    assert "SECRETKEY" not in json.dumps(listing(d))


@pytest.mark.parametrize("name", ["../evil.json", "..%2Fevil.json", "a%5Cb.json", ".hidden.json",
                                  "evil.txt", "", "sp%20ace.json"])
def test_odd_names_are_400(d, name):
    resp = d.request("POST", BASE + f"?name={name}", headers=MGMT, json_body=CLAUDE)
    assert resp.status == 400
    assert d.request("GET", BASE + f"/download?name={name}", headers=MGMT).status == 400
    assert not (d.workdir / "evil.json").exists() and listing(d) == []


def test_multipart_traversal_name_is_400(d):
    body, headers = multipart([("file", "../../evil.json", b"{}")])
    assert d.request("POST", BASE, headers=headers, body=body).status == 400
    assert not (d.workdir / "evil.json").exists()


def test_not_json_oversized_and_empty_uploads(d):
    assert d.request("POST", BASE + "?name=x.json", headers=MGMT, body=b"not json").status == 400
    assert d.request("POST", BASE + "?name=x.json", headers=MGMT, body=b"[1, 2]").status == 400
    big = json.dumps({"type": "claude", "pad": "x" * (1024 * 1024)}).encode()
    assert d.request("POST", BASE + "?name=x.json", headers=MGMT, body=big).status == 413
    body, headers = multipart([], {"channel": "claude"})
    assert d.request("POST", BASE, headers=headers, body=body).status == 400
    body, headers = multipart([("file", "x.json", b"{}")], {"channel": "nonsense"})
    assert d.request("POST", BASE, headers=headers, body=body).status == 400
    assert listing(d) == []


def test_partial_multipart_upload_is_207(d):
    body, headers = multipart([("file", "good.json", b'{"type": "claude"}'),
                               ("file", "bad.json", b"{broken")])
    resp = d.request("POST", BASE, headers=headers, body=body)
    assert resp.status == 207
    assert resp.json()["files"] == ["good.json"] and resp.json()["failed"][0]["name"] == "bad.json"


def test_status_and_download_errors(d):
    assert d.request("PATCH", BASE + "/status", headers=MGMT, json_body={"name": "x.json"}).status == 400
    assert d.request("PATCH", BASE + "/status", headers=MGMT,
                     json_body={"name": "x.json", "disabled": True}).status == 404
    assert d.request("GET", BASE + "/download?name=missing.json", headers=MGMT).status == 404
    assert d.request("DELETE", BASE, headers=MGMT).status == 400


def test_a_planted_link_is_not_followed(d, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(CLAUDE))
    auth = d.workdir / "auth"
    auth.mkdir(mode=0o700, exist_ok=True)
    os.symlink(outside, auth / "link.json")
    assert listing(d) == []
    assert d.request("GET", BASE + "/download?name=link.json", headers=MGMT).status == 404
