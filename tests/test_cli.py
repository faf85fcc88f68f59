"""cliproxyd/cli.py: exit codes 0/64/78, --version, --check-config, config discovery and
hash-secret, run as the real command (``python -m cliproxyd``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cliproxyd import __version__
from cliproxyd.cli import find_config
from cliproxyd.secrets import verify_secret

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "etc" / "cliproxyd" / "config.yaml"


def run(*args: str, cwd: Path | None = None, stdin: str = "", env: dict | None = None):
    full_env = {k: v for k, v in os.environ.items() if k not in ("CLIPROXYD_CONFIG", "MANAGEMENT_PASSWORD")}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "cliproxyd", *args], cwd=cwd or REPO, input=stdin,
                          capture_output=True, text=True, env=full_env, timeout=60, check=False)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cliproxyd {__version__}"


@pytest.mark.parametrize("args", [["--bogus"], ["--config"], ["no-such-command"], ["--check-config", "x"]])
def test_usage_errors_exit_64(args):
    result = run(*args)
    assert result.returncode == 64
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_ok(tmp_path):
    cfg = write(tmp_path / "c.yaml", "port: 9000\napi-keys: [a]\n")
    result = run("--check-config", "--config", str(cfg))
    assert result.returncode == 0
    assert "configuration ok" in result.stdout


def test_check_config_example_file_is_valid():
    result = run("--check-config", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr


def test_check_config_prints_every_problem_and_exits_78(tmp_path):
    cfg = write(tmp_path / "c.yaml", "port: seventy\nrouting:\n  strategy: random\nap-keys: [a]\n")
    result = run("--check-config", "--config", str(cfg))
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert any(f"{cfg}:1: port" in line for line in lines)
    assert any(f"{cfg}:3: routing.strategy" in line for line in lines)
    assert any(f"{cfg}:4: ap-keys" in line and "api-keys" in line for line in lines)  # did you mean
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["a: [b\n", "- just\n- a list\n", "port: 1\nport: 2\n"])
def test_yaml_errors_exit_78_without_traceback(tmp_path, text):
    cfg = write(tmp_path / "c.yaml", text)
    result = run("--check-config", "--config", str(cfg))
    assert result.returncode == 78
    assert str(cfg) in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_exit_78(tmp_path):
    result = run("--check-config", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 78
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_certificate_fails_check_config(tmp_path):
    cfg = write(tmp_path / "c.yaml", "tls:\n  enable: true\n  cert: /nonexistent/c.pem\n  key: /nonexistent/k.pem\n")
    result = run("--check-config", "--config", str(cfg))
    assert result.returncode == 78
    assert "tls.cert" in result.stderr and "/nonexistent/c.pem" in result.stderr


def test_config_discovery_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config("explicit.yaml", {"CLIPROXYD_CONFIG": "env.yaml"}) == "explicit.yaml"
    assert find_config(None, {"CLIPROXYD_CONFIG": "env.yaml"}) == "env.yaml"
    write(tmp_path / "config.yaml", "")
    assert find_config(None, {}) == "./config.yaml"


def test_config_from_environment_and_working_directory(tmp_path):
    env_cfg = write(tmp_path / "env.yaml", "port: notaport\n")
    result = run("--check-config", env={"CLIPROXYD_CONFIG": str(env_cfg)})
    assert result.returncode == 78 and "env.yaml" in result.stderr
    write(tmp_path / "config.yaml", "port: 9001\n")
    result = run("--check-config", cwd=tmp_path)
    assert result.returncode == 0 and str(tmp_path / "config.yaml") in result.stdout


def test_hash_secret_prints_a_usable_bcrypt_hash():
    result = run("hash-secret", stdin="my management secret\n")
    assert result.returncode == 0
    hashed = result.stdout.strip()
    assert hashed.startswith("$2b$")
    assert verify_secret("my management secret", hashed)
    assert not verify_secret("my management secret\n", hashed)
    assert "my management secret" not in result.stdout + result.stderr


def test_hash_secret_refuses_an_empty_secret():
    result = run("hash-secret", stdin="\n")
    assert result.returncode == 64
    assert "empty" in result.stderr


def test_log_lines_match_the_standard_formatter_across_second_boundaries():
    """The formatter reuses the date-time text within a second; it must never reuse it across
    one (records arrive out of order from threads too)."""
    import logging

    from cliproxyd.cli import _LogFormatter

    ours = _LogFormatter()
    standard = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for created in (1700000000.25, 1700000000.999, 1700000001.0, 1700000000.5, 1700003600.001):
        record = logging.LogRecord("cliproxyd.x", logging.WARNING, "", 0, "n=%d", (3,), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == standard.format(record)


def test_an_unknown_event_loop_is_a_usage_error_before_anything_starts(tmp_path):
    cfg = write(tmp_path / "c.yaml", "port: 1\napi-keys: [a]\n")  # never bound: the check comes first
    result = run("--config", str(cfg), env={"CLIPROXYD_EVENT_LOOP": "trio"})
    assert result.returncode == 64
    assert "CLIPROXYD_EVENT_LOOP must be uvloop or asyncio, not 'trio'" in result.stderr
    assert "Traceback" not in result.stderr


class _Writes:
    """A stream that records each write call."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def _batched_logger(name: str):
    import logging

    from cliproxyd.cli import _BatchedStreamHandler

    stream = _Writes()
    handler = _BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, stream


def test_lines_logged_in_one_loop_iteration_are_written_together():
    import asyncio

    log, stream = _batched_logger("cliproxyd.test.batched")

    async def main():
        log.info("one")
        log.info("two")
        held = list(stream.writes)
        await asyncio.sleep(0)  # the iteration ends: the scheduled write runs
        after_iteration = list(stream.writes)
        log.info("three")
        log.warning("now")  # a warning goes out at once, with what came before it
        return held, after_iteration, list(stream.writes)

    held, after_iteration, final = asyncio.run(main())
    assert held == []
    assert after_iteration == ["INFO one\nINFO two\n"]
    assert final == after_iteration + ["INFO three\nWARNING now\n"]


def test_lines_logged_off_the_loop_are_written_at_once():
    import asyncio

    log, stream = _batched_logger("cliproxyd.test.batched2")
    log.info("start-up")
    assert stream.writes == ["INFO start-up\n"]

    async def main():
        log.info("on the loop")

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    loop.close()
    log.info("after")
    assert stream.writes[1:] == ["INFO on the loop\n", "INFO after\n"]
