"""Tests of cliproxyd/formats/reasoning.py: the level/budget table, the model-name suffix and
fitting reasoning to a model's capabilities."""

from __future__ import annotations

import pytest

from cliproxyd.formats.ir import Reasoning
from cliproxyd.formats.reasoning import (
    budget_to_level,
    fit_reasoning,
    level_to_budget,
    split_model_suffix,
)

GEMINI_3_PRO = (("low", "high"), 128, 32768)
GEMINI_25_FLASH = ((), 0, 24576)
GPT_5_CODEX = (("low", "medium", "high"), None, None)
UNKNOWN = ((), None, None)


def test_table_and_suffix():
    assert level_to_budget("high") == 24576 and budget_to_level(24576) == "high"
    assert split_model_suffix("gemini-2.5-pro(high)") == ("gemini-2.5-pro", Reasoning(effort="high"))
    assert split_model_suffix("m(8192)") == ("m", Reasoning(budget=8192))
    assert split_model_suffix("m(fast)") == ("m(fast)", None)


@pytest.mark.parametrize("reasoning, model, fitted", [
    # A level the model lacks becomes the nearest one it has; a tie goes to the lower.
    (Reasoning(effort="medium"), GEMINI_3_PRO, Reasoning(effort="low")),
    (Reasoning(effort="xhigh", include_thoughts=True), GEMINI_3_PRO,
     Reasoning(effort="high", include_thoughts=True)),
    (Reasoning(effort="minimal"), GPT_5_CODEX, Reasoning(effort="low")),
    (Reasoning(effort="high"), GPT_5_CODEX, Reasoning(effort="high")),
    # Budget-only models get the level's budget, in range.
    (Reasoning(effort="max"), GEMINI_25_FLASH, Reasoning(budget=24576)),
    (Reasoning(effort="low"), GEMINI_25_FLASH, Reasoning(budget=1024)),
    # Budgets are kept in range (Claude Code's "ultrathink" asks for 31999) ...
    (Reasoning(budget=31999, include_thoughts=True), GEMINI_25_FLASH,
     Reasoning(budget=24576, include_thoughts=True)),
    (Reasoning(budget=50), GEMINI_3_PRO, Reasoning(budget=128)),
    # ... or become a level for a levels-only model.
    (Reasoning(budget=512), GPT_5_CODEX, Reasoning(effort="low")),
    # Off and dynamic are left alone; an unknown model too.
    (Reasoning(effort="none", budget=0), GEMINI_3_PRO, Reasoning(effort="none", budget=0)),
    (Reasoning(effort="auto", budget=-1), GEMINI_25_FLASH, Reasoning(effort="auto", budget=-1)),
    (Reasoning(effort="minimal"), UNKNOWN, Reasoning(effort="minimal")),
])
def test_fit_reasoning(reasoning, model, fitted):
    assert fit_reasoning(reasoning, *model) == fitted
