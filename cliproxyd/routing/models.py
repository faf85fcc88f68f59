"""The model registry: which credential serves which client-visible model, and under which name.

Built from a `Config` by `build_registry`; owns credential synthesis from config entries (stable
credential ids), the per-entry model list (built-in catalogue, or the entry's `models` aliases),
`excluded-models` globs, prefix rules and the model listing.  Pure: no I/O, no clock, no globals.

Rules (issue 4, reference/cliproxyapi-translation.md §9.1–9.3):

* An entry's `models` list, when non-empty, replaces the built-in catalogue for that entry:
  ``alias`` is the id clients use, ``name`` what goes upstream.  OpenAI-compatible entries serve
  only their listed models.
* `excluded-models` globs (case-insensitive, ``*`` matches any run of characters) remove a model
  when they match its upstream name or its alias.
* ``team-a/m`` reaches only credentials with prefix ``team-a``; a plain ``m`` reaches every
  credential serving ``m`` unless `force-model-prefix` is on (then only unprefixed credentials).
  If no credential has the prefix, the whole string is tried as a plain model id (ids such as
  ``meta/llama`` are legal in compat lists).
* A ``model(high)`` / ``model(8192)`` suffix is ignored for routing; the caller takes the
  reasoning request from `formats.reasoning.split_model_suffix` itself.  A Gemini-style
  ``models/<id>`` is accepted as ``<id>``.
* Candidates come back in config order (gemini, claude, codex, openai-compatibility; entries in
  file order), then OAuth accounts from the auth dir (file-name order), which is the order
  fill-first uses.
* OAuth accounts (issue 7, `OAuthAccount`) serve their kind's built-in catalogue (minus their
  ``excluded_models``) at the ``oauth.<kind>.api-base-url``; their credential id is the auth
  file's name.  An account marked ``unavailable`` (token expired and not refreshed) is listed
  but never resolved; a model only such accounts serve answers 503 with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cliproxyd.errors import ErrorKind, ProxyError
from cliproxyd.formats.reasoning import split_model_suffix
from cliproxyd.routing.catalog import (
    ModelInfo,
    builtin_models,
    find_model,
    generic_info,
)

__all__ = [
    "DEFAULT_BASE_URLS",
    "Credential",
    "ListedModel",
    "ModelRegistry",
    "OAuthAccount",
    "ServedModel",
    "build_registry",
    "credential_id",
    "glob_match",
]

DEFAULT_BASE_URLS: Mapping[str, str] = MappingProxyType({
    "gemini": "https://generativelanguage.googleapis.com",
    "claude": "https://api.anthropic.com",
    "codex": "https://api.openai.com/v1",
})

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ServedModel:
    """One model a credential serves: ``alias`` (client id), ``upstream`` (sent upstream)."""

    alias: str
    upstream: str
    info: ModelInfo


@dataclass(frozen=True, eq=False)
class Credential:
    """One upstream API key with everything needed to call it.

    ``id`` is stable across reloads (kind + base URL + key hash) so cooldown state survives a
    config reload; ``label`` is safe to log (kind and the key's last 4 characters).  Equality is
    identity (compare ``id`` to ask "same upstream key?").
    """

    id: str
    kind: str  # gemini | claude | codex | openai_compat
    api_key: str = field(repr=False)
    base_url: str
    prefix: str = ""
    priority: int = 0
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    proxy_url: str = ""
    compat_name: str = ""
    models: tuple[ServedModel, ...] = field(default=(), repr=False)
    # OAuth accounts (issue 7): "oauth" auth, the ChatGPT account id (Codex), why the account
    # cannot be used now ("" = it can), and whether its upstream only streams.
    auth: str = "api_key"
    account_id: str = ""
    unavailable: str = ""
    stream_only: bool = False

    @property
    def label(self) -> str:
        """A log-safe name: never the key itself."""
        tail = self.api_key[-4:] if len(self.api_key) >= 8 else ""
        name = self.compat_name or self.kind
        return f"{name}:...{tail}" if tail else f"{name}:{self.id[-8:]}"

    def served(self, alias: str) -> ServedModel | None:
        """The model this credential serves under a client-visible id, if any."""
        for model in self.models:
            if model.alias == alias:
                return model
        return None


@dataclass(frozen=True)
class OAuthAccount:
    """An OAuth login from the auth dir as the registry needs it (built by
    `cliproxyd.credentials.accounts`).  ``name`` is the auth file's name (the credential id)."""

    name: str
    kind: str  # claude | codex
    access_token: str = field(repr=False)
    account_id: str = ""
    prefix: str = ""
    priority: int = 0
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    proxy_url: str = ""
    excluded_models: tuple[str, ...] = ()
    unavailable: str = ""


@dataclass(frozen=True)
class ListedModel:
    """A model as the listing routes show it; ``id`` may be ``prefix/alias``."""

    id: str
    info: ModelInfo
    kind: str
    owned_by: str


def credential_id(kind: str, base_url: str, api_key: str, compat_name: str = "") -> str:
    """A stable, non-secret id: the same key at the same endpoint keeps its id across reloads."""
    material = f"{kind}\0{compat_name}\0{base_url}\0{api_key}"
    digest = hashlib.sha256(material.encode()).hexdigest()
    return f"{kind}-{digest[:16]}"


def glob_match(pattern: str, name: str) -> bool:
    """Case-insensitive match where ``*`` matches any run of characters (CLIProxyAPI semantics)."""
    pieces = pattern.lower().split("*")
    text = name.lower()
    if len(pieces) == 1:
        return text == pieces[0]
    if not text.startswith(pieces[0]) or not text.endswith(pieces[-1]):
        return False
    pos, end = len(pieces[0]), len(text) - len(pieces[-1])
    for piece in pieces[1:-1]:
        found = text.find(piece, pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return pos <= end


def _excluded(model: ServedModel, globs: Iterable[str]) -> bool:
    return any(glob_match(g, model.alias) or glob_match(g, model.upstream) for g in globs)


def _entry_models(kind: str, aliases: Iterable[Any], owner: str) -> tuple[ServedModel, ...]:
    """The entry's `models` aliases, or the kind's built-in catalogue when it has none."""
    explicit = tuple(aliases)
    if not explicit:
        return tuple(ServedModel(m.id, m.id, m) for m in builtin_models(kind))
    served = []
    for alias in explicit:
        client_id = alias.alias or alias.name
        info = find_model(alias.name, kind if kind != "openai_compat" else None)
        info = info.renamed(client_id) if info else generic_info(client_id, owner)
        served.append(ServedModel(client_id, alias.name, info))
    return tuple(served)


def _make(kind: str, api_key: str, base_url: str, entry: Any, proxy_url: str,
          compat_name: str = "") -> Credential:
    base = (base_url or DEFAULT_BASE_URLS.get(kind, "")).rstrip("/")
    owner = compat_name or kind
    models = tuple(m for m in _entry_models(kind, entry.models, owner)
                   if not _excluded(m, entry.excluded_models))
    return Credential(
        id=credential_id(kind, base, api_key, compat_name), kind=kind, api_key=api_key,
        base_url=base, prefix=entry.prefix.strip("/"), priority=entry.priority,
        headers=MappingProxyType(dict(entry.headers)), proxy_url=proxy_url,
        compat_name=compat_name, models=models,
    )


def _effective_proxy(own: str, default: str) -> str:
    """An entry's outbound proxy: its own, else the global one; ``direct``/``none`` on the entry
    opts out of the global proxy (CLIProxyAPI's convention)."""
    if own.strip().lower() in ("direct", "none"):
        return ""
    return own or default


def _credentials(config: Any) -> list[Credential]:
    creds = []
    for kind, entries in (("gemini", config.gemini_api_key), ("claude", config.claude_api_key),
                          ("codex", config.codex_api_key)):
        for e in entries:
            creds.append(_make(kind, e.api_key, e.base_url, e,
                               _effective_proxy(e.proxy_url, config.proxy_url)))
    for compat in config.openai_compatibility:
        # An entry without keys still works (Authorization omitted), as in CLIProxyAPI.
        keys = compat.api_key_entries or (None,)
        for key in keys:
            proxy = _effective_proxy(key.proxy_url if key else "", config.proxy_url)
            creds.append(_make("openai_compat", key.api_key if key else "", compat.base_url,
                               compat, proxy, compat.name))
    return creds


def _oauth_credential(account: OAuthAccount, config: Any) -> Credential:
    endpoints = getattr(getattr(config, "oauth", None), account.kind, None)
    base = (getattr(endpoints, "api_base_url", "") or DEFAULT_BASE_URLS[account.kind]).rstrip("/")
    models = tuple(m for m in _entry_models(account.kind, (), account.kind)
                   if not _excluded(m, account.excluded_models))
    return Credential(
        id=account.name, kind=account.kind, api_key=account.access_token, base_url=base,
        prefix=account.prefix.strip("/"), priority=account.priority,
        headers=MappingProxyType(dict(account.headers)),
        proxy_url=account.proxy_url or config.proxy_url, models=models, auth="oauth",
        account_id=account.account_id, unavailable=account.unavailable,
        stream_only=account.kind == "codex",  # the ChatGPT Codex backend only streams
    )


class ModelRegistry:
    """Credentials and the models they serve; answers `resolve` and `listing`.  Immutable once
    built (a reload builds a new one)."""

    def __init__(self, credentials: Iterable[Credential], force_model_prefix: bool = False):
        self.credentials: tuple[Credential, ...] = tuple(credentials)
        self.force_model_prefix = force_model_prefix
        self._prefixes = frozenset(c.prefix for c in self.credentials if c.prefix)
        self._by_alias: dict[str, list[tuple[Credential, str]]] = {}
        self._held: dict[str, str] = {}  # alias → why only unavailable accounts serve it
        for cred in self.credentials:
            for m in cred.models:
                if cred.unavailable:
                    self._held.setdefault(m.alias, cred.unavailable)
                    continue
                self._by_alias.setdefault(m.alias, []).append((cred, m.upstream))
        self._listing = self._build_listing()
        self._listed = {item.id: item for item in self._listing}

    def resolve(self, model: str) -> list[tuple[Credential, str]]:
        """``(credential, upstream model name)`` for every credential that can serve ``model``.

        Raises `ProxyError` MODEL_NOT_FOUND (404, code ``model_not_found``) when none can.
        """
        name = model.strip()
        base, _ = split_model_suffix(name)
        # Literal ids ending in "(...)" and Gemini-style "models/<id>" are accepted too.
        for candidate in (base, name, base.removeprefix("models/")):
            found = self._match(candidate)
            if found:
                return found
        for candidate in (base, name, base.removeprefix("models/")):
            reason = self._held_reason(candidate)
            if reason:
                raise ProxyError(ErrorKind.UPSTREAM_UNAVAILABLE, f"No usable credential for "
                                 f"model `{model}`: {reason}", status=503,
                                 code="credentials_unavailable")
        raise ProxyError(ErrorKind.MODEL_NOT_FOUND, f"The model `{model}` does not exist or is "
                         "not served by any configured upstream.", code="model_not_found",
                         param="model")

    def _held_reason(self, name: str) -> str:
        """Why ``name`` is served only by unavailable OAuth accounts ("" when it is not)."""
        prefix, sep, rest = name.partition("/")
        return self._held.get(rest if sep and prefix in self._prefixes else name, "")

    def _match(self, name: str) -> list[tuple[Credential, str]]:
        prefix, sep, rest = name.partition("/")
        if sep and prefix in self._prefixes:
            hits = [h for h in self._by_alias.get(rest, ()) if h[0].prefix == prefix]
            if hits:
                return hits
        hits = self._by_alias.get(name, [])
        if self.force_model_prefix:
            return [h for h in hits if not h[0].prefix]
        return list(hits)

    def _build_listing(self) -> tuple[ListedModel, ...]:
        seen: dict[str, ListedModel] = {}
        for cred in self.credentials:
            owner = cred.compat_name or cred.kind
            for m in cred.models:
                ids = [f"{cred.prefix}/{m.alias}"] if cred.prefix else []
                if not cred.prefix or not self.force_model_prefix:
                    ids.append(m.alias)
                for mid in ids:
                    if mid not in seen:
                        seen[mid] = ListedModel(mid, m.info.renamed(mid), cred.kind, owner)
        return tuple(seen.values())

    def listing(self) -> list[ListedModel]:
        """Every client-visible model id, deduplicated, in first-seen (config) order."""
        return list(self._listing)

    def find(self, model: str) -> ListedModel | None:
        """The listing entry for one client-visible id (``GET /v1beta/models/{model}``)."""
        return self._listed.get(model)


def build_registry(config: Any, accounts: Iterable[OAuthAccount] = ()) -> ModelRegistry:
    """The registry for a `cliproxyd.config.Config` plus the auth dir's OAuth ``accounts``."""
    creds = _credentials(config) + [_oauth_credential(a, config) for a in accounts]
    return ModelRegistry(creds, force_model_prefix=config.force_model_prefix)
