"""Tests for cliproxyd/credentials/login.py: ``cliproxyd login`` driven end to end.

The command runs as a subprocess with ``--no-browser`` against `fakes.oauth.FakeOAuth`; the test
reads the printed URL and plays the browser (the fake consents at once and redirects to the
command's redirect port).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml
from harness import REPO, free_port

from tests.fakes.oauth import FakeOAuth

WAIT = 30.0


@pytest.fixture(params=["claude", "codex"])
def provider(request):
    fake = FakeOAuth(request.param)
    yield fake
    fake.stop()


def write_config(tmp_path: Path, fake: FakeOAuth, port: int) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"auth-dir": str(tmp_path / "auth"),
                                    "oauth": {fake.kind: fake.config("http://127.0.0.1:9", port)}}))
    return path


def start_login(config: Path, kind: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "cliproxyd", "--config", str(config), "login",
                             kind, "--no-browser"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(config.parent))


def read_url(proc: subprocess.Popen) -> str:
    """The authorize URL the command prints (the first line starting with http)."""
    found: list[str] = []

    def reader() -> None:
        for line in proc.stdout:
            if line.startswith("http"):
                found.append(line.strip())
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert found, proc.stderr.read() if proc.poll() is not None else "no URL printed"
    return found[0]


def test_login_end_to_end_writes_the_auth_file(tmp_path, provider):
    port = free_port()
    proc = start_login(write_config(tmp_path, provider, port), provider.kind)
    try:
        url = read_url(proc)
        query = parse_qs(urlsplit(url).query)
        assert query["redirect_uri"][0].startswith(f"http://localhost:{port}/")
        # A forged state on the redirect port is refused, makes no token request, and the
        # command keeps waiting for the real callback.
        path = urlsplit(query["redirect_uri"][0]).path
        forged = requests.get(f"http://127.0.0.1:{port}{path}?code=x&state={'a' * 32}",
                              timeout=WAIT)
        assert forged.status_code == 404 and provider.token_requests == []
        page = requests.get(url, timeout=WAIT)  # the browser: consent, then the redirect
        assert page.status_code == 200 and "Authentication successful" in page.text
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    (name,) = os.listdir(tmp_path / "auth")
    expected = {"claude": "claude-alice@example.com.json",
                "codex": "codex-alice@example.com-plus.json"}[provider.kind]
    assert name == expected and f"Saved {tmp_path / 'auth' / name}" in out
    saved = json.loads((tmp_path / "auth" / name).read_text())
    assert saved["type"] == provider.kind
    assert saved["access_token"] == provider.access_tokens[-1]
    assert stat.S_IMODE(os.stat(tmp_path / "auth" / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "auth").st_mode) == 0o700
    (call,) = provider.token_requests
    assert call.fields["redirect_uri"] == query["redirect_uri"][0]


def test_login_exits_1_when_the_provider_refuses(tmp_path):
    fake = FakeOAuth("claude")
    fake.state.deny = True
    try:
        proc = start_login(write_config(tmp_path, fake, free_port()), "claude")
        try:
            page = requests.get(read_url(proc), timeout=WAIT)
            assert page.status_code == 400 and "access_denied" in page.text
            _, err = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        fake.stop()
    assert proc.returncode == 1 and "access_denied" in err
    assert fake.token_requests == [] and not (tmp_path / "auth").exists()


def test_login_reports_a_taken_redirect_port(tmp_path):
    fake = FakeOAuth("codex")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            result = subprocess.run(
                [sys.executable, "-m", "cliproxyd", "--config",
                 str(write_config(tmp_path, fake, port)), "login", "codex", "--no-browser"],
                capture_output=True, text=True, timeout=WAIT, check=False,
                env=dict(os.environ, PYTHONPATH=str(REPO)))
        finally:
            fake.stop()
    assert result.returncode == 1 and f"localhost:{port}" in result.stderr


def test_login_usage_errors_exit_64():
    result = subprocess.run([sys.executable, "-m", "cliproxyd", "login", "gemini"],
                            capture_output=True, text=True, timeout=WAIT, check=False,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 64 and "invalid choice" in result.stderr
