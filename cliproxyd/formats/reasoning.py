"""Reasoning effort ↔ token budget, and the ``model(level)`` / ``model(budget)`` name suffix.

One table, used by every codec (CLIProxyAPI internal/thinking, reference §5.1–5.2).  Pure.
"""

from __future__ import annotations

import re

from cliproxyd.formats.ir import Reasoning

__all__ = ["LEVELS", "level_to_budget", "budget_to_level", "split_model_suffix"]

# Ordered from least to most thinking; "none" and "auto" are modes rather than levels.
LEVELS = ("minimal", "low", "medium", "high", "xhigh", "max")

_LEVEL_BUDGET = {
    "none": 0,
    "auto": -1,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
    "max": 128000,
}

_SUFFIX = re.compile(r"^(?P<base>.+)\((?P<suffix>[^()]*)\)$")


def level_to_budget(level: str) -> int:
    """Token budget for an effort level (``none`` 0, ``auto`` -1).  KeyError for an unknown one."""
    return _LEVEL_BUDGET[level]


def budget_to_level(budget: int) -> str:
    """Effort level for a token budget.  ValueError for budgets below -1."""
    if budget < -1:
        raise ValueError(f"invalid thinking budget {budget}")
    if budget == -1:
        return "auto"
    if budget == 0:
        return "none"
    for level in LEVELS[:-1]:
        if budget <= _LEVEL_BUDGET[level]:
            return level
    return "xhigh"


def split_model_suffix(model: str) -> tuple[str, Reasoning | None]:
    """``"gemini-2.5-pro(high)"`` → ``("gemini-2.5-pro", Reasoning(effort="high"))``.

    An unknown suffix is left as part of the name (it may be a real model id).
    """
    match = _SUFFIX.match(model)
    if not match:
        return model, None
    base, suffix = match.group("base"), match.group("suffix").strip().lower()
    if suffix in ("none", "auto") or suffix in LEVELS:
        return base, Reasoning(effort=suffix)
    if suffix == "-1":
        return base, Reasoning(effort="auto", budget=-1)
    if suffix.isdigit():
        budget = int(suffix)
        return base, Reasoning(effort="none", budget=0) if budget == 0 else Reasoning(budget=budget)
    return model, None
