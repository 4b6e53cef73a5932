"""The canonical reasoning knob → Gemini `generationConfig.thinkingConfig`, per model generation.

Gemini 3 and later take `thinkingLevel`; Gemini 2.5 takes `thinkingBudget` (tokens); sending both is a 400,
and models before 2.5 do not think (https://ai.google.dev/gemini-api/docs/thinking). The generation is read
from the upstream id (`gemini-3-pro-preview` → 3.0, `gemini-2.5-flash` → 2.5); an id without a version
(`gemini-flash-latest`) gets a budget, which Gemini 3 still accepts for backward compatibility. Only models
the catalogue marks as reasoning (`ModelEntry.reasoning` set) get a thinking config at all.
"""

from __future__ import annotations

import re

from clearmaas.canonical.request import Effort, ReasoningConfig
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.google.wire import ThinkingConfig

__all__ = ["generation", "thinking_config"]

_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?")
_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
# Effort → level. xhigh/max stop at HIGH: the highest level every Gemini 3 model accepts.
_EFFORT_LEVEL: dict[Effort, str] = {
    "none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM",
    "high": "HIGH", "xhigh": "HIGH", "max": "HIGH",
}
# Effort → budget tokens for Gemini 2.5 (the low/medium/high buckets of higress-group/higress#3507).
_EFFORT_BUDGET: dict[Effort, int] = {
    "minimal": 512, "low": 1024, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32768,
}


def generation(upstream: str) -> tuple[int, int] | None:
    """(major, minor) of a Gemini model id, or None when the id carries no version."""
    found = _VERSION.search(upstream.lower())
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2) or 0)


def thinking_config(reasoning: ReasoningConfig | None, model: ModelEntry) -> ThinkingConfig | None:
    """The `thinkingConfig` for `reasoning` on `model`, or None to send none."""
    if reasoning is None or model.reasoning is None:
        return None
    version = generation(model.upstream)
    if version is not None and version < (2, 5):
        return None
    if version is not None and version >= (3, 0):
        return _level_config(reasoning, model.upstream.lower())
    return _budget_config(reasoning, model.upstream.lower())


def _include(reasoning: ReasoningConfig) -> bool:
    return True if reasoning.include_thoughts is None else reasoning.include_thoughts


def _level_config(reasoning: ReasoningConfig, upstream: str) -> ThinkingConfig:
    allowed = _allowed_levels(upstream)
    if not reasoning.enabled or reasoning.effort == "none":
        # Gemini 3 cannot switch thinking off; the lowest level the model takes is the closest thing
        # (MINIMAL on Flash, LOW on Pro). No thoughts are asked for.
        return {"thinkingLevel": _snap("MINIMAL", allowed)}
    config: ThinkingConfig = {"includeThoughts": _include(reasoning)}
    if reasoning.adaptive:
        return config  # no level: the model's own dynamic default
    if reasoning.effort is not None:
        config["thinkingLevel"] = _snap(_EFFORT_LEVEL[reasoning.effort], allowed)
    elif reasoning.budget_tokens is not None:
        config["thinkingLevel"] = _snap(_budget_level(reasoning.budget_tokens), allowed)
    return config


def _allowed_levels(upstream: str) -> tuple[str, ...]:
    # Gemini 3 Flash takes all four; Gemini 3 Pro only LOW and HIGH; 3.1 Pro adds MEDIUM
    # (https://ai.google.dev/gemini-api/docs/thinking#thinking-levels).
    if "flash" in upstream:
        return _LEVELS
    if re.search(r"gemini-3-pro", upstream):
        return ("LOW", "HIGH")
    return ("LOW", "MEDIUM", "HIGH")


def _snap(level: str, allowed: tuple[str, ...]) -> str:
    """`level` if the model takes it, else the next one up (never less thinking than asked), else the top."""
    wanted = _LEVELS.index(level)
    for candidate in _LEVELS[wanted:]:
        if candidate in allowed:
            return candidate
    return allowed[-1]


def _budget_level(budget: int) -> str:
    if budget <= 512:
        return "MINIMAL"
    if budget <= 2048:
        return "LOW"
    if budget <= 12288:
        return "MEDIUM"
    return "HIGH"


def _budget_range(upstream: str) -> tuple[int, int, bool]:
    """(min, max, can_disable) of `thinkingBudget`: 2.5 Pro 128-32768 and always on; 2.5 Flash-Lite
    512-24576; 2.5 Flash 1-24576 (https://ai.google.dev/gemini-api/docs/thinking#set-budget)."""
    if "pro" in upstream:
        return 128, 32768, False
    if "flash-lite" in upstream:
        return 512, 24576, True
    return 1, 24576, True


def _budget_config(reasoning: ReasoningConfig, upstream: str) -> ThinkingConfig:
    low, high, can_disable = _budget_range(upstream)
    if not reasoning.enabled or reasoning.effort == "none" or reasoning.budget_tokens == 0:
        return {"thinkingBudget": 0 if can_disable else low}
    config: ThinkingConfig = {"includeThoughts": _include(reasoning)}
    if reasoning.adaptive:
        config["thinkingBudget"] = -1  # dynamic thinking
    elif reasoning.budget_tokens is not None:
        config["thinkingBudget"] = min(max(reasoning.budget_tokens, low), high)
    elif reasoning.effort is not None:
        config["thinkingBudget"] = min(max(_EFFORT_BUDGET[reasoning.effort], low), high)
    return config
