from __future__ import annotations

import pytest

from clearmaas.billing.tools import TOOL_RULES, ToolRate, tool_rates_for
from clearmaas.catalogue.catalogue import Catalogue
from clearmaas.settings import BUILTIN_PROVIDERS, Settings


@pytest.mark.parametrize(
    ("provider", "model", "tool", "rate"),
    [
        # operations__billing-and-usage.md: web_search $10/1k everywhere; web_search_preview $10/1k on reasoning
        # models (o3*, o4*, gpt-5*), $25/1k on gpt-4o* / gpt-4.1*.
        ("openai", "openai/gpt-4o", "web_search", ToolRate(10_000)),
        ("openai", "openai/gpt-5", "web_search_preview", ToolRate(10_000)),
        ("openai", "openai/o3", "web_search_preview", ToolRate(10_000)),
        ("openai", "openai/o4-mini", "web_search_preview", ToolRate(10_000)),
        ("openai", "openai/gpt-4o-search-preview", "web_search_preview", ToolRate(25_000)),
        ("openai", "openai/gpt-4.1", "web_search_preview", ToolRate(25_000)),
        ("anthropic", "anthropic/claude-sonnet-4.6", "web_search", ToolRate(10_000)),
        ("anthropic", "anthropic/claude-sonnet-4.6", "web_fetch", ToolRate(0)),
        ("google", "google/gemini-2.5-pro", "web_search", ToolRate(35_000, per="request")),
        ("google", "google/gemini-3-pro-preview", "web_search", ToolRate(14_000)),
        ("grok", "grok/grok-4-fast-reasoning", "x_search", ToolRate(5_000)),
    ],
)
def test_rates(provider: str, model: str, tool: str, rate: ToolRate) -> None:
    assert tool_rates_for(provider, model)[tool] == rate


def test_providers_without_per_call_tools_have_no_rates() -> None:
    assert dict(tool_rates_for("deepseek", "deepseek/deepseek-chat")) == {}


def test_every_rule_names_a_builtin_provider_and_a_model_glob_that_matches_the_catalogue() -> None:
    catalogue = Catalogue.load(Settings())
    for rule in TOOL_RULES:
        assert rule.provider in BUILTIN_PROVIDERS
        assert any(
            rule.provider == e.provider and tool_rates_for(e.provider, e.id).get(rule.tool) for e in catalogue
        ) or (rule.rate.micros == 0), rule


def test_rate_costs() -> None:
    assert ToolRate(10_000).cost(3) == 30_000
    assert ToolRate(35_000, per="request").cost(3) == 35_000
    assert ToolRate(35_000, per="request").cost(0) == 0
