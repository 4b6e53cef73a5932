"""The e2e matrix's data: one `Case` per chat provider (the eight built-ins and the harness's custom
`local` upstream), the tools the tests declare, and the token counts the fake upstream's formula gives.

Pure data and small helpers; the servers and clients are fixtures in `conftest.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes import FAKE_KEYS
from tests.fakes.scenarios import ANSWER_TEXT, INPUT_OVERHEAD, REASONING_TEXT

__all__ = [
    "ANSWER_TOKENS",
    "ANTHROPIC_TOOLS",
    "CASES",
    "CASE_IDS",
    "MAX_BODY_BYTES",
    "OPENAI_TOOLS",
    "REASONING_CASES",
    "REASONING_TOKENS",
    "TOOL_ARGS",
    "WEATHER_SCHEMA",
    "Case",
    "assert_no_leak",
    "input_tokens",
    "upstream_requests",
]

# The session gateway's body limit: small enough that a test can cross it cheaply, large enough for Claude Code's
# requests (tens of KB).
MAX_BODY_BYTES = 512 * 1024
ANSWER_TOKENS = len(ANSWER_TEXT.split())
REASONING_TOKENS = len(REASONING_TEXT.split())

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
}
# What the fake calls the first declared tool with (scenarios.example_arguments, first call).
TOOL_ARGS = {"city": "Paris", "unit": "celsius"}
OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": WEATHER_SCHEMA}},
]
ANTHROPIC_TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER_SCHEMA}]


@dataclass(frozen=True, slots=True)
class Case:
    """One provider as the matrix drives it."""

    provider: str  # gateway provider id
    model: str  # ClearMaas model id
    upstream: str  # the id the provider must receive
    fake: str  # the fake upstream's route that serves it (the custom upstream reuses OpenAI's)
    reasoning_model: str | None = None  # a model that reasons, when the provider has one
    reasoning_upstream: str | None = None
    reasoning_text: bool = True  # the provider returns its reasoning as text (OpenAI hides it)

    @property
    def key(self) -> str:
        return FAKE_KEYS[self.fake]

    def auth_value(self, headers: Mapping[str, str]) -> str | None:
        """The credential the upstream request carried, in the provider's own header."""
        if self.fake == "google":
            return headers.get("x-goog-api-key")
        if self.fake == "anthropic":
            return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ") or None
        return headers.get("authorization", "").removeprefix("Bearer ") or None


CASES: tuple[Case, ...] = (
    Case("openai", "openai/gpt-4o-mini", "gpt-4o-mini", "openai", "openai/o4-mini", "o4-mini", reasoning_text=False),
    Case("anthropic", "anthropic/claude-sonnet-4.6", "claude-sonnet-4-6", "anthropic",
         "anthropic/claude-sonnet-4.6", "claude-sonnet-4-6"),
    Case("google", "google/gemini-2.5-flash", "gemini-2.5-flash", "google", "google/gemini-2.5-flash",
         "gemini-2.5-flash"),
    Case("deepseek", "deepseek/deepseek-chat", "deepseek-flash", "deepseek", "deepseek/deepseek-reasoner",
         "deepseek-flash"),
    Case("grok", "grok/grok-4-fast-reasoning", "grok-4-fast-reasoning", "grok", "grok/grok-3-mini", "grok-3-mini"),
    Case("qwen", "qwen/qwen3-max", "qwen3-max", "qwen", "qwen/qwen3-max", "qwen3-max"),
    Case("kimi", "kimi/kimi-k2.6", "kimi-k2.6", "kimi", "kimi/kimi-k2.6", "kimi-k2.6"),
    Case("minimax", "minimax/minimax-m2.7", "MiniMax-M2.7", "minimax", "minimax/minimax-m2.7", "MiniMax-M2.7"),
    Case("local", "local/llama-3.1-8b", "llama-3.1-8b-instruct", "openai"),
)
CASE_IDS = [c.provider for c in CASES]
REASONING_CASES = tuple(c for c in CASES if c.reasoning_model is not None)


def input_tokens(*texts: str) -> int:
    """The fake's input count for a prompt made of these texts."""
    return sum(len(t.split()) for t in texts) + INPUT_OVERHEAD


def upstream_requests(recorded: Iterable[dict[str, Any]], case: Case) -> list[dict[str, Any]]:
    return [r for r in recorded if r["provider"] == case.fake]


_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")


def assert_no_leak(text: str, *, fake_url: str) -> None:
    """Nothing the client sees may name the upstream's address, a provider key or a Python traceback."""
    port = fake_url.rsplit(":", 1)[1]
    assert fake_url not in text
    assert f"127.0.0.1:{port}" not in text and f"localhost:{port}" not in text
    for key in FAKE_KEYS.values():
        assert key not in text
        assert key[:12] not in text
    assert _TRACEBACK.search(text) is None, text
