"""What built-in (server-side) tool calls cost, as data: the providers' published per-call rates, which ClearMaas
passes through with no markup (operations__billing-and-usage.md, "Built-in tool charges").

The names are those the adapters count in `Usage.server_tool_calls` (e.g. "web_search"). A tool without a rule
here costs nothing (Anthropic's web_fetch is free; code execution is billed by container time, not per call),
and an unknown one is logged once so the table can be completed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Literal

__all__ = ["NO_TOOL_RATES", "TOOL_RULES", "ToolRate", "ToolRule", "tool_rates_for"]

log = logging.getLogger("clearmaas.billing")


@dataclass(frozen=True, slots=True)
class ToolRate:
    """Micro-dollars per call, or per request that made at least one call (`per="request"`)."""

    micros: int
    per: Literal["call", "request"] = "call"

    def cost(self, calls: int) -> int:
        if calls <= 0:
            return 0
        return self.micros if self.per == "request" else self.micros * calls


@dataclass(frozen=True, slots=True)
class ToolRule:
    """One row of the table: the first rule matching (provider, model id glob, tool) gives the rate."""

    provider: str
    models: str  # fnmatch glob over the ClearMaas model id, "*" for every model
    tool: str
    rate: ToolRate


# $10 per 1,000 calls = $0.01 = 10_000 micro-dollars per call. Order matters: specific globs first.
TOOL_RULES: tuple[ToolRule, ...] = (
    # OpenAI pricing page, "Built-in tools": web_search $10/1k (all models); web_search_preview $10/1k on
    # reasoning models (o-series, gpt-5), $25/1k on gpt-4o / gpt-4.1 (operations__billing-and-usage.md).
    ToolRule("openai", "*", "web_search", ToolRate(10_000)),
    ToolRule("openai", "openai/o[0-9]*", "web_search_preview", ToolRate(10_000)),
    ToolRule("openai", "openai/gpt-5*", "web_search_preview", ToolRate(10_000)),
    ToolRule("openai", "*", "web_search_preview", ToolRate(25_000)),
    # Anthropic pricing, "Web search tool": $10 per 1,000 searches; web fetch has no charge beyond tokens.
    ToolRule("anthropic", "*", "web_search", ToolRate(10_000)),
    ToolRule("anthropic", "*", "web_fetch", ToolRate(0)),
    # Gemini API pricing, "Grounding with Google Search": Gemini 2.x bills $35 per 1,000 grounded prompts
    # (one charge per request however many queries it ran); Gemini 3 bills $14 per 1,000 search queries.
    ToolRule("google", "google/gemini-2*", "web_search", ToolRate(35_000, per="request")),
    ToolRule("google", "*", "web_search", ToolRate(14_000)),
    # docs.x.ai pricing, "Tool Invocation Costs": $5 per 1,000 successful calls each.
    ToolRule("grok", "*", "web_search", ToolRate(5_000)),
    ToolRule("grok", "*", "x_search", ToolRate(5_000)),
    ToolRule("grok", "*", "code_execution", ToolRate(5_000)),
    ToolRule("grok", "*", "code_interpreter", ToolRate(5_000)),
)

NO_TOOL_RATES: Mapping[str, ToolRate] = MappingProxyType({})


class _UnknownToolWarning:
    """Logs each (provider, tool) without a rate once per process, not once per request."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, provider: str, tool: str) -> None:
        if (provider, tool) not in self._seen:
            self._seen.add((provider, tool))
            log.warning("no per-call rate for built-in tool %r of provider %r: billed at 0", tool, provider)


warn_unknown_tool = _UnknownToolWarning()


def tool_rates_for(provider: str, model_id: str, *, rules: tuple[ToolRule, ...] = TOOL_RULES) -> Mapping[str, ToolRate]:
    """Tool name -> rate for one model: for each tool, the first rule of its provider whose glob matches."""
    rates: dict[str, ToolRate] = {}
    for rule in rules:
        if rule.provider == provider and rule.tool not in rates and fnmatchcase(model_id, rule.models):
            rates[rule.tool] = rule.rate
    return MappingProxyType(rates)
