"""Token usage in one convention that every surface and provider maps to and from.

Buckets are disjoint, so each is priced once: `input_tokens` excludes cache reads and cache writes (Anthropic's
convention); `output_tokens` includes reasoning, and `reasoning_tokens` is the part of it that was reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Usage"]


@dataclass(slots=True)
class Usage:
    """Token counts of one request, in disjoint buckets."""

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    # Billable built-in tool calls, e.g. {"web_search": 2}.
    server_tool_calls: dict[str, int] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int:
        """All input tokens, cached or not: OpenAI's `prompt_tokens`, Gemini's `promptTokenCount`."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def is_empty(self) -> bool:
        return self.prompt_tokens == 0 and self.output_tokens == 0
