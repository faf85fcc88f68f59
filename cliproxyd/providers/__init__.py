"""Upstream providers: one module per upstream kind (endpoints, auth headers, error
classification; pure) plus `transport`, the only module that performs HTTP.

`provider_for(kind)` returns the `base.Provider` for a `Credential.kind`.  Importing this package
does not import Tornado; import `cliproxyd.providers.transport` explicitly where I/O happens.
"""

from __future__ import annotations

from cliproxyd.providers.base import Provider, WireRequest
from cliproxyd.providers.claude import ClaudeProvider
from cliproxyd.providers.codex import CodexProvider
from cliproxyd.providers.gemini import GeminiProvider
from cliproxyd.providers.openai_compat import OpenAICompatProvider

__all__ = ["PROVIDER_KINDS", "Provider", "WireRequest", "provider_for"]

PROVIDER_KINDS = ("gemini", "claude", "codex", "openai_compat")


# Providers hold no state: one instance each serves every request (the pipeline asks per attempt).
_PROVIDERS: dict[str, Provider] = {"gemini": GeminiProvider(), "claude": ClaudeProvider(),
                                   "codex": CodexProvider(), "openai_compat": OpenAICompatProvider()}


def provider_for(kind: str) -> Provider:
    """The provider for a credential kind.  KeyError for an unknown kind."""
    return _PROVIDERS[kind]
