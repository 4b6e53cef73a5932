from __future__ import annotations

import pytest

from clearmaas.canonical import ReasoningConfig
from clearmaas.canonical.request import Effort
from clearmaas.providers.google.thinking import generation, thinking_config

from .recordings import gemini


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("gemini-3-pro-preview", (3, 0)),
        ("gemini-3.1-pro-preview", (3, 1)),
        ("models/gemini-2.5-flash-lite", (2, 5)),
        ("gemini-2.0-flash", (2, 0)),
        ("gemini-flash-latest", None),
    ],
)
def test_generation_from_the_model_id(upstream: str, expected: tuple[int, int] | None) -> None:
    assert generation(upstream) == expected


@pytest.mark.parametrize(
    ("upstream", "effort", "level"),
    [
        ("gemini-3-flash-preview", "minimal", "MINIMAL"),
        ("gemini-3-flash-preview", "low", "LOW"),
        ("gemini-3-flash-preview", "medium", "MEDIUM"),
        ("gemini-3-flash-preview", "high", "HIGH"),
        ("gemini-3-flash-preview", "max", "HIGH"),
        # Gemini 3 Pro takes only LOW and HIGH: a level it lacks rounds up, never down.
        ("gemini-3-pro-preview", "minimal", "LOW"),
        ("gemini-3-pro-preview", "medium", "HIGH"),
        ("gemini-3-pro-preview", "xhigh", "HIGH"),
        ("gemini-3.1-pro-preview", "medium", "MEDIUM"),
        ("gemini-3.1-pro-preview", "minimal", "LOW"),
    ],
)
def test_gemini_3_uses_thinking_level(upstream: str, effort: Effort, level: str) -> None:
    config = thinking_config(ReasoningConfig(effort=effort), gemini(upstream))
    assert config == {"includeThoughts": True, "thinkingLevel": level}


@pytest.mark.parametrize(
    ("upstream", "effort", "budget"),
    [
        ("gemini-2.5-flash", "minimal", 512),
        ("gemini-2.5-flash", "low", 1024),
        ("gemini-2.5-flash", "medium", 8192),
        ("gemini-2.5-flash", "high", 16384),
        ("gemini-2.5-flash", "max", 24576),  # clamped to Flash's ceiling
        ("gemini-2.5-pro", "max", 32768),
        ("gemini-2.5-flash-lite", "minimal", 512),
        ("gemini-flash-latest", "low", 1024),  # no version in the id: a budget, which every generation takes
    ],
)
def test_gemini_2_5_uses_thinking_budget(upstream: str, effort: Effort, budget: int) -> None:
    config = thinking_config(ReasoningConfig(effort=effort), gemini(upstream))
    assert config == {"includeThoughts": True, "thinkingBudget": budget}


def test_explicit_budget_is_clamped_to_the_model_range() -> None:
    assert thinking_config(ReasoningConfig(budget_tokens=50), gemini("gemini-2.5-pro")) == {
        "includeThoughts": True,
        "thinkingBudget": 128,
    }
    assert thinking_config(ReasoningConfig(budget_tokens=100_000), gemini("gemini-2.5-flash")) == {
        "includeThoughts": True,
        "thinkingBudget": 24576,
    }
    assert thinking_config(ReasoningConfig(budget_tokens=3000), gemini("gemini-2.5-flash")) == {
        "includeThoughts": True,
        "thinkingBudget": 3000,
    }


def test_budget_maps_to_a_level_on_gemini_3() -> None:
    flash = gemini("gemini-3-flash-preview")
    assert thinking_config(ReasoningConfig(budget_tokens=1024), flash) == {
        "includeThoughts": True,
        "thinkingLevel": "LOW",
    }
    assert thinking_config(ReasoningConfig(budget_tokens=8000), flash) == {
        "includeThoughts": True,
        "thinkingLevel": "MEDIUM",
    }
    assert thinking_config(ReasoningConfig(budget_tokens=32000), flash) == {
        "includeThoughts": True,
        "thinkingLevel": "HIGH",
    }


def test_disabling_thinking() -> None:
    off = ReasoningConfig(enabled=False)
    assert thinking_config(off, gemini("gemini-2.5-flash")) == {"thinkingBudget": 0}
    assert thinking_config(off, gemini("gemini-2.5-pro")) == {"thinkingBudget": 128}  # Pro cannot switch it off
    assert thinking_config(ReasoningConfig(effort="none"), gemini("gemini-2.5-flash-lite")) == {"thinkingBudget": 0}
    assert thinking_config(off, gemini("gemini-3-flash-preview")) == {"thinkingLevel": "MINIMAL"}
    assert thinking_config(off, gemini("gemini-3-pro-preview")) == {"thinkingLevel": "LOW"}


def test_adaptive_and_plain_requests() -> None:
    assert thinking_config(ReasoningConfig(adaptive=True), gemini("gemini-2.5-flash")) == {
        "includeThoughts": True,
        "thinkingBudget": -1,
    }
    assert thinking_config(ReasoningConfig(adaptive=True), gemini("gemini-3-pro-preview")) == {"includeThoughts": True}
    assert thinking_config(ReasoningConfig(), gemini("gemini-3-pro-preview")) == {"includeThoughts": True}
    assert thinking_config(ReasoningConfig(effort="high", include_thoughts=False), gemini("gemini-2.5-flash")) == {
        "includeThoughts": False,
        "thinkingBudget": 16384,
    }


def test_no_config_when_not_asked_or_not_a_thinking_model() -> None:
    assert thinking_config(None, gemini("gemini-2.5-flash")) is None
    assert thinking_config(ReasoningConfig(effort="high"), gemini("gemini-2.0-flash")) is None
    assert thinking_config(ReasoningConfig(effort="high"), gemini("gemini-2.5-flash-image", reasoning=False)) is None
