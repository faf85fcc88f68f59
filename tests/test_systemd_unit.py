"""packaging/systemd/cliproxyd.service: `systemd-analyze verify` passes and the unit carries what
issue 2 point 9 asks for (notify type, reload by SIGHUP, watchdog, restart policy, sandbox)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "packaging" / "systemd" / "cliproxyd.service"
INSTALLED_BINARY = "/opt/cliproxyd/bin/cliproxyd"


def _unit_with_binary(tmp_path: Path, binary: str) -> Path:
    """A copy of the unit whose ExecStart points at ``binary`` (verify checks that it exists)."""
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    copy = tmp_path / "cliproxyd.service"
    copy.write_text(text.replace(INSTALLED_BINARY, binary))
    return copy


def _verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_systemd_analyze_verify_passes(tmp_path):
    fake = tmp_path / "cliproxyd-bin"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    result = _verify(_unit_with_binary(tmp_path, str(fake)))
    assert result.returncode == 0, result.stderr
    assert "cliproxyd.service" not in result.stderr, result.stderr


def test_verify_would_catch_a_broken_unit(tmp_path):
    # The check above means something: a missing ExecStart binary fails verification.
    result = _verify(_unit_with_binary(tmp_path, str(tmp_path / "does-not-exist")))
    assert result.returncode != 0


def _service() -> dict[str, list[str]]:
    """Directive → every value it is given (systemd allows repeats, so no configparser)."""
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize(
    "directive, value",
    [
        ("Type", "notify"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "78"),
        ("User", "cliproxyd"),
        ("StateDirectory", "cliproxyd"),
        ("ConfigurationDirectory", "cliproxyd"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_unit_directives(directive, value):
    assert value in _service()[directive]


def test_watchdog_and_stop_timeout_fit_the_daemon():
    service = _service()
    assert int(service["WatchdogSec"][0]) > 0
    # systemd must wait longer than the default shutdown-timeout (30 s) before SIGKILL.
    assert int(service["TimeoutStopSec"][0]) > 30
    assert service["ExecStart"][0].startswith(INSTALLED_BINARY + " --config /etc/cliproxyd/config.yaml")
