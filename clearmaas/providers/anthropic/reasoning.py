"""Turn the hub's reasoning request into Anthropic's `thinking` (and `output_config.effort`) for one model.

The mapping follows advanced__reasoning.md: budget models get `thinking: {type: "enabled", budget_tokens}`
with low 1280, medium 2048, high 4096; adaptive models (claude-opus-4.6 and later) get `thinking: {type:
"adaptive"}` and `output_config.effort`. Sampling and tool-choice consequences are applied in `request.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clearmaas.canonical import ReasoningConfig
from clearmaas.catalogue.entry import ModelEntry

__all__ = ["EFFORT_BUDGETS", "MIN_BUDGET", "ThinkingPlan", "plan_thinking"]

# Anthropic rejects budget_tokens below 1024. `minimal` takes that floor; `xhigh` and `max` (which the
# docs leave open) continue the doubling from `high`, so each step still thinks more than the one below.
MIN_BUDGET = 1024
EFFORT_BUDGETS: dict[str, int] = {
    "minimal": MIN_BUDGET,
    "low": 1280,
    "medium": 2048,
    "high": 4096,
    "xhigh": 8192,
    "max": 16384,
}
_DEFAULT_EFFORT = "medium"  # thinking asked for without an effort or a budget

# Hub effort -> output_config.effort. Adaptive models know low/medium/high/max; `xhigh` exists only on
# newer ones (claude-opus-4.7), so it is sent only to models whose catalogue entry has "effort_xhigh".
_ADAPTIVE_EFFORTS: dict[str, str] = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "max": "max"}


@dataclass(frozen=True, slots=True)
class ThinkingPlan:
    """What to send: `thinking` (None = omit the field), `effort` for output_config, and `max_tokens`,
    which a budget may have raised."""

    thinking: dict[str, Any] | None
    effort: str | None
    max_tokens: int

    @property
    def on(self) -> bool:
        return self.thinking is not None


def plan_thinking(reasoning: ReasoningConfig | None, *, model: ModelEntry, max_tokens: int) -> ThinkingPlan:
    """The thinking settings for `model`; a model without a thinking mode ignores the request."""
    off = ThinkingPlan(thinking=None, effort=None, max_tokens=max_tokens)
    if reasoning is None or model.reasoning not in ("budget", "adaptive"):
        return off
    # Thinking is off when omitted. Sending `{type: "disabled"}` instead is not safe everywhere: adaptive-only
    # models reject every type but "adaptive" (NousResearch/hermes-agent#11137).
    if not reasoning.enabled or reasoning.effort == "none":
        return off
    if model.reasoning == "adaptive":
        return ThinkingPlan(
            thinking={"type": "adaptive"}, effort=_adaptive_effort(reasoning, model), max_tokens=max_tokens
        )
    return _budget_plan(reasoning, model=model, max_tokens=max_tokens)


def _budget_plan(reasoning: ReasoningConfig, *, model: ModelEntry, max_tokens: int) -> ThinkingPlan:
    if reasoning.budget_tokens is not None:
        budget = max(MIN_BUDGET, reasoning.budget_tokens)
    else:
        budget = EFFORT_BUDGETS.get(reasoning.effort or _DEFAULT_EFFORT, EFFORT_BUDGETS[_DEFAULT_EFFORT])
    # budget_tokens must be below max_tokens. Give the budget room on top of the output the client asked
    # for, up to the model's ceiling; if the ceiling is too low, shrink the budget instead.
    raised = max_tokens
    if budget >= max_tokens:
        raised = max(max_tokens, min(max_tokens + budget, model.max_output_tokens))
    budget = min(budget, raised - 1)
    if budget < MIN_BUDGET:
        return ThinkingPlan(thinking=None, effort=None, max_tokens=max_tokens)  # too small to think at all
    return ThinkingPlan(thinking={"type": "enabled", "budget_tokens": budget}, effort=None, max_tokens=raised)


def _adaptive_effort(reasoning: ReasoningConfig, model: ModelEntry) -> str | None:
    effort = reasoning.effort
    if effort is None and reasoning.budget_tokens is not None:
        # Adaptive models take no budget (400 if sent); the nearest effort stands in for it.
        budget = reasoning.budget_tokens
        effort = "low" if budget < EFFORT_BUDGETS["medium"] else "medium" if budget < EFFORT_BUDGETS["high"] else "high"
    if effort is None:
        return None  # the API's default effort
    if effort == "xhigh":
        return "xhigh" if "effort_xhigh" in model.capabilities else "high"
    return _ADAPTIVE_EFFORTS.get(effort)
