"""What the gateway knows about one model: where it lives upstream, its limits, its abilities, its price."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ModelEntry", "Prices", "ReasoningMode"]

# How a model takes a reasoning effort (advanced__reasoning.md):
#   effort   - a `reasoning_effort` field (OpenAI o-series and gpt-5, Grok 3 mini, DeepSeek V4)
#   budget   - Anthropic `thinking.budget_tokens`
#   adaptive - Anthropic `thinking: {type: adaptive}` + `output_config.effort` (claude-opus-4.6 and later)
#   gemini   - Gemini `thinkingConfig`
#   toggle   - a switch only (Qwen `enable_thinking`, DeepSeek `thinking.type`)
#   always   - reasons by design, the effort is a no-op (deepseek-reasoner, grok-4-fast-reasoning)
ReasoningMode = Literal["effort", "budget", "adaptive", "gemini", "toggle", "always"]


@dataclass(frozen=True, slots=True)
class Prices:
    """Integer micro-dollars per million tokens ($3.00 / M = 3_000_000)."""

    input: int
    cached_input: int
    cache_write: int
    output: int


@dataclass(frozen=True, slots=True)
class ModelEntry:
    id: str  # ClearMaas id, "anthropic/claude-sonnet-4.6"
    provider: str  # provider id, "anthropic"
    upstream: str  # the provider's own id, "claude-sonnet-4-6"
    context_length: int
    max_output_tokens: int
    endpoints: tuple[str, ...] = ("openai",)  # supported_endpoint_types
    reasoning: ReasoningMode | None = None
    prices: Prices | None = None
    quality: int = 50  # 0-100, for the `quality` router strategy
    created: int = 0
    # Per-model capability flags read by adapters, e.g. "no_temperature", "json_schema", "vision".
    capabilities: frozenset[str] = frozenset()
