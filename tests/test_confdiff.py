"""Tests for cliproxyd/confdiff.py: the redacted reload diff."""

from __future__ import annotations

import textwrap

from cliproxyd.confdiff import diff, redact, restart_keys_changed
from cliproxyd.config import parse_config

OLD = """\
port: 8317
api-keys: [client-key-aaaaaaaa1111, client-key-bbbbbbbb2222]
remote-management: {secret-key: management-secret-0001}
proxy-url: "http://user:hunter2hunter2@proxy:3128"
gemini-api-key:
  - api-key: AIzaSy-old-gemini-key-0A0A
    headers: {X-Token: header-token-value-0001}
  - api-key: AIzaSy-second-gemini-key-77
openai-compatibility:
  - name: local
    base-url: http://127.0.0.1:11434/v1
"""

NEW = """\
port: 8318
host: 127.0.0.1
api-keys: [client-key-aaaaaaaa1111, client-key-cccccccc3333]
remote-management: {secret-key: management-secret-0002}
proxy-url: "http://user:hunter3hunter3@proxy:3128"
gemini-api-key:
  - api-key: AIzaSy-new-gemini-key-0B0B
    headers: {X-Token: header-token-value-0002}
    prefix: team
  - api-key: AIzaSy-second-gemini-key-77
  - api-key: AIzaSy-third-gemini-key-99
"""

SECRETS = ["client-key-bbbbbbbb2222", "client-key-cccccccc3333", "management-secret-0001",
           "management-secret-0002", "hunter2hunter2", "hunter3hunter3",
           "AIzaSy-old-gemini-key-0A0A", "AIzaSy-new-gemini-key-0B0B", "AIzaSy-third-gemini-key-99",
           "header-token-value-0001", "header-token-value-0002"]


def cfg(text: str, env: dict | None = None):
    return parse_config(textwrap.dedent(text), "/etc/cliproxyd/config.yaml", env or {})


def test_identical_configs_have_no_diff():
    assert diff(cfg(OLD), cfg(OLD)) == []


def test_diff_lines():
    assert diff(cfg(OLD), cfg(NEW)) == [
        'host: "" → "127.0.0.1"',
        "port: 8317 → 8318",
        "api-keys: removed ****2222",
        "api-keys: added ****3333",
        "remote-management.secret-key: ****0001 → ****0002",
        'proxy-url: changed ("http://user:****@proxy:3128")',
        "gemini-api-key: 2 → 3 entries",
        "gemini-api-key[0].api-key: ****0A0A → ****0B0B",
        'gemini-api-key[0].prefix: "" → "team"',
        "gemini-api-key[0].headers.X-Token: ****0001 → ****0002",
        "gemini-api-key[2]: added",
        "openai-compatibility: 1 → 0 entries",
        "openai-compatibility[0]: removed",
    ]


def test_no_secret_appears_in_the_diff():
    text = "\n".join(diff(cfg(OLD), cfg(NEW)) + diff(cfg(NEW), cfg(OLD)))
    for secret in SECRETS:
        assert secret not in text
        assert secret[:-4] not in text


def test_short_secrets_show_nothing():
    assert redact("abc") == "****" and redact("12345678901") == "****"
    assert redact("123456789012") == "****9012"
    lines = diff(cfg("api-keys: [k1]\n"), cfg("api-keys: [k2]\n"))
    assert lines == ["api-keys: removed ****", "api-keys: added ****"]


def test_reordered_client_keys_are_no_change():
    a = cfg("api-keys: [client-key-aaaaaaaa1111, client-key-bbbbbbbb2222]\n")
    b = cfg("api-keys: [client-key-bbbbbbbb2222, client-key-aaaaaaaa1111]\n")
    assert diff(a, b) == []


def test_same_last_four_secret_change_is_still_reported():
    a = cfg("remote-management: {secret-key: first-secret-XXXX}\n")
    b = cfg("remote-management: {secret-key: second-secret-XXXX}\n")
    assert diff(a, b) == ["remote-management.secret-key: changed (****XXXX)"]


def test_secret_source_switch_is_reported_without_the_value():
    a = cfg("remote-management: {secret-key: file-secret-value-1}\n")
    b = cfg("remote-management: {secret-key: file-secret-value-1}\n",
            env={"MANAGEMENT_PASSWORD": "environment-secret-9"})
    lines = diff(a, b)
    assert lines[-1] == "remote-management.secret-key: now taken from the MANAGEMENT_PASSWORD"
    assert "environment-secret-9" not in "\n".join(lines)
    assert "file-secret-value-1" not in "\n".join(lines)


def test_openai_compat_entry_keys_are_redacted():
    a = cfg("openai-compatibility: [{name: x, base-url: 'http://h', "
            "api-key-entries: [{api-key: sk-or-aaaaaaaaaaaa}]}]\n")
    b = cfg("openai-compatibility: [{name: x, base-url: 'http://h', "
            "api-key-entries: [{api-key: sk-or-bbbbbbbbbbbb}]}]\n")
    assert diff(a, b) == [
        "openai-compatibility[0].api-key-entries[0].api-key: ****aaaa → ****bbbb"]


def test_restart_keys_changed():
    assert restart_keys_changed(cfg(OLD), cfg(NEW)) == ["host", "port"]
    assert restart_keys_changed(cfg(OLD), cfg(OLD)) == []
    tls = cfg("tls: {enable: true, cert: a.pem, key: b.pem}\n")
    assert restart_keys_changed(cfg(""), tls) == ["tls"]
