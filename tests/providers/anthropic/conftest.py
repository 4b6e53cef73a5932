"""Catalogue entries shared by the Anthropic adapter tests."""

from __future__ import annotations

import pytest

from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.base import Deployment


@pytest.fixture
def sonnet() -> ModelEntry:
    """A budget-thinking model."""
    return ModelEntry(
        id="anthropic/claude-sonnet-4.5",
        provider="anthropic",
        upstream="claude-sonnet-4-5-20250929",
        context_length=200_000,
        max_output_tokens=64_000,
        endpoints=("openai", "anthropic"),
        reasoning="budget",
    )


@pytest.fixture
def opus() -> ModelEntry:
    """An adaptive-thinking model."""
    return ModelEntry(
        id="anthropic/claude-opus-4.6",
        provider="anthropic",
        upstream="claude-opus-4-6",
        context_length=1_000_000,
        max_output_tokens=128_000,
        endpoints=("openai", "anthropic"),
        reasoning="adaptive",
    )


@pytest.fixture
def deployment() -> Deployment:
    return Deployment(base_url="https://api.anthropic.example/", api_key="sk-ant-test-key")
