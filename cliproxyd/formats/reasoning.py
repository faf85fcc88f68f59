"""Reasoning effort ↔ token budget, and the ``model(level)`` / ``model(budget)`` name suffix.

One table, used by every codec (CLIProxyAPI internal/thinking, reference §5.1–5.2).  Pure.
"""

from __future__ import annotations

import re
from dataclasses import replace

from cliproxyd.formats.ir import Reasoning

__all__ = ["LEVELS", "level_to_budget", "budget_to_level", "split_model_suffix", "fit_reasoning"]

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


def fit_reasoning(reasoning: Reasoning, levels: tuple[str, ...], min_budget: int | None,
                  max_budget: int | None) -> Reasoning:
    """``reasoning`` as a model with these capabilities accepts it (reference §5.4, the
    cross-format case): an effort level it lacks becomes the nearest one it has (a tie goes
    to the lower), a level for a budget-only model becomes the level's budget, a budget is
    kept inside ``[min_budget, max_budget]`` or, for a levels-only model, becomes its level.
    ``none`` and ``auto`` are left alone, as is everything for a model with neither levels
    nor a budget range (nothing is known)."""
    effort, budget = reasoning.effort, reasoning.budget
    if budget is None and effort in LEVELS:
        if levels:
            return replace(reasoning, effort=_nearest(effort, levels))
        if max_budget is not None:
            budget, effort = _LEVEL_BUDGET[effort], None
            reasoning = replace(reasoning, effort=None, budget=budget)
    if budget is not None and budget > 0 and max_budget is not None:
        low = min_budget if min_budget is not None and min_budget > 0 else 1
        return replace(reasoning, budget=min(max(budget, low), max_budget))
    if budget is not None and budget > 0 and levels:  # a levels-only model (OpenAI's)
        return replace(reasoning, effort=_nearest(budget_to_level(budget), levels), budget=None)
    return reasoning


def _nearest(level: str, supported: tuple[str, ...]) -> str:
    known = [lv for lv in supported if lv in LEVELS]
    if level in known or not known:
        return level
    rank = LEVELS.index(level)
    return min(known, key=lambda lv: (abs(LEVELS.index(lv) - rank), LEVELS.index(lv)))
