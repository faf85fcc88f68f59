"""The built-in model catalogue: the models each upstream kind serves when an entry has no `models`.

This is a data module.  It owns the model ids, display names, context and output limits and
thinking capability per provider kind (``gemini``, ``claude``, ``codex``); it does no I/O and holds
no mutable state.  OpenAI-compatible upstreams have no built-in list (their entries name their
models).  Ids and limits follow the vendors' published model lists as mirrored by CLIProxyAPI's
``models.json`` (reference/cliproxyapi-translation.md §9.1); Claude ids are the dated ids Anthropic
lists, plus the undated aliases Anthropic also accepts for the newest models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

__all__ = ["CATALOG", "KINDS", "ModelInfo", "Thinking", "builtin_models", "find_model", "generic_info"]

KINDS = ("gemini", "claude", "codex", "openai_compat")


@dataclass(frozen=True)
class Thinking:
    """What reasoning control a model accepts.

    ``levels``: the effort levels it understands (empty = budget-only); ``min_budget`` /
    ``max_budget``: the token budget range (None = no budget control); ``zero_allowed``: thinking
    can be switched off; ``dynamic_allowed``: budget -1 ("let the model decide") is accepted.
    """

    levels: tuple[str, ...] = ()
    min_budget: int | None = None
    max_budget: int | None = None
    zero_allowed: bool = False
    dynamic_allowed: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """One model as listings show it.  ``created`` is a Unix timestamp (0 = unknown)."""

    id: str
    display_name: str
    owned_by: str
    context_length: int
    max_output_tokens: int
    thinking: Thinking | None = None
    created: int = 0
    description: str = ""
    version: str = ""

    def renamed(self, new_id: str) -> ModelInfo:
        """The same model under another client-visible id (an alias)."""
        return replace(self, id=new_id)


def generic_info(model_id: str, owned_by: str) -> ModelInfo:
    """Metadata for a model the catalogue does not know (user-defined aliases, compat models)."""
    return ModelInfo(model_id, model_id, owned_by, context_length=128000, max_output_tokens=8192)


# -- Gemini (generativelanguage.googleapis.com model list) ------------------------------------

_G25_PRO = Thinking(min_budget=128, max_budget=32768, dynamic_allowed=True)
_G25_FLASH = Thinking(max_budget=24576, min_budget=0, zero_allowed=True, dynamic_allowed=True)


def _g3(*levels: str) -> Thinking:
    return Thinking(levels=levels, min_budget=128, max_budget=32768, dynamic_allowed=True)


def _gemini(mid: str, name: str, thinking: Thinking, created: int, version: str, desc: str) -> ModelInfo:
    return ModelInfo(mid, name, "google", 1048576, 65536, thinking, created, desc, version)


_GEMINI = (
    _gemini("gemini-2.5-pro", "Gemini 2.5 Pro", _G25_PRO, 1750118400, "2.5",
            "Stable release (June 17th, 2025) of Gemini 2.5 Pro"),
    _gemini("gemini-2.5-flash", "Gemini 2.5 Flash", _G25_FLASH, 1750118400, "001",
            "Stable version of Gemini 2.5 Flash"),
    _gemini("gemini-2.5-flash-lite", "Gemini 2.5 Flash Lite", _G25_FLASH, 1753142400, "2.5",
            "Smallest and most cost effective Gemini 2.5 model"),
    _gemini("gemini-3-pro-preview", "Gemini 3 Pro Preview", _g3("low", "high"), 1763424000,
            "3.0", "Gemini 3 Pro Preview"),
    _gemini("gemini-3-flash-preview", "Gemini 3 Flash Preview",
            _g3("minimal", "low", "medium", "high"), 1765929600, "3.0", "Gemini 3 Flash Preview"),
    _gemini("gemini-3.1-pro-preview", "Gemini 3.1 Pro Preview", _g3("low", "medium", "high"),
            1771459200, "3.1", "Gemini 3.1 Pro Preview"),
    _gemini("gemini-3.1-flash-lite-preview", "Gemini 3.1 Flash Lite Preview",
            _g3("minimal", "high"), 1776288000, "3.1", "Gemini 3.1 Flash Lite Preview"),
)

# -- Claude (Anthropic's model list: dated ids) -----------------------------------------------

_C_BUDGET = Thinking(min_budget=1024, max_budget=128000, zero_allowed=True)
_C_EFFORT = Thinking(levels=("low", "medium", "high", "max"), min_budget=1024, max_budget=128000,
                     zero_allowed=True)


def _claude(mid: str, name: str, ctx: int, out: int, thinking: Thinking | None, created: int) -> ModelInfo:
    return ModelInfo(mid, name, "anthropic", ctx, out, thinking, created)


_CLAUDE = (
    _claude("claude-opus-4-6", "Claude Opus 4.6", 1000000, 128000, _C_EFFORT, 1770318000),
    _claude("claude-sonnet-4-6", "Claude Sonnet 4.6", 1000000, 128000, _C_EFFORT, 1771372800),
    _claude("claude-opus-4-5-20251101", "Claude Opus 4.5", 200000, 64000, _C_BUDGET, 1761955200),
    _claude("claude-haiku-4-5-20251001", "Claude Haiku 4.5", 200000, 64000, _C_BUDGET, 1759276800),
    _claude("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", 200000, 64000, _C_BUDGET, 1759104000),
    _claude("claude-opus-4-1-20250805", "Claude Opus 4.1", 200000, 32000, _C_BUDGET, 1754352000),
    _claude("claude-opus-4-20250514", "Claude Opus 4", 200000, 32000, _C_BUDGET, 1747180800),
    _claude("claude-sonnet-4-20250514", "Claude Sonnet 4", 200000, 64000, _C_BUDGET, 1747180800),
    _claude("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", 200000, 64000, _C_BUDGET, 1739923200),
    _claude("claude-3-5-haiku-20241022", "Claude Haiku 3.5", 200000, 8192, None, 1729555200),
    # Undated aliases Anthropic's API accepts and resolves to the newest snapshot.
    _claude("claude-opus-4-5", "Claude Opus 4.5", 200000, 64000, _C_BUDGET, 1761955200),
    _claude("claude-haiku-4-5", "Claude Haiku 4.5", 200000, 64000, _C_BUDGET, 1759276800),
    _claude("claude-sonnet-4-5", "Claude Sonnet 4.5", 200000, 64000, _C_BUDGET, 1759104000),
    _claude("claude-opus-4-1", "Claude Opus 4.1", 200000, 32000, _C_BUDGET, 1754352000),
)

# -- Codex / OpenAI Responses (GPT-5 family) ---------------------------------------------------


def _levels(*levels: str) -> Thinking:
    return Thinking(levels=levels, zero_allowed="none" in levels)


def _codex(mid: str, name: str, ctx: int, thinking: Thinking, created: int) -> ModelInfo:
    return ModelInfo(mid, name, "openai", ctx, 128000, thinking, created, version=mid)


_CODEX = (
    _codex("gpt-5", "GPT 5", 400000, _levels("minimal", "low", "medium", "high"), 1754524800),
    _codex("gpt-5-codex", "GPT 5 Codex", 400000, _levels("low", "medium", "high"), 1757894400),
    _codex("gpt-5-codex-mini", "GPT 5 Codex Mini", 400000, _levels("medium", "high"), 1762473600),
    _codex("gpt-5.1", "GPT 5.1", 400000, _levels("none", "low", "medium", "high"), 1762905600),
    _codex("gpt-5.1-codex", "GPT 5.1 Codex", 400000, _levels("low", "medium", "high"), 1762905600),
    _codex("gpt-5.1-codex-mini", "GPT 5.1 Codex Mini", 400000, _levels("medium", "high"),
           1762905600),
    _codex("gpt-5.1-codex-max", "GPT 5.1 Codex Max", 400000,
           _levels("low", "medium", "high", "xhigh"), 1763424000),
    _codex("gpt-5.2", "GPT 5.2", 400000, _levels("none", "low", "medium", "high", "xhigh"),
           1765440000),
    _codex("gpt-5.2-codex", "GPT 5.2 Codex", 400000, _levels("low", "medium", "high", "xhigh"),
           1765440000),
    _codex("gpt-5.4", "GPT 5.4", 1050000, _levels("low", "medium", "high", "xhigh"), 1772668800),
    _codex("gpt-5.4-mini", "GPT 5.4 Mini", 400000, _levels("low", "medium", "high", "xhigh"),
           1773705600),
    _codex("gpt-5.5", "GPT 5.5", 272000, _levels("low", "medium", "high", "xhigh"), 1776902400),
)

CATALOG: Mapping[str, tuple[ModelInfo, ...]] = MappingProxyType(
    {"gemini": _GEMINI, "claude": _CLAUDE, "codex": _CODEX, "openai_compat": ()}
)


def builtin_models(kind: str) -> tuple[ModelInfo, ...]:
    """The built-in models of a provider kind (empty for ``openai_compat``).  KeyError if unknown."""
    return CATALOG[kind]


def find_model(model_id: str, kind: str | None = None) -> ModelInfo | None:
    """Catalogue metadata for an upstream model id, in one kind or in any."""
    kinds = (kind,) if kind else tuple(CATALOG)
    for k in kinds:
        for info in CATALOG.get(k, ()):
            if info.id == model_id:
                return info
    return None
