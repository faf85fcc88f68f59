"""A redacted, human-readable diff of two Configs, for the reload log.

`diff(old, new)` returns lines such as ``port: 8317 → 8318`` or
``gemini-api-key[0].api-key: ****a1b2 → ****c3d4``, keyed by YAML names.  Secrets (client
api-keys, the management secret, provider api-keys, header values, proxy passwords) never
appear: at most their last four characters, and nothing at all for short ones.
`restart_keys_changed(old, new)` says which `RESTART_KEYS` settings differ.
No I/O; nothing here logs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass
from urllib.parse import urlsplit

from cliproxyd.config import RESTART_KEYS, Config

__all__ = ["diff", "redact", "restart_keys_changed"]

_SKIP = frozenset({"path", "warnings", "lines", "secret_from_env"})
_MIN_LEN_FOR_HINT = 12  # below this, even four characters give too much away
# Key paths (list indices removed) whose values are secrets.
_SECRET_PATH = re.compile(
    r"^(api-keys|remote-management\.secret-key|.*\.api-key|.*\.headers\..*)$")
_PROXY_PATH = re.compile(r"(^|\.)proxy-url$")


def redact(secret: str) -> str:
    """"****" plus the last four characters when the secret is long enough to spare them."""
    if len(secret) >= _MIN_LEN_FOR_HINT:
        return "****" + secret[-4:]
    return "****" if secret else '""'


def diff(old: Config, new: Config) -> list[str]:
    """Human-readable "key: old → new" lines for every setting that differs, secrets redacted."""
    before, after = dict(_flatten(old, "")), dict(_flatten(new, ""))
    lines, gone = [], ()
    for key in _ordered_union(before, after):
        if key.startswith(gone):
            continue  # a field of a list entry already reported as added or removed
        a, b = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if key.endswith("#item"):
            if a is _ABSENT or b is _ABSENT:
                item = key[:-len("#item")]
                lines.append(f"{item}: {'added' if a is _ABSENT else 'removed'}")
                gone = (item + ".", item + "[")
            continue
        if a != b:
            lines.append(_describe(key, a, b))
    if old.remote_management.secret_from_env != new.remote_management.secret_from_env:
        source = "MANAGEMENT_PASSWORD" if new.remote_management.secret_from_env else "config file"
        lines.append(f"remote-management.secret-key: now taken from the {source}")
    return lines


def restart_keys_changed(old: Config, new: Config) -> list[str]:
    """The RESTART_KEYS (host, port, tls) whose value differs: they need a new listening socket."""
    return sorted(k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k))


class _Absent:
    def __repr__(self) -> str:
        return "(none)"


_ABSENT = _Absent()


def _flatten(value: object, path: str) -> Iterator[tuple[str, object]]:
    """(key.path, scalar) pairs; list items as key[i], and api-keys as a set of values."""
    if is_dataclass(value):
        for f in fields(value):
            if f.name not in _SKIP:
                yield from _flatten(getattr(value, f.name), _join(path, f.name.replace("_", "-")))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(v, _join(path, k))
    elif isinstance(value, tuple) and path == "api-keys":
        # Client keys are a set: report additions and removals, not positions.
        for key in value:
            yield f"api-keys[{redact(key)}#{_fingerprint(key)}]", key
    elif isinstance(value, tuple):
        yield f"{path}#count", len(value)
        for i, item in enumerate(value):
            yield f"{path}[{i}]#item", True
            yield from _flatten(item, f"{path}[{i}]")
    else:
        yield path, value


def _fingerprint(secret: str) -> str:
    """A short tag so two keys with the same redaction stay distinct inside the diff (not shown)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:6]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _ordered_union(a: dict, b: dict) -> list[str]:
    """Keys of both, grouped by top-level setting in Config's field order (stable otherwise)."""
    seen = list(dict.fromkeys([*a, *b]))
    rank = {f.name.replace("_", "-"): i for i, f in enumerate(fields(Config))}
    return sorted(seen, key=lambda k: rank.get(re.split(r"[.\[#]", k, maxsplit=1)[0], len(rank)))


def _describe(key: str, a: object, b: object) -> str:
    if key.startswith("api-keys["):
        shown = key[len("api-keys["):].split("#")[0]
        return f"api-keys: {'added' if a is _ABSENT else 'removed'} {shown}"
    if key.endswith("#count"):
        return f"{key[:-len('#count')]}: {a} → {b} entries"
    generic = re.sub(r"\[\d+\]", "", key)
    if _SECRET_PATH.match(generic):
        ra, rb = _show_secret(a), _show_secret(b)
        return f"{key}: {ra} → {rb}" if ra != rb else f"{key}: changed ({rb})"
    if _PROXY_PATH.search(generic):
        pa, pb = _show_proxy(a), _show_proxy(b)
        return f"{key}: {pa} → {pb}" if pa != pb else f"{key}: changed ({pb})"
    return f"{key}: {_show(a)} → {_show(b)}"


def _show(value: object) -> str:
    return "(none)" if value is _ABSENT else json.dumps(value, ensure_ascii=False)


def _show_secret(value: object) -> str:
    return "(none)" if value is _ABSENT else redact(str(value))


def _show_proxy(value: object) -> str:
    """A proxy URL with any password replaced."""
    if value is _ABSENT or not isinstance(value, str):
        return _show(value)
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return '"****"'
    if password:
        value = value.replace(f":{password}@", ":****@", 1)
    return json.dumps(value)
