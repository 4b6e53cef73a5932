"""Reasoning settings for Anthropic: effort budgets, adaptive thinking and what thinking forbids."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from clearmaas.canonical import (
    ChatRequest,
    Message,
    ReasoningConfig,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolChoice,
    ToolDefinition,
    ToolResultPart,
)
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.anthropic import encode_request
from clearmaas.providers.base import Deployment

HI = [Message(role="user", parts=[TextPart("hi")])]


def encode(model: ModelEntry, reasoning: ReasoningConfig | None, **fields: Any) -> dict[str, Any]:
    fields.setdefault("messages", HI)
    request = ChatRequest(model=model.id, origin="openai_chat", reasoning=reasoning, **fields)
    deployment = Deployment(base_url="https://api.anthropic.example", api_key="k")
    body: dict[str, Any] = orjson.loads(encode_request(request, model=model, deployment=deployment).body)
    return body


@pytest.mark.parametrize(
    ("effort", "budget"),
    [("low", 1280), ("medium", 2048), ("high", 4096), ("minimal", 1024), ("xhigh", 8192), ("max", 16384)],
)
def test_effort_maps_to_a_budget(sonnet: ModelEntry, effort: Any, budget: int) -> None:
    body = encode(sonnet, ReasoningConfig(effort=effort))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == 64_000
    assert "output_config" not in body


def test_explicit_budget_is_used_with_the_api_floor(sonnet: ModelEntry) -> None:
    assert encode(sonnet, ReasoningConfig(budget_tokens=3000, effort="low"))["thinking"]["budget_tokens"] == 3000
    assert encode(sonnet, ReasoningConfig(budget_tokens=100))["thinking"]["budget_tokens"] == 1024
    assert encode(sonnet, ReasoningConfig())["thinking"]["budget_tokens"] == 2048  # on, no effort: medium


def test_max_tokens_grows_to_hold_the_budget(sonnet: ModelEntry) -> None:
    body = encode(sonnet, ReasoningConfig(effort="high"), max_tokens=1000)
    assert body["thinking"]["budget_tokens"] == 4096
    assert body["max_tokens"] == 5096  # the client's 1000 visible tokens on top of the budget
    assert body["thinking"]["budget_tokens"] < body["max_tokens"]


def test_budget_shrinks_under_a_low_model_ceiling(sonnet: ModelEntry) -> None:
    small = replace(sonnet, max_output_tokens=3000)
    body = encode(small, ReasoningConfig(effort="high"), max_tokens=2000)
    assert body["max_tokens"] == 3000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2999}
    tiny = replace(sonnet, max_output_tokens=1024)
    body = encode(tiny, ReasoningConfig(effort="low"), max_tokens=500)
    assert "thinking" not in body and body["max_tokens"] == 500  # no room for the 1024 minimum


@pytest.mark.parametrize("reasoning", [ReasoningConfig(enabled=False, effort="high"), ReasoningConfig(effort="none")])
def test_thinking_off(sonnet: ModelEntry, opus: ModelEntry, reasoning: ReasoningConfig) -> None:
    assert "thinking" not in encode(sonnet, reasoning)
    body = encode(opus, reasoning)
    assert "thinking" not in body and "output_config" not in body


def test_models_without_thinking_ignore_reasoning(sonnet: ModelEntry) -> None:
    haiku3 = replace(sonnet, reasoning=None)
    assert "thinking" not in encode(haiku3, ReasoningConfig(effort="high"))


@pytest.mark.parametrize(
    ("reasoning", "effort"),
    [
        (ReasoningConfig(effort="low"), "low"),
        (ReasoningConfig(effort="minimal"), "low"),
        (ReasoningConfig(effort="medium"), "medium"),
        (ReasoningConfig(effort="high"), "high"),
        (ReasoningConfig(effort="max"), "max"),
        (ReasoningConfig(effort="xhigh"), "high"),
        (ReasoningConfig(budget_tokens=1500), "low"),
        (ReasoningConfig(budget_tokens=3000), "medium"),
        (ReasoningConfig(budget_tokens=32000), "high"),
        (ReasoningConfig(adaptive=True), None),
    ],
)
def test_adaptive_models_get_adaptive_thinking_and_an_effort(
    opus: ModelEntry, reasoning: ReasoningConfig, effort: str | None
) -> None:
    body = encode(opus, reasoning, max_tokens=2000)
    assert body["thinking"] == {"type": "adaptive"}
    assert body.get("output_config") == ({"effort": effort} if effort else None)
    assert body["max_tokens"] == 2000  # adaptive thinking has no budget to make room for


def test_xhigh_effort_only_where_the_model_has_it(opus: ModelEntry) -> None:
    opus47 = replace(opus, upstream="claude-opus-4-7", capabilities=frozenset({"effort_xhigh"}))
    assert encode(opus47, ReasoningConfig(effort="xhigh"))["output_config"] == {"effort": "xhigh"}


def test_thinking_drops_temperature_and_top_k_and_narrows_top_p(sonnet: ModelEntry) -> None:
    body = encode(sonnet, ReasoningConfig(effort="low"), temperature=0.3, top_k=20, top_p=0.5)
    assert not {"temperature", "top_k"} & body.keys()
    assert body["top_p"] == 0.95
    assert encode(sonnet, None, temperature=0.3, top_k=20)["temperature"] == 0.3


@pytest.mark.parametrize("choice", [ToolChoice("required"), ToolChoice("tool", "f")])
def test_forced_tool_choice_becomes_auto_with_thinking(
    sonnet: ModelEntry, opus: ModelEntry, choice: ToolChoice
) -> None:
    tools = [ToolDefinition(name="f")]
    for model in (sonnet, opus):
        body = encode(model, ReasoningConfig(effort="high"), tools=tools, tool_choice=choice, parallel_tool_calls=False)
        assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert encode(sonnet, ReasoningConfig(effort="high"), tools=tools, tool_choice=ToolChoice("none"))[
        "tool_choice"
    ] == {"type": "none"}


def _tool_loop(*assistant_parts: Any) -> list[Message]:
    return [
        Message(role="user", parts=[TextPart("run it")]),
        Message(role="assistant", parts=[*assistant_parts, ToolCallPart(id="t1", name="f", arguments="{}")]),
        Message(role="user", parts=[ToolResultPart(tool_call_id="t1", content=[TextPart("ok")])]),
    ]


def test_thinking_is_turned_off_when_the_tool_turn_has_no_anthropic_thinking(
    sonnet: ModelEntry, opus: ModelEntry
) -> None:
    foreign = _tool_loop(ThinkingPart(text="deepseek thoughts", origin="deepseek"))
    tools = [ToolDefinition(name="f")]
    for model in (sonnet, opus):
        body = encode(model, ReasoningConfig(effort="high"), messages=foreign, tools=tools, temperature=0.4)
        assert "thinking" not in body and "output_config" not in body
        assert body["temperature"] == 0.4  # sampling is allowed again without thinking
    signed = _tool_loop(ThinkingPart(text="mine", signature="sig", origin="anthropic"))
    assert encode(sonnet, ReasoningConfig(effort="high"), messages=signed, tools=tools)["thinking"]["type"] == "enabled"
