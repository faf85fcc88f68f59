"""Validation of config.yaml: a node tree (with line marks) in, a `Config` or every problem out.

The schema is data: each section is a table of YAML key → (attribute, value check).  `_Ctx`
collects problems and warnings as it walks, so one run reports everything wrong with a file
("FILE:LINE: key.path: message", sorted by line).  Keys that CLIProxyAPI configs use but
cliproxyd does not implement (`_config_keys`) are warnings; any other unknown key is an error with
a did-you-mean suggestion.  Cross-field rules (tls needs cert and key, unique provider names, ...)
run after the walk.  No I/O, no clock, no module-level mutable state.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cliproxyd import _config_keys as keys
from cliproxyd import _config_yaml as y
from cliproxyd.config import (
    ROUTING_STRATEGIES,
    APIKeyEntry,
    ClaudeOAuth,
    CodexOAuth,
    Config,
    ConfigError,
    FrozenMap,
    Metrics,
    ModelAlias,
    OAuth,
    OpenAICompat,
    ProviderKey,
    RemoteManagement,
    Routing,
    Streaming,
    Timeouts,
    TLSConfig,
)
from cliproxyd.secrets import is_bcrypt_hash, looks_like_bcrypt

MAX_BYTES = y.MAX_BYTES
_BAD = object()  # a value that failed its check (the problem is already recorded)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


@dataclass
class _Ctx:
    """Walk state: where we are, what went wrong, and where each key was found."""

    path: str
    problems: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)

    def error(self, node: Node | int, key_path: str, message: str) -> object:
        """Record a problem; returns _BAD so checks can `return ctx.error(...)`."""
        line = node if isinstance(node, int) else y.line_of(node)
        self.problems.append((line, self._fmt(line, key_path, message)))
        return _BAD

    def warn(self, node: Node, key_path: str, message: str) -> None:
        line = y.line_of(node)
        self.warnings.append((line, self._fmt(line, key_path, message)))

    def _fmt(self, line: int, key_path: str, message: str) -> str:
        where = f"{self.path}:{line}" if line else self.path
        return f"{where}: {key_path}: {message}" if key_path else f"{where}: {message}"


Check = Callable[[_Ctx, Node, str], object]


# ---------------------------------------------------------------------------------------------
# Scalar checks.  Each takes (ctx, node, key_path) and returns the value or _BAD.

def _typed(ctx: _Ctx, node: Node, kp: str, want_tags: tuple[str, ...], what: str) -> object:
    """The scalar's value when its YAML type is one of `want_tags`, else a type problem."""
    if node.tag not in want_tags or not isinstance(node, ScalarNode):
        got = y.TAG_NAMES.get(node.tag, node.tag)
        hint = " (quote it)" if what == "a string" and isinstance(node, ScalarNode) else ""
        return ctx.error(node, kp, f"expected {what}, got {got}{hint}")
    try:
        return y.scalar_value(node)
    except ValueError as exc:
        return ctx.error(node, kp, f"invalid value: {exc}")


def string(ctx: _Ctx, node: Node, kp: str) -> object:
    return _typed(ctx, node, kp, (y.STR,), "a string")


def nonempty(ctx: _Ctx, node: Node, kp: str) -> object:
    value = string(ctx, node, kp)
    if isinstance(value, str) and not value.strip():
        return ctx.error(node, kp, "must not be empty")
    return value


def token(ctx: _Ctx, node: Node, kp: str) -> object:
    """A key sent in HTTP headers: non-empty, no control characters, no surrounding spaces."""
    value = nonempty(ctx, node, kp)
    if value is _BAD:
        return _BAD
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return ctx.error(node, kp, "must not contain control characters or line breaks")
    if value != value.strip():
        return ctx.error(node, kp, "has leading or trailing spaces")
    return value


def boolean(ctx: _Ctx, node: Node, kp: str) -> object:
    return _typed(ctx, node, kp, (y.BOOL,), "true or false")


def integer(lo: int, hi: int | None = None) -> Check:
    """An integer in [lo, hi]."""
    def check(ctx: _Ctx, node: Node, kp: str) -> object:
        value = _typed(ctx, node, kp, (y.INT,), "an integer")
        if value is _BAD:
            return _BAD
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            return ctx.error(node, kp, f"must be {bound}, got {value}")
        return value
    return check


def number(lo: float, hi: float, *, allow_lo: bool) -> Check:
    """A finite number (seconds) in (lo, hi], or [lo, hi] when `allow_lo`."""
    def check(ctx: _Ctx, node: Node, kp: str) -> object:
        value = _typed(ctx, node, kp, (y.INT, y.FLOAT), "a number")
        if value is _BAD:
            return _BAD
        if not math.isfinite(value):
            return ctx.error(node, kp, "must be a finite number")
        if value < lo or (value == lo and not allow_lo):
            return ctx.error(node, kp, f"must be {'at least' if allow_lo else 'greater than'} {lo:g}")
        if value > hi:
            return ctx.error(node, kp, f"must be at most {hi:g}, got {value:g}")
        return float(value)
    return check


def choice(options: tuple[str, ...]) -> Check:
    def check(ctx: _Ctx, node: Node, kp: str) -> object:
        value = string(ctx, node, kp)
        if value is not _BAD and value not in options:
            return ctx.error(node, kp, f"must be one of {', '.join(options)}; got {value!r}")
        return value
    return check


def base_url(ctx: _Ctx, node: Node, kp: str) -> object:
    """"" or an absolute http(s) URL."""
    value = string(ctx, node, kp)
    if value in (_BAD, ""):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ctx.error(node, kp, f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def proxy_url(ctx: _Ctx, node: Node, kp: str) -> object:
    """"" (none), "direct"/"none" (bypass a global proxy), or a proxy URL."""
    value = string(ctx, node, kp)
    if value in (_BAD, "", "direct", "none"):
        return value
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in _PROXY_SCHEMES or not parts.hostname:
        return ctx.error(node, kp, "must be an http, https, socks5 or socks5h URL, 'direct' or 'none'")
    return value


def host(ctx: _Ctx, node: Node, kp: str) -> object:
    """"" (all interfaces), an IP address or a host name; no port, scheme or brackets."""
    value = string(ctx, node, kp)
    if value in (_BAD, ""):
        return value
    if ":" in value:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return ctx.error(node, kp, f"must be an address or host name without port (got {value!r})")
    elif not _HOST_NAME.fullmatch(value):
        return ctx.error(node, kp, f"must be an address or host name without port (got {value!r})")
    return value


def must_be_false(ctx: _Ctx, node: Node, kp: str) -> object:
    """A CLIProxyAPI switch cliproxyd lacks: `false` is harmless (a warning), `true` an error."""
    value = boolean(ctx, node, kp)
    if value is True:
        return ctx.error(node, kp, "is not supported; remove or comment out the entry instead")
    if value is False:
        ctx.warn(node, kp, "is a CLIProxyAPI setting that cliproxyd does not implement; ignored")
    return value


def prefix(ctx: _Ctx, node: Node, kp: str) -> object:
    """A model prefix: trimmed of "/"; one still containing "/" (or a blank) is refused."""
    value = string(ctx, node, kp)
    if value is _BAD:
        return _BAD
    trimmed = value.strip().strip("/")
    if "/" in trimmed:
        return ctx.error(node, kp, f"must not contain '/' (got {value!r})")
    if any(ch.isspace() for ch in trimmed):
        return ctx.error(node, kp, f"must not contain whitespace (got {value!r})")
    return trimmed


def secret_key(ctx: _Ctx, node: Node, kp: str) -> object:
    value = string(ctx, node, kp)
    if isinstance(value, str) and looks_like_bcrypt(value) and not is_bcrypt_hash(value):
        return ctx.error(node, kp, "looks like a bcrypt hash but is malformed")
    return value


def glob(ctx: _Ctx, node: Node, kp: str) -> object:
    """A lower-cased model glob with "*" only at the start and/or end."""
    value = nonempty(ctx, node, kp)
    if value is _BAD:
        return _BAD
    if "*" in value.strip("*") or value.strip("*") == "" and value != "*":
        return ctx.error(node, kp, f"'*' is only allowed at the start or end (got {value!r})")
    return value.strip().lower()


def header_value(ctx: _Ctx, node: Node, kp: str) -> object:
    value = string(ctx, node, kp)
    if isinstance(value, str) and ("\r" in value or "\n" in value or "\0" in value):
        return ctx.error(node, kp, "must not contain line breaks")
    return value


# ---------------------------------------------------------------------------------------------
# Containers.

def list_of(item: Check) -> Check:
    """A YAML list whose items all pass `item`; returns a tuple."""
    def check(ctx: _Ctx, node: Node, kp: str) -> object:
        if not isinstance(node, SequenceNode):
            return ctx.error(node, kp, f"expected a list, got {y.TAG_NAMES.get(node.tag, node.tag)}")
        out, bad = [], False
        for i, child in enumerate(node.value):
            ikp = f"{kp}[{i}]"
            ctx.lines.setdefault(ikp, y.line_of(child))
            value = ctx.error(child, ikp, "empty item") if _is_null(child) else item(ctx, child, ikp)
            bad = bad or value is _BAD
            out.append(value)
        return _BAD if bad else tuple(out)
    return check


def headers(ctx: _Ctx, node: Node, kp: str) -> object:
    """A mapping of HTTP header name → string value; returns a read-only mapping."""
    pairs = _mapping_pairs(ctx, node, kp)
    if pairs is _BAD:
        return _BAD
    out, bad, seen = {}, False, {}
    for name, key_node, value_node in pairs:
        hkp = f"{kp}.{name}"
        if not _HEADER_NAME.fullmatch(name):
            bad = ctx.error(key_node, hkp, "not a valid HTTP header name") is _BAD or bad
            continue
        if name.lower() in seen:
            ctx.error(key_node, hkp, f"duplicate header (also on line {seen[name.lower()]})")
            bad = True
            continue
        seen[name.lower()] = y.line_of(key_node)
        value = header_value(ctx, value_node, hkp)
        bad = bad or value is _BAD
        out[name] = value
    return _BAD if bad else FrozenMap(out)


@dataclass(frozen=True)
class Section:
    """A YAML mapping built into dataclass `cls`; `spec` maps YAML key → check."""

    cls: type
    spec: Mapping[str, Check]
    required: tuple[str, ...] = ()
    warn: frozenset[str] = frozenset()
    hints: Mapping[str, str] | None = None

    def __call__(self, ctx: _Ctx, node: Node, kp: str) -> object:
        values = read_mapping(ctx, node, kp, self)
        if values is _BAD:
            return _BAD
        known = {f.name for f in fields(self.cls)}
        return self.cls(**{k: v for k, v in values.items() if k in known})


def read_mapping(ctx: _Ctx, node: Node, kp: str, sec: Section, partial: bool = False) -> object:
    """Check every key of mapping `node` against `sec`; returns {attribute: value} or _BAD.

    With `partial`, the values that passed are returned even when others failed (the top level
    uses that so cross-field rules still run and one pass reports everything)."""
    pairs = _mapping_pairs(ctx, node, kp)
    if pairs is _BAD:
        return _BAD
    values, bad, present = {}, False, set()
    for name, key_node, value_node in pairs:
        ckp = f"{kp}.{name}" if kp else name
        ctx.lines.setdefault(ckp, y.line_of(key_node))
        check = sec.spec.get(name)
        if check is None:
            _unknown_key(ctx, key_node, ckp, name, sec)
            bad = bad or name not in sec.warn
            continue
        present.add(name)
        if _is_null(value_node):
            if name in sec.required:
                bad = ctx.error(value_node, ckp, "is required and must not be empty") is _BAD
            continue
        value = check(ctx, value_node, ckp)
        if value is _BAD:
            bad = True
        else:
            values[name.replace("-", "_")] = value
    for name in sec.required:
        if name not in present:
            bad = ctx.error(node, kp, f"missing required key {name!r}") is _BAD
    return _BAD if bad and not partial else values


def _unknown_key(ctx: _Ctx, key_node: Node, kp: str, name: str, sec: Section) -> None:
    if name in sec.warn:
        ctx.warn(key_node, kp, "is a CLIProxyAPI setting that cliproxyd does not implement; ignored")
        return
    hint = (sec.hints or {}).get(name)
    if hint is not None:
        ctx.error(key_node, kp, hint)
        return
    close = difflib.get_close_matches(name, list(sec.spec), n=1, cutoff=0.7)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif len(sec.spec) <= 10:
        hint = f"known keys: {', '.join(sorted(sec.spec))}"
    else:
        hint = "not a cliproxyd setting (etc/cliproxyd/config.yaml lists every key)"
    ctx.error(key_node, kp, f"unknown key; {hint}")


def _mapping_pairs(ctx: _Ctx, node: Node, kp: str) -> object:
    """[(name, key_node, value_node)] of a mapping, merges applied, duplicate keys refused."""
    if not isinstance(node, MappingNode):
        return ctx.error(node, kp, f"expected a mapping, got {y.TAG_NAMES.get(node.tag, node.tag)}")
    bad, seen = False, {}
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag == y.STR:
            if key_node.value in seen:
                name = key_node.value
                where = f"{kp}.{name}" if kp else name
                ctx.error(key_node, where, f"duplicate key (first on line {seen[name]})")
                bad = True
            else:
                seen[key_node.value] = y.line_of(key_node)
    try:
        pairs = _merged(node)
    except _BadMerge as exc:
        return ctx.error(node, kp, f"invalid merge key (<<): {exc}")
    for key_node, _ in pairs:
        if not isinstance(key_node, ScalarNode) or key_node.tag != y.STR:
            shown = key_node.value if isinstance(key_node, ScalarNode) else "(a collection)"
            bad = ctx.error(key_node, kp, f"key {shown} is not a string (quote it)") is _BAD
    if bad:
        return _BAD
    last = {k.value: (k, v) for k, v in pairs}  # later pairs win: own keys over merged ones
    return [(name, k, v) for name, (k, v) in last.items()]


class _BadMerge(Exception):
    """A merge key (<<) whose value is not a mapping or a list of mappings."""


def _merged(node: MappingNode) -> list[tuple[Node, Node]]:
    """The mapping's pairs with YAML merge keys resolved, lowest precedence first.

    The node tree is not modified (an anchored mapping may be reached several ways).  Own keys
    beat merged ones; among merged mappings the earlier one wins, as the YAML merge spec says.
    """
    merged: list[tuple[Node, Node]] = []
    own: list[tuple[Node, Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag != y.MERGE:
            own.append((key_node, value_node))
            continue
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in reversed(sources):
            if not isinstance(source, MappingNode):
                raise _BadMerge(f"expected a mapping or a list of mappings, got "
                                 f"{y.TAG_NAMES.get(source.tag, source.tag)}")
            merged.extend(_merged(source))
    return merged + own


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == y.NULL


# ---------------------------------------------------------------------------------------------
# The schema.

_DAY = 86_400.0
_SECONDS = number(0, _DAY, allow_lo=False)

MODEL = Section(ModelAlias, {"name": nonempty, "alias": string}, required=("name",),
                warn=keys.MODEL_WARN)
_PROVIDER_SPEC = {
    "api-key": token, "prefix": prefix, "base-url": base_url, "proxy-url": proxy_url,
    "priority": integer(-1_000_000, 1_000_000), "headers": headers, "models": list_of(MODEL),
    "excluded-models": list_of(glob),
}
GEMINI_KEY = Section(ProviderKey, _PROVIDER_SPEC, required=("api-key",), warn=keys.PROVIDER_WARN)
CLAUDE_KEY = Section(ProviderKey, _PROVIDER_SPEC, required=("api-key",),
                     warn=keys.PROVIDER_WARN | keys.CLAUDE_WARN)
CODEX_KEY = Section(ProviderKey, _PROVIDER_SPEC, required=("api-key",),
                    warn=keys.PROVIDER_WARN | keys.CODEX_WARN)
API_KEY_ENTRY = Section(APIKeyEntry, {"api-key": token, "proxy-url": proxy_url},
                        required=("api-key",), warn=keys.ENTRY_WARN)
OPENAI_COMPAT = Section(OpenAICompat, {
    "name": nonempty, "base-url": base_url, "prefix": prefix,
    "priority": integer(-1_000_000, 1_000_000), "headers": headers,
    "api-key-entries": list_of(API_KEY_ENTRY), "models": list_of(MODEL),
    "excluded-models": list_of(glob), "disabled": must_be_false,
}, required=("name", "base-url"), warn=keys.COMPAT_WARN, hints=keys.COMPAT_HINTS)

def endpoint_url(ctx: _Ctx, node: Node, kp: str) -> object:
    """An absolute http(s) URL that must be present (an OAuth or API endpoint)."""
    value = base_url(ctx, node, kp)
    if value == "":
        return ctx.error(node, kp, "must not be empty (remove the key to use the default)")
    return value


def _oauth_provider(cls: type) -> Section:
    """`oauth.<provider>`: endpoint overrides (issue 7); every default is the real provider's."""
    return Section(cls, {"authorize-url": endpoint_url, "token-url": endpoint_url,
                         "api-base-url": endpoint_url, "redirect-port": integer(1, 65535),
                         "client-id": token, "userinfo-url": base_url})


OAUTH = Section(OAuth, {"claude": _oauth_provider(ClaudeOAuth), "codex": _oauth_provider(CodexOAuth)})

TOP = Section(Config, {
    "host": host,
    "port": integer(1, 65535),
    "debug": boolean,
    "tls": Section(TLSConfig, {"enable": boolean, "cert": string, "key": string}),
    "auth-dir": nonempty,
    "api-keys": list_of(token),
    "remote-management": Section(RemoteManagement, {"secret-key": secret_key, "allow-remote": boolean},
                                 warn=keys.REMOTE_MANAGEMENT_WARN),
    "ws-auth": boolean,
    "usage-statistics-enabled": boolean,
    "usage-db": string,
    "usage-retention-days": integer(1, 36500),
    "request-retry": integer(0, 10),
    "max-retry-interval": number(0, _DAY, allow_lo=True),
    "routing": Section(Routing, {"strategy": choice(ROUTING_STRATEGIES)}, warn=keys.ROUTING_WARN),
    "force-model-prefix": boolean,
    "max-body-size": integer(1, 1 << 40),
    "shutdown-timeout": _SECONDS,
    "streaming": Section(Streaming, {"keepalive-seconds": number(0, 3600, allow_lo=True)},
                         warn=keys.STREAMING_WARN),
    "timeouts": Section(Timeouts, {"connect": _SECONDS, "first-byte": _SECONDS, "idle": _SECONDS,
                                   "client-idle": _SECONDS, "client-body": _SECONDS}),
    "metrics": Section(Metrics, {"require-auth": boolean}),
    "proxy-url": proxy_url,
    "gemini-api-key": list_of(GEMINI_KEY),
    "claude-api-key": list_of(CLAUDE_KEY),
    "codex-api-key": list_of(CODEX_KEY),
    "openai-compatibility": list_of(OPENAI_COMPAT),
    "oauth": OAUTH,
}, warn=keys.TOP_WARN)


# ---------------------------------------------------------------------------------------------
# Entry point.

def parse(text: str, path: str, env: Mapping[str, str]) -> Config:
    """Validate `text` (from `path`) into a Config; raise ConfigError listing every problem."""
    ctx = _Ctx(path)
    try:
        root = y.compose(text)
    except y.YAMLProblem as exc:
        raise ConfigError([ctx._fmt(exc.line, "", exc.message)]) from None
    values: object = {}
    if root is not None and not _is_null(root):
        if not isinstance(root, MappingNode):
            ctx.error(root, "", f"the top level must be a mapping of settings, got "
                                f"{y.TAG_NAMES.get(root.tag, root.tag)}")
        else:
            values = read_mapping(ctx, root, "", TOP, partial=True)
    if values is not _BAD:
        _cross_checks(ctx, values)
    if ctx.problems:
        ordered = [msg for _, msg in sorted(ctx.problems, key=lambda p: p[0])]
        raise ConfigError(list(dict.fromkeys(ordered)))  # an anchor reused twice reports once
    return _finish(ctx, values, path, env)


def _cross_checks(ctx: _Ctx, values: dict) -> None:
    """Rules that involve more than one key."""
    tls = values.get("tls")
    if tls is not None and tls.enable:
        for name in ("cert", "key"):
            if not getattr(tls, name):
                ctx.error(ctx.lines.get("tls.enable", 0), "tls." + name,
                          "is required when tls.enable is true")
    for attr in ("gemini_api_key", "claude_api_key", "codex_api_key"):
        _unique(ctx, attr.replace("_", "-"), values.get(attr, ()),
                lambda e: (e.api_key, e.base_url), "same api-key and base-url as")
    _unique(ctx, "openai-compatibility", values.get("openai_compatibility", ()),
            lambda e: e.name.strip().lower(), "same name as", field_name="name")
    for i, compat in enumerate(values.get("openai_compatibility", ())):
        _unique(ctx, f"openai-compatibility[{i}].api-key-entries", compat.api_key_entries,
                lambda e: e.api_key, "same api-key as")


def _unique(ctx: _Ctx, kp: str, items: tuple, key: Callable, what: str, field_name: str = "") -> None:
    seen: dict = {}
    for i, item in enumerate(items):
        ident = key(item)
        ikp = f"{kp}[{i}]"
        if ident in seen:
            where = f"{ikp}.{field_name}" if field_name else ikp
            ctx.error(ctx.lines.get(where, ctx.lines.get(ikp, 0)), where,
                      f"duplicate entry ({what} {kp}[{seen[ident]}])")
        else:
            seen[ident] = i


def _finish(ctx: _Ctx, values: dict, path: str, env: Mapping[str, str]) -> Config:
    """Apply path resolution and the MANAGEMENT_PASSWORD override; build the Config."""
    base = os.path.dirname(path) if os.path.isabs(path) else os.getcwd()
    home = env.get("HOME") or None
    auth_dir = _resolve(values.get("auth_dir", Config.auth_dir), base, home)
    values["auth_dir"] = auth_dir
    if values.get("usage_db"):
        values["usage_db"] = _resolve(values["usage_db"], base, home)
    tls = values.get("tls")
    if tls is not None:
        values["tls"] = TLSConfig(tls.enable, _resolve(tls.cert, base, home) if tls.cert else "",
                                  _resolve(tls.key, base, home) if tls.key else "")
    values["remote_management"] = _management(values.get("remote_management", RemoteManagement()), env)
    warnings = tuple(msg for _, msg in sorted(ctx.warnings, key=lambda p: p[0]))
    known = {f.name for f in fields(Config)}
    return Config(path=path, warnings=warnings, lines=FrozenMap(ctx.lines),
                  **{k: v for k, v in values.items() if k in known})


def _management(rm: RemoteManagement, env: Mapping[str, str]) -> RemoteManagement:
    """MANAGEMENT_PASSWORD, when set and non-empty, replaces secret-key (and so enables management)."""
    from_env = env.get("MANAGEMENT_PASSWORD", "")
    if from_env:
        return RemoteManagement(secret_key=from_env, allow_remote=rm.allow_remote, secret_from_env=True)
    return rm


def _resolve(value: str, base: str, home: str | None) -> str:
    """Expand "~" (with `home` when given) and make a relative path relative to `base`."""
    if value == "~" or value.startswith("~/"):
        value = (home or os.path.expanduser("~")) + value[1:]
    else:
        value = os.path.expanduser(value)
    return os.path.normpath(os.path.join(base, value))
