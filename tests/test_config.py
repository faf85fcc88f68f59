"""Tests for cliproxyd/config.py (and its private helpers _config_parse, _config_yaml, _config_keys)."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest

from cliproxyd import _config_yaml
from cliproxyd.config import (
    RESTART_KEYS,
    APIKeyEntry,
    Config,
    ConfigError,
    ModelAlias,
    OpenAICompat,
    ProviderKey,
    effective_config_json,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "etc" / "cliproxyd" / "config.yaml"
PATH = "/etc/cliproxyd/config.yaml"


def parse(text: str, env: dict | None = None) -> Config:
    return parse_config(textwrap.dedent(text), PATH, env or {})


def problems(text: str, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return info.value.problems


def only_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------------
# Defaults and every key


def test_empty_file_means_all_defaults():
    cfg = parse("", env={"HOME": "/home/u"})
    assert cfg.host == "" and cfg.port == 8317 and cfg.debug is False
    assert cfg.tls.enable is False and cfg.tls.cert == "" and cfg.tls.key == ""
    assert cfg.auth_dir == "/home/u/.cli-proxy-api"
    assert cfg.api_keys == ()
    assert cfg.remote_management.secret_key == "" and cfg.remote_management.allow_remote is False
    assert cfg.remote_management.secret_from_env is False
    assert cfg.ws_auth is True and cfg.usage_statistics_enabled is True
    assert cfg.usage_db == "" and cfg.usage_db_path == "/home/u/.cli-proxy-api/usage.sqlite"
    assert cfg.usage_retention_days == 30
    assert cfg.request_retry == 3 and cfg.max_retry_interval == 30
    assert cfg.routing.strategy == "round-robin" and cfg.force_model_prefix is False
    assert cfg.max_body_size == 32 * 1024 * 1024 and isinstance(cfg.max_body_size, int)
    assert cfg.shutdown_timeout == 30 and cfg.streaming.keepalive_seconds == 15
    assert (cfg.timeouts.connect, cfg.timeouts.first_byte, cfg.timeouts.idle) == (10, 300, 300)
    assert cfg.metrics.require_auth is False and cfg.proxy_url == ""
    assert cfg.gemini_api_key == cfg.claude_api_key == cfg.codex_api_key == ()
    assert cfg.openai_compatibility == () and cfg.warnings == ()
    assert cfg.path == PATH


@pytest.mark.parametrize("text", ["# nothing but a comment\n", "~\n", "null\n", "\n\n"])
def test_comment_only_or_null_document_is_all_defaults(text):
    assert parse(text).port == 8317


FULL = """\
host: "::1"
port: 9000
debug: true
tls:
  enable: true
  cert: certs/server.pem
  key: /abs/server.key
auth-dir: ~/auth
api-keys: ["key-one", "key-two"]
remote-management:
  secret-key: "s3cret"
  allow-remote: true
ws-auth: false
usage-statistics-enabled: false
usage-db: data/usage.db
usage-retention-days: 7
request-retry: 0
max-retry-interval: 2.5
routing:
  strategy: fill-first
force-model-prefix: true
max-body-size: 1048576
shutdown-timeout: 5
streaming:
  keepalive-seconds: 0
timeouts:
  connect: 1.5
  first-byte: 60
  idle: 30
metrics:
  require-auth: true
proxy-url: "socks5h://user:pw@127.0.0.1:1080"
gemini-api-key:
  - api-key: "AIza-1"
    prefix: "/team-a/"
    base-url: "https://generativelanguage.googleapis.com/"
    proxy-url: direct
    priority: 5
    headers:
      X-Custom: "v"
    models:
      - name: gemini-2.5-pro
        alias: pro
      - name: gemini-2.5-flash
    excluded-models: ["Gemini-1.*", "*-Preview", "*lite*", "exact"]
claude-api-key:
  - api-key: "sk-ant-1"
codex-api-key:
  - api-key: "sk-codex"
    base-url: "http://127.0.0.1:9999/v1"
openai-compatibility:
  - name: openrouter
    base-url: "https://openrouter.ai/api/v1"
    prefix: or
    priority: -1
    headers: {X-Title: cliproxyd}
    api-key-entries:
      - api-key: "sk-or-1"
      - api-key: "sk-or-2"
        proxy-url: "http://proxy:3128"
    models:
      - name: "moonshotai/kimi-k2:free"
        alias: kimi-k2
    excluded-models: ["*"]
  - name: local
    base-url: "http://127.0.0.1:11434/v1"
"""


def test_every_key_is_parsed():
    cfg = parse(FULL, env={"HOME": "/home/u"})
    assert cfg.host == "::1" and cfg.port == 9000 and cfg.debug is True
    assert cfg.tls.enable is True
    assert cfg.tls.cert == "/etc/cliproxyd/certs/server.pem"  # relative to the config file
    assert cfg.tls.key == "/abs/server.key"
    assert cfg.auth_dir == "/home/u/auth"
    assert cfg.api_keys == ("key-one", "key-two")
    assert cfg.remote_management.secret_key == "s3cret" and cfg.remote_management.allow_remote
    assert cfg.ws_auth is False and cfg.usage_statistics_enabled is False
    assert cfg.usage_db == "/etc/cliproxyd/data/usage.db" == cfg.usage_db_path
    assert cfg.usage_retention_days == 7 and cfg.request_retry == 0
    assert cfg.max_retry_interval == 2.5 and cfg.routing.strategy == "fill-first"
    assert cfg.force_model_prefix is True and cfg.max_body_size == 1048576
    assert cfg.shutdown_timeout == 5.0 and isinstance(cfg.shutdown_timeout, float)
    assert cfg.streaming.keepalive_seconds == 0
    assert (cfg.timeouts.connect, cfg.timeouts.first_byte, cfg.timeouts.idle) == (1.5, 60, 30)
    assert cfg.metrics.require_auth is True
    assert cfg.proxy_url == "socks5h://user:pw@127.0.0.1:1080"
    assert cfg.gemini_api_key == (ProviderKey(
        api_key="AIza-1", prefix="team-a", base_url="https://generativelanguage.googleapis.com",
        proxy_url="direct", priority=5, headers={"X-Custom": "v"},
        models=(ModelAlias("gemini-2.5-pro", "pro"), ModelAlias("gemini-2.5-flash")),
        excluded_models=("gemini-1.*", "*-preview", "*lite*", "exact")),)
    assert cfg.claude_api_key == (ProviderKey(api_key="sk-ant-1"),)
    assert cfg.codex_api_key[0].base_url == "http://127.0.0.1:9999/v1"
    compat, local = cfg.openai_compatibility
    assert compat == OpenAICompat(
        name="openrouter", base_url="https://openrouter.ai/api/v1", prefix="or", priority=-1,
        headers={"X-Title": "cliproxyd"},
        api_key_entries=(APIKeyEntry("sk-or-1"), APIKeyEntry("sk-or-2", "http://proxy:3128")),
        models=(ModelAlias("moonshotai/kimi-k2:free", "kimi-k2"),), excluded_models=("*",))
    assert local.api_key_entries == () and local.prefix == ""
    assert cfg.warnings == ()


def test_config_is_frozen_with_tuples_and_read_only_mappings():
    cfg = parse(FULL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.tls.enable = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.gemini_api_key[0].headers["X-New"] = "x"  # type: ignore[index]
    assert isinstance(cfg.api_keys, tuple) and isinstance(cfg.gemini_api_key[0].models, tuple)


def test_config_is_hashable_copyable_and_picklable():
    import copy
    import pickle
    cfg = parse(FULL)
    assert hash(cfg) == hash(parse(FULL))
    assert copy.deepcopy(cfg) == cfg and pickle.loads(pickle.dumps(cfg)) == cfg
    assert cfg.gemini_api_key[0].headers == {"X-Custom": "v"}


def test_null_value_means_default():
    cfg = parse("port:\napi-keys:\ntls:\n")
    assert cfg.port == 8317 and cfg.api_keys == () and cfg.tls.enable is False


def test_key_lines_are_recorded_for_later_messages():
    cfg = parse("port: 8000\ntls:\n  enable: false\n  cert: a.pem\n")
    assert cfg.lines["tls.cert"] == 4
    assert cfg.where("tls.cert") == f"{PATH}:4: tls.cert"
    assert cfg.where("host") == f"{PATH}: host"


def test_merge_keys_and_anchors_work():
    cfg = parse("""\
        gemini-api-key:
          - &base {api-key: k1, prefix: p, priority: 3}
          - <<: *base
            api-key: k2
        """)
    second = cfg.gemini_api_key[1]
    assert (second.api_key, second.prefix, second.priority) == ("k2", "p", 3)


# ---------------------------------------------------------------------------------------------
# Errors: one per kind, with the right line


@pytest.mark.parametrize("text, expected", [
    ("port: 0\n", "1: port: must be between 1 and 65535, got 0"),
    ("port: 65536\n", "1: port: must be between 1 and 65535"),
    ("port: '8317'\n", "1: port: expected an integer, got a string"),
    ("port: true\n", "1: port: expected an integer, got a boolean"),
    ("debug: 1\n", "1: debug: expected true or false, got an integer"),
    ("host: 'http://x'\n", "1: host: must be an address or host name without port"),
    ("host: '[::1]'\n", "1: host: must be an address or host name without port"),
    ("\n\nmax-body-size: 1.5\n", "3: max-body-size: expected an integer, got a number"),
    ("max-body-size: 0\n", "1: max-body-size: must be between 1 and 1099511627776, got 0"),
    ("max-body-size: -5\n", "1: max-body-size: must be between 1 and"),
    ("timeouts: {idle: 100000}\n", "1: timeouts.idle: must be at most 86400, got 100000"),
    ("streaming: {keepalive-seconds: 3601}\n", "streaming.keepalive-seconds: must be at most 3600"),
    ("api-keys: [' padded']\n", "1: api-keys[0]: has leading or trailing spaces"),
    ("gemini-api-key: [{api-key: \"a\\nb\"}]\n",
     "1: gemini-api-key[0].api-key: must not contain control characters or line breaks"),
    ("shutdown-timeout: 0\n", "1: shutdown-timeout: must be greater than 0"),
    ("timeouts:\n  connect: 10\n  idle: -1\n", "3: timeouts.idle: must be greater than 0"),
    ("timeouts: {first-byte: .inf}\n", "1: timeouts.first-byte: must be a finite number"),
    ("streaming: {keepalive-seconds: -1}\n", "streaming.keepalive-seconds: must be at least 0"),
    ("max-retry-interval: -1\n", "1: max-retry-interval: must be at least 0"),
    ("request-retry: 11\n", "1: request-retry: must be between 0 and 10, got 11"),
    ("request-retry: -1\n", "1: request-retry: must be between 0 and 10"),
    ("usage-retention-days: 0\n", "usage-retention-days: must be between 1 and 36500"),
    ("routing:\n  strategy: random\n",
     "2: routing.strategy: must be one of round-robin, fill-first; got 'random'"),
    ("api-keys: key\n", "1: api-keys: expected a list, got a string"),
    ("api-keys:\n  - ok\n  - 12345\n", "3: api-keys[1]: expected a string, got an integer (quote it)"),
    ("api-keys: ['']\n", "1: api-keys[0]: must not be empty"),
    ("api-keys:\n  -\n", "2: api-keys[0]: empty item"),
    ("auth-dir: ''\n", "1: auth-dir: must not be empty"),
    ("tls: yes\n", "1: tls: expected a mapping, got a boolean"),
    ("tls:\n  enable: true\n  cert: c.pem\n", "2: tls.key: is required when tls.enable is true"),
    ("proxy-url: 'proxy:3128'\n", "1: proxy-url: must be an http, https, socks5 or socks5h URL"),
    ("gemini-api-key:\n  - prefix: x\n", "2: gemini-api-key[0]: missing required key 'api-key'"),
    ("gemini-api-key:\n  - api-key:\n", "2: gemini-api-key[0].api-key: is required"),
    ("claude-api-key:\n  - api-key: k\n    prefix: a/b\n",
     "3: claude-api-key[0].prefix: must not contain '/'"),
    ("codex-api-key:\n  - api-key: k\n    base-url: 'ftp://x'\n",
     "3: codex-api-key[0].base-url: must be an http:// or https:// URL"),
    ("gemini-api-key:\n  - api-key: k\n    priority: high\n",
     "3: gemini-api-key[0].priority: expected an integer, got a string"),
    ("gemini-api-key:\n  - api-key: k\n    headers:\n      X-N: 5\n",
     "4: gemini-api-key[0].headers.X-N: expected a string, got an integer (quote it)"),
    ("gemini-api-key:\n  - api-key: k\n    headers: {'Bad Name': v}\n",
     "3: gemini-api-key[0].headers.Bad Name: not a valid HTTP header name"),
    ("gemini-api-key:\n  - api-key: k\n    headers: {X-A: \"a\\nb\"}\n",
     "gemini-api-key[0].headers.X-A: must not contain line breaks"),
    ("gemini-api-key:\n  - api-key: k\n    excluded-models: ['gem*ini']\n",
     "3: gemini-api-key[0].excluded-models[0]: '*' is only allowed at the start or end"),
    ("gemini-api-key:\n  - api-key: k\n    models:\n      - alias: x\n",
     "4: gemini-api-key[0].models[0]: missing required key 'name'"),
    ("openai-compatibility:\n  - name: a\n", "2: openai-compatibility[0]: missing required key 'base-url'"),
    ("openai-compatibility:\n  - base-url: http://x\n",
     "2: openai-compatibility[0]: missing required key 'name'"),
    ("openai-compatibility:\n  - name: a\n    base-url: http://x\n    api-key-entries: [{proxy-url: direct}]\n",
     "4: openai-compatibility[0].api-key-entries[0]: missing required key 'api-key'"),
    ("openai-compatibility:\n  - name: a\n    base-url: http://x\n    disabled: true\n",
     "4: openai-compatibility[0].disabled: is not supported"),
    ("openai-compatibility:\n  - name: a\n    base-url: http://x\n    api-keys: [k]\n",
     "4: openai-compatibility[0].api-keys: the old CLIProxyAPI list form is not supported"),
    ("remote-management:\n  secret-key: '$2a$10$tooshort'\n",
     "2: remote-management.secret-key: looks like a bcrypt hash but is malformed"),
    ("remote-management:\n  secret-key: 1234\n",
     "2: remote-management.secret-key: expected a string, got an integer (quote it)"),
    ("host: 2024-01-01\n", "1: host: expected a string, got a date (quote it)"),
    ("port: 1\nport: 2\n", "2: port: duplicate key (first on line 1)"),
    ("tls:\n  cert: a\n  cert: b\n", "3: tls.cert: duplicate key (first on line 2)"),
    ("1: x\n", "1: key 1 is not a string (quote it)"),
])
def test_each_error_names_file_line_and_key(text, expected):
    message = only_problem(text)
    assert message.startswith(PATH + ":"), message
    assert expected in message, message


def test_duplicate_provider_entries_and_names_are_errors():
    found = problems("""\
        gemini-api-key:
          - api-key: same
          - api-key: same
          - api-key: same
            base-url: https://other.example
        openai-compatibility:
          - name: OpenRouter
            base-url: http://a
            api-key-entries: [{api-key: k}, {api-key: k}]
          - name: openrouter
            base-url: http://b
        """)
    assert found == [
        f"{PATH}:3: gemini-api-key[1]: duplicate entry (same api-key and base-url as gemini-api-key[0])",
        (f"{PATH}:9: openai-compatibility[0].api-key-entries[1]: duplicate entry "
         "(same api-key as openai-compatibility[0].api-key-entries[0])"),
        (f"{PATH}:10: openai-compatibility[1].name: duplicate entry "
         "(same name as openai-compatibility[0])"),
    ]


def test_several_problems_are_reported_at_once_in_line_order():
    found = problems("""\
        port: 0
        prot: 1
        tls:
          enable: true
        routing:
          strategy: x
        max-body-size: 1.5
        gemini-api-key:
          - api-key: ""
        """)
    assert [p.split(": ", 2)[1] for p in found] == [
        "port", "prot", "tls.cert", "tls.key", "routing.strategy", "max-body-size",
        "gemini-api-key[0].api-key"]
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == [1, 2, 4, 4, 6, 7, 9]


def test_config_error_str_lists_every_problem():
    with pytest.raises(ConfigError) as info:
        parse("port: 0\ndebug: 3\n")
    assert str(info.value) == "\n".join(info.value.problems)
    assert len(info.value.problems) == 2


@pytest.mark.parametrize("typo, suggestion, key_path", [
    ("prot: 1\n", "port", "prot"),
    ("api_keys: []\n", "api-keys", "api_keys"),
    ("reqest-retry: 1\n", "request-retry", "reqest-retry"),
    ("tls:\n  enabled: true\n", "enable", "tls.enabled"),
    ("remote-management:\n  secretkey: x\n", "secret-key", "remote-management.secretkey"),
    ("gemini-api-key:\n  - apikey: x\n", "api-key", "gemini-api-key[0].apikey"),
])
def test_unknown_key_suggests_the_closest(typo, suggestion, key_path):
    found = problems(typo)
    assert any(f": {key_path}: unknown key; did you mean {suggestion!r}?" in p for p in found), found


def test_unknown_key_without_close_match():
    message = only_problem("zzzzzz: 1\n")
    assert "zzzzzz: unknown key; not a cliproxyd setting" in message
    assert "known keys: client-body, client-idle, connect, first-byte, idle" in only_problem("timeouts: {xyzzy: 1}\n")


# ---------------------------------------------------------------------------------------------
# CLIProxyAPI keys: warnings, not errors


def test_cliproxyapi_keys_are_warnings():
    cfg = parse("""\
        port: 8317
        logging-to-file: true
        pprof:
          enable: false
        remote-management:
          disable-control-panel: true
        routing:
          strategy: round-robin
          session-affinity: true
        streaming:
          bootstrap-retries: 1
        claude-api-key:
          - api-key: k
            cloak: {mode: auto}
            models:
              - name: m
                thinking: {levels: [low]}
        openai-compatibility:
          - name: a
            base-url: http://x
            disabled: false
            api-key-entries: [{api-key: k, weight: 2}]
        """)
    assert cfg.port == 8317 and cfg.claude_api_key[0].models == (ModelAlias("m"),)
    assert [w.split(": ")[1] for w in cfg.warnings] == [
        "logging-to-file", "pprof", "remote-management.disable-control-panel",
        "routing.session-affinity", "streaming.bootstrap-retries", "claude-api-key[0].cloak",
        "claude-api-key[0].models[0].thinking", "openai-compatibility[0].disabled",
        "openai-compatibility[0].api-key-entries[0].weight"]
    assert cfg.warnings[0] == (f"{PATH}:2: logging-to-file: is a CLIProxyAPI setting that "
                               "cliproxyd does not implement; ignored")


def test_every_listed_cliproxyapi_top_level_key_only_warns():
    from cliproxyd import _config_keys
    text = "".join(f"{key}: {{}}\n" for key in sorted(_config_keys.TOP_WARN))
    cfg = parse(text)
    assert len(cfg.warnings) == len(_config_keys.TOP_WARN)


def test_cliproxyapi_key_in_the_wrong_section_is_an_error():
    assert "cloak: unknown key" in only_problem("gemini-api-key:\n  - api-key: k\n    cloak: {}\n")


# ---------------------------------------------------------------------------------------------
# Environment


def test_management_password_env_wins_over_the_file():
    cfg = parse("remote-management:\n  secret-key: from-file\n", env={"MANAGEMENT_PASSWORD": "env-pw"})
    assert cfg.remote_management.secret_key == "env-pw"
    assert cfg.remote_management.secret_from_env is True


def test_management_password_env_enables_management_alone():
    cfg = parse("", env={"MANAGEMENT_PASSWORD": "env-pw"})
    assert cfg.remote_management.secret_key == "env-pw" and cfg.remote_management.secret_from_env


def test_empty_management_password_env_is_ignored():
    cfg = parse("remote-management:\n  secret-key: from-file\n", env={"MANAGEMENT_PASSWORD": ""})
    assert cfg.remote_management.secret_key == "from-file"
    assert cfg.remote_management.secret_from_env is False


def test_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("MANAGEMENT_PASSWORD", "from-os")
    assert parse_config("").remote_management.secret_key == "from-os"


def test_tilde_uses_the_env_home():
    assert parse("auth-dir: '~'\n", env={"HOME": "/srv/h"}).auth_dir == "/srv/h"
    assert parse("auth-dir: ~/x/../y\n", env={"HOME": "/srv/h"}).auth_dir == "/srv/h/y"


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("auth-dir: auth\nusage-db: u.sqlite\n")
    cfg = load_config(str(path), env={})
    assert cfg.auth_dir == str(tmp_path / "auth") and cfg.usage_db == str(tmp_path / "u.sqlite")
    assert cfg.path == str(path)


# ---------------------------------------------------------------------------------------------
# Files and YAML problems


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "absent.yaml"), env={})
    (message,) = info.value.problems
    assert message.startswith(str(tmp_path / "absent.yaml") + ": cannot read config file")


def test_relative_path_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text("port: 1234\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("c.yaml", env={})
    assert cfg.path == str(tmp_path / "c.yaml") and cfg.port == 1234


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path), env={})
    assert "cannot read config file" in info.value.problems[0]


def test_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"host: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert info.value.problems == [f"{path}: not UTF-8 text (byte 6)"]


@pytest.mark.parametrize("text, line, fragment", [
    ("port: 8317\napi-keys: [a, b\n", 3, "invalid YAML at column 1: expected ',' or ']'"),
    ("a:\n  b: c\n d: e\n", 3, "invalid YAML at column 2"),
    ("port: 1\n---\nport: 2\n", 2, "expected a single document in the stream"),
    ("key: 'unterminated\n", 2, "invalid YAML"),
    ("\tport: 1\n", 1, "invalid YAML at column 1"),
])
def test_yaml_syntax_errors_have_line_and_column(text, line, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(text, PATH, {})
    (message,) = info.value.problems
    assert message.startswith(f"{PATH}:{line}: "), message
    assert fragment in message, message


def test_control_characters_in_the_text():
    with pytest.raises(ConfigError) as info:
        parse_config("port: 1\nhost: a\x07b\n", PATH, {})
    assert info.value.problems == [f"{PATH}:2: invalid YAML: character U+0007 is not allowed"]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text):
    assert "the top level must be a mapping of settings" in only_problem(text)


def test_example_file_loads_without_warnings():
    cfg = load_config(str(EXAMPLE), env={"HOME": "/home/u"})
    assert cfg.warnings == ()
    assert cfg.host == "127.0.0.1" and cfg.port == 8317
    assert cfg.api_keys == () and cfg.remote_management.secret_key == ""


def test_example_file_mentions_every_key():
    text = EXAMPLE.read_text()
    from cliproxyd._config_parse import TOP
    for key in TOP.spec:
        assert f"\n{key}:" in text, key
    for nested in ("enable:", "cert:", "secret-key:", "allow-remote:", "strategy:",
                   "keepalive-seconds:", "connect:", "first-byte:", "idle:", "require-auth:",
                   "api-key-entries", "excluded-models", "base-url", "proxy-url", "priority",
                   "headers", "models", "prefix"):
        assert nested in text, nested


# ---------------------------------------------------------------------------------------------
# Hostile YAML


def test_python_object_tags_are_rejected_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    message = only_problem(f"port: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "unsupported YAML tag" in message and "python/object/apply" in message
    assert not marker.exists()


@pytest.mark.parametrize("text", [
    "host: !!python/name:os.system ''\n",
    "host: !custom x\n",
    "host: !!binary aGk=\n",
    "x: !!set {a: null}\n",
])
def test_non_plain_tags_are_rejected(text):
    assert "unsupported YAML tag" in only_problem(text)


def test_billion_laughs_is_refused():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    message = only_problem("\n".join(lines) + "\n")
    assert f"YAML expands to more than {_config_yaml.MAX_NODES} nodes" in message


def test_merge_precedence_follows_the_yaml_spec():
    cfg = parse("""\
        gemini-api-key:
          - <<: [{api-key: first, priority: 1}, {api-key: second, prefix: s, priority: 2}]
            priority: 3
        """)
    entry = cfg.gemini_api_key[0]
    assert (entry.api_key, entry.prefix, entry.priority) == ("first", "s", 3)


def test_an_anchored_mapping_reached_twice_is_read_the_same_way():
    cfg = parse("""\
        claude-api-key:
          - &e {<<: {api-key: a, prefix: p}, api-key: b}
          - <<: *e
            api-key: c
        codex-api-key:
          - *e
        """)
    assert [(e.api_key, e.prefix) for e in cfg.claude_api_key] == [("b", "p"), ("c", "p")]
    assert cfg.codex_api_key[0].api_key == "b"


def test_bad_merge_value():
    assert "tls: invalid merge key (<<): expected a mapping" in only_problem("tls: {<<: 5}\n")


def test_moderate_alias_use_is_fine():
    text = "gemini-api-key:\n  - &e {api-key: k, headers: &h {X-A: b}}\n  - {api-key: k2, headers: *h}\n"
    assert parse(text).gemini_api_key[1].headers == {"X-A": "b"}


def test_recursive_alias_is_refused():
    assert "recursive YAML alias" in only_problem("a: &a [1, *a]\n")


def test_deep_nesting_is_refused():
    assert "nested too deeply" in only_problem("x: " + "[" * 100 + "]" * 100 + "\n")
    assert "nested too deeply" in only_problem("x: " + "[" * 20000 + "]" * 20000 + "\n")


def test_huge_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (_config_yaml.MAX_BYTES + 10) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert info.value.problems == [f"{path}: file is larger than 4 MiB"]
    with pytest.raises(ConfigError) as info:
        parse_config("# " + "x" * (_config_yaml.MAX_BYTES + 10), PATH, {})
    assert "larger than 4 MiB" in info.value.problems[0]


# ---------------------------------------------------------------------------------------------
# effective_config_json, RESTART_KEYS


def test_effective_config_json_uses_yaml_names_and_hides_the_secret():
    cfg = parse(FULL)
    out = effective_config_json(cfg)
    assert out["api-keys"] == ["key-one", "key-two"]
    assert out["remote-management"] == {"allow-remote": True}
    assert "s3cret" not in repr(out) and "secret-key" not in repr(out)
    assert out["timeouts"] == {"connect": 1.5, "first-byte": 60.0, "idle": 30.0,
                               "client-idle": 75.0, "client-body": 120.0}
    assert out["gemini-api-key"][0]["excluded-models"][1] == "*-preview"
    assert out["openai-compatibility"][0]["api-key-entries"][1] == {
        "api-key": "sk-or-2", "proxy-url": "http://proxy:3128"}
    assert "path" not in out and "warnings" not in out and "lines" not in out
    import json
    json.dumps(out)  # plain JSON types only


def test_effective_config_json_hides_env_secret_too():
    cfg = parse("", env={"MANAGEMENT_PASSWORD": "env-secret"})
    assert "env-secret" not in repr(effective_config_json(cfg))


def test_effective_config_round_trips_through_parse():
    import yaml
    cfg = parse(FULL)
    again = parse_config(yaml.safe_dump(effective_config_json(cfg)), PATH, {})
    expected = dataclasses.replace(cfg, remote_management=dataclasses.replace(
        cfg.remote_management, secret_key=""))
    assert again == expected


def test_restart_keys():
    assert RESTART_KEYS == {"host", "port", "tls"}
    assert all(hasattr(Config(), k) for k in RESTART_KEYS)


def test_config_module_stays_pure():
    import ast

    import cliproxyd
    root = Path(cliproxyd.__file__).parent
    for name in ("config.py", "_config_parse.py", "_config_yaml.py", "_config_keys.py",
                 "confdiff.py", "secrets.py"):
        tree = ast.parse((root / name).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert "tornado" not in imported and "time" not in imported, name
    assert os.path.exists(EXAMPLE)


# ---------------------------------------------------------------------------------------------
# oauth: (issue 7)


def test_oauth_defaults_are_the_real_providers():
    cfg = parse("")
    assert cfg.oauth.claude.authorize_url == "https://claude.ai/oauth/authorize"
    assert cfg.oauth.claude.token_url == "https://api.anthropic.com/v1/oauth/token"
    assert cfg.oauth.claude.api_base_url == "https://api.anthropic.com"
    assert cfg.oauth.claude.redirect_port == 54545
    assert cfg.oauth.claude.client_id == "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
    assert cfg.oauth.codex.authorize_url == "https://auth.openai.com/oauth/authorize"
    assert cfg.oauth.codex.token_url == "https://auth.openai.com/oauth/token"
    assert cfg.oauth.codex.api_base_url == "https://chatgpt.com/backend-api/codex"
    assert cfg.oauth.codex.redirect_port == 1455
    assert cfg.oauth.codex.client_id == "app_EMoamEEZ73f0CkXaXp7hrann"


def test_oauth_overrides_keep_the_other_defaults():
    cfg = parse("""\
        oauth:
          claude:
            token-url: "http://127.0.0.1:9/token/"
            redirect-port: 40001
          codex: {api-base-url: "http://127.0.0.1:9/backend-api/codex", client-id: "app_test"}
        """)
    assert cfg.oauth.claude.token_url == "http://127.0.0.1:9/token"
    assert cfg.oauth.claude.redirect_port == 40001
    assert cfg.oauth.claude.authorize_url == "https://claude.ai/oauth/authorize"
    assert cfg.oauth.codex.api_base_url == "http://127.0.0.1:9/backend-api/codex"
    assert cfg.oauth.codex.client_id == "app_test"
    assert cfg.oauth.codex.redirect_port == 1455


@pytest.mark.parametrize("text, expected", [
    ("oauth:\n  claude:\n    token-url: ftp://x/\n", "3: oauth.claude.token-url: must be an http"),
    ("oauth:\n  claude:\n    token-url: \"\"\n", "3: oauth.claude.token-url: must not be empty"),
    ("oauth:\n  codex:\n    redirect-port: 70000\n", "3: oauth.codex.redirect-port: must be between 1"),
    ("oauth:\n  codex:\n    redirect-port: \"1455\"\n", "oauth.codex.redirect-port: expected an integer"),
    ("oauth:\n  codex:\n    client-id: \"\"\n", "oauth.codex.client-id: must not be empty"),
    ("oauth:\n  gemini: {}\n", "2: oauth.gemini: unknown key"),
    ("oauth:\n  claude:\n    token_url: http://x\n", "did you mean 'token-url'?"),
    ("oauth: []\n", "1: oauth: expected a mapping"),
])
def test_oauth_bad_values_name_key_and_line(text, expected):
    assert expected in only_problem(text)


def test_oauth_round_trips_through_the_effective_config():
    cfg = parse("oauth:\n  claude:\n    redirect-port: 40002\n")
    again = parse_config(yaml_dump(effective_config_json(cfg)), PATH, {})
    assert again.oauth == cfg.oauth


def yaml_dump(value) -> str:
    import yaml

    return yaml.safe_dump(value)
