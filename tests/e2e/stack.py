"""The four fake upstreams wired into a daemon config, shared by the end-to-end tests.

``upstreams`` maps a client-visible alias to ``(fake kind, upstream model, configured key)``;
each fake serves exactly its alias.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.upstreams import start_fake

KINDS = ("gemini", "claude", "responses", "openai")


def start_fakes() -> dict:
    """One running fake of each kind."""
    return {kind: start_fake(kind) for kind in KINDS}


def provider_config(fakes: dict, upstreams: dict, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    """Provider entries pointing at the fakes of ``kinds``, each serving its alias."""
    by_kind = {kind: (alias, model, key) for alias, (kind, model, key) in upstreams.items()}

    def models(kind: str) -> list[dict]:
        alias, model, _ = by_kind[kind]
        return [{"name": model, "alias": alias}]

    def entry(kind: str, base: str) -> dict:
        return {"api-key": by_kind[kind][2], "base-url": base, "models": models(kind)}

    config: dict[str, Any] = {}
    if "gemini" in kinds:
        config["gemini-api-key"] = [entry("gemini", fakes["gemini"].base_url)]
    if "claude" in kinds:
        config["claude-api-key"] = [entry("claude", fakes["claude"].base_url)]
    if "responses" in kinds:
        config["codex-api-key"] = [entry("responses", fakes["responses"].base_url + "/v1")]
    if "openai" in kinds:
        config["openai-compatibility"] = [{
            "name": "compat", "base-url": fakes["openai"].base_url + "/v1",
            "api-key-entries": [{"api-key": by_kind["openai"][2]}], "models": models("openai"),
        }]
    return config
