"""The Config value: frozen dataclasses for config.yaml, loading, validation and env overrides.

Public surface (the agreed interface, see README "Configuration"):

* `load_config(path, env=None) -> Config` reads and validates a file;
* `parse_config(text, path="<memory>", env=None) -> Config` validates text (management PUT);
* `ConfigError` carries ``.problems``, every one "FILE:LINE: key.path: message";
* `effective_config_json(cfg)` is the effective config as YAML-keyed JSON, without the
  management secret (GET /v0/management/config);
* `RESTART_KEYS` names the settings that need a new listening socket;
* `verify_secret` / `hash_secret` (re-exported from `cliproxyd.secrets`).

Rules: YAML key ``foo-bar`` is attribute ``foo_bar``; every dataclass is frozen, lists are tuples,
mappings are read-only (`FrozenMap`, hashable).  A null value (``key:`` with nothing after it)
means "use the default"; an empty file means all defaults.  Relative paths (auth-dir, usage-db,
tls cert/key) are resolved against the directory of the config file (the working directory for
a path that is not absolute, such as "<memory>"), so the daemon does not depend on its working
directory; ``~`` uses HOME from `env`.  Validation lives in `_config_parse` (schema and checks),
hostile-YAML defences in `_config_yaml` (safe tags only, 4 MiB, 100k nodes after alias
expansion), the list of tolerated CLIProxyAPI keys in `_config_keys`.  Parsing is pure Python
and takes about a second per 100 KiB on a busy machine: the daemon may run it in an executor.
This module never imports tornado, never reads the clock and keeps no module-level mutable state;
its only I/O is reading the config file in `load_config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass

from cliproxyd.secrets import hash_secret, verify_secret

__all__ = [
    "RESTART_KEYS", "APIKeyEntry", "Config", "ConfigError", "FrozenMap", "Metrics", "ModelAlias",
    "OAuth", "OAuthProvider", "OpenAICompat", "ProviderKey", "RemoteManagement", "Routing", "Streaming", "TLSConfig",
    "Timeouts", "effective_config_json", "hash_secret", "load_config", "parse_config",
    "verify_secret",
]



class FrozenMap(Mapping):
    """A read-only, hashable mapping (header tables): frozen dataclasses stay hashable and copyable."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping | None = None):
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __setattr__(self, name, value):
        raise AttributeError("FrozenMap is read-only")

    def __reduce__(self):
        return (FrozenMap, (self._data,))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


_EMPTY: Mapping[str, str] = FrozenMap()

# Settings that need a new listening socket: changed on SIGHUP they are re-bound (issue 2 §6).
RESTART_KEYS: frozenset[str] = frozenset({"host", "port", "tls"})

ROUTING_STRATEGIES = ("round-robin", "fill-first")


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every reason as "FILE:LINE: key.path: message"."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class TLSConfig:
    """`tls:` serve HTTPS with these PEM files (re-read on SIGHUP)."""

    enable: bool = False
    cert: str = ""
    key: str = ""


@dataclass(frozen=True)
class RemoteManagement:
    """`remote-management:`; `secret_key` is the effective secret ("" = management disabled)."""

    secret_key: str = ""
    allow_remote: bool = False
    secret_from_env: bool = False


@dataclass(frozen=True)
class Routing:
    """`routing:` how a credential is chosen among those serving a model."""

    strategy: str = "round-robin"


@dataclass(frozen=True)
class Streaming:
    """`streaming:` keepalive comments on idle client streams (0 = none)."""

    keepalive_seconds: float = 15.0


@dataclass(frozen=True)
class Timeouts:
    """`timeouts:` upstream timeouts in seconds, and the client-side HTTP server's: how long a
    connection may sit idle or take to send its headers (`client-idle`), and its body
    (`client-body`)."""

    connect: float = 10.0
    first_byte: float = 300.0
    idle: float = 300.0
    client_idle: float = 75.0
    client_body: float = 120.0


@dataclass(frozen=True)
class Metrics:
    """`metrics:` whether GET /metrics needs the management secret."""

    require_auth: bool = False


@dataclass(frozen=True)
class ModelAlias:
    """One `models:` entry: upstream id `name`, offered to clients as `alias` ("" = name)."""

    name: str
    alias: str = ""


@dataclass(frozen=True)
class ProviderKey:
    """One entry of `gemini-api-key`, `claude-api-key` or `codex-api-key`."""

    api_key: str
    prefix: str = ""
    base_url: str = ""
    proxy_url: str = ""
    priority: int = 0
    headers: Mapping[str, str] = _EMPTY
    models: tuple[ModelAlias, ...] = ()
    excluded_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class APIKeyEntry:
    """One `api-key-entries:` item of an openai-compatibility provider."""

    api_key: str
    proxy_url: str = ""


@dataclass(frozen=True)
class OpenAICompat:
    """One `openai-compatibility:` provider.  No api-key-entries = a provider that needs no key."""

    name: str
    base_url: str
    prefix: str = ""
    priority: int = 0
    headers: Mapping[str, str] = _EMPTY
    api_key_entries: tuple[APIKeyEntry, ...] = ()
    models: tuple[ModelAlias, ...] = ()
    excluded_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class OAuthProvider:
    """One `oauth:` provider: where its login and API live (defaults: the real provider's).

    Tests and air-gapped users point these at local servers (issue 7).  ``redirect_port`` is the
    loopback port of the registered redirect URI (``http://localhost:<port><path>``).
    """

    authorize_url: str = ""
    token_url: str = ""
    api_base_url: str = ""
    redirect_port: int = 0
    client_id: str = ""
    userinfo_url: str = ""


@dataclass(frozen=True)
class ClaudeOAuth(OAuthProvider):
    """`oauth.claude:` Claude Code subscription logins (reference §7.2)."""

    authorize_url: str = "https://claude.ai/oauth/authorize"
    token_url: str = "https://api.anthropic.com/v1/oauth/token"
    api_base_url: str = "https://api.anthropic.com"
    redirect_port: int = 54545
    client_id: str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"


@dataclass(frozen=True)
class CodexOAuth(OAuthProvider):
    """`oauth.codex:` ChatGPT (Codex) subscription logins (reference §7.2)."""

    authorize_url: str = "https://auth.openai.com/oauth/authorize"
    token_url: str = "https://auth.openai.com/oauth/token"
    api_base_url: str = "https://chatgpt.com/backend-api/codex"
    redirect_port: int = 1455
    client_id: str = "app_EMoamEEZ73f0CkXaXp7hrann"


@dataclass(frozen=True)
class OAuth:
    """`oauth:` per-provider endpoints for subscription logins."""

    claude: ClaudeOAuth = ClaudeOAuth()
    codex: CodexOAuth = CodexOAuth()


@dataclass(frozen=True)
class Config:
    """The whole validated config.yaml.  `lines` maps "key.path" to its line (for messages)."""

    path: str = "<memory>"
    host: str = ""
    port: int = 8317
    debug: bool = False
    tls: TLSConfig = TLSConfig()
    auth_dir: str = "~/.cli-proxy-api"
    api_keys: tuple[str, ...] = ()
    remote_management: RemoteManagement = RemoteManagement()
    ws_auth: bool = True
    usage_statistics_enabled: bool = True
    usage_db: str = ""
    usage_retention_days: int = 30
    request_retry: int = 3
    max_retry_interval: float = 30.0
    routing: Routing = Routing()
    force_model_prefix: bool = False
    max_body_size: int = 32 * 1024 * 1024
    shutdown_timeout: float = 30.0
    streaming: Streaming = Streaming()
    timeouts: Timeouts = Timeouts()
    metrics: Metrics = Metrics()
    proxy_url: str = ""
    gemini_api_key: tuple[ProviderKey, ...] = ()
    claude_api_key: tuple[ProviderKey, ...] = ()
    codex_api_key: tuple[ProviderKey, ...] = ()
    openai_compatibility: tuple[OpenAICompat, ...] = ()
    oauth: OAuth = OAuth()
    warnings: tuple[str, ...] = ()
    lines: Mapping[str, int] = field(default=_EMPTY, compare=False, repr=False)

    @property
    def usage_db_path(self) -> str:
        """Where usage data lives: `usage_db`, or <auth-dir>/usage.sqlite when that is ""."""
        return self.usage_db or os.path.join(self.auth_dir, "usage.sqlite")

    def where(self, key_path: str) -> str:
        """"FILE:LINE: key.path" for messages about a value found later (e.g. an unreadable cert)."""
        line = self.lines.get(key_path)
        return f"{self.path}:{line}: {key_path}" if line else f"{self.path}: {key_path}"


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at `path`; raise ConfigError with every problem."""
    from cliproxyd._config_parse import MAX_BYTES

    abspath = os.path.abspath(path)
    try:
        with open(abspath, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{abspath}: cannot read config file: {exc.strerror or exc}"]) from None
    if len(data) > MAX_BYTES:
        raise ConfigError([f"{abspath}: file is larger than {MAX_BYTES // (1024 * 1024)} MiB"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{abspath}: not UTF-8 text (byte {exc.start})"]) from None
    return parse_config(text, abspath, env)


def parse_config(text: str, path: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    """Validate config `text` as if read from `path`; raise ConfigError with every problem."""
    from cliproxyd._config_parse import parse

    return parse(text, path, os.environ if env is None else env)


def effective_config_json(cfg: Config) -> dict:
    """The effective config keyed by YAML names; the management secret is absent entirely."""
    out = _to_json(cfg)
    for hidden in ("path", "warnings", "lines"):
        out.pop(hidden, None)
    out["remote-management"] = {"allow-remote": cfg.remote_management.allow_remote}
    return out


def _to_json(value: object) -> object:
    """Dataclass → dict with YAML key names, tuples → lists, mappings → dicts."""
    if is_dataclass(value):
        return {f.name.replace("_", "-"): _to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    return value
