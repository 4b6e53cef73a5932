"""encode_response: the body the OpenAI SDK parses, checked field by field and against a real recording."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from openai.types.chat import ChatCompletion

from clearmaas.canonical import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Part,
    StopReason,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)
from clearmaas.surfaces.openai_chat import SURFACE, encode_response

FIXTURES = Path(__file__).parents[2] / "fixtures" / "openai"
REQUEST = ChatRequest(model="openai/gpt-4o-mini", messages=[], origin="openai_chat")


def parse(response: ChatResponse) -> ChatCompletion:
    body = encode_response(response, REQUEST)
    # Through JSON, as the client gets it; `model_validate` raises on anything the SDK cannot parse.
    return ChatCompletion.model_validate(orjson.loads(orjson.dumps(body)))


def test_text_response_with_usage_in_openai_convention() -> None:
    usage = Usage(input_tokens=10, cache_read_tokens=90, cache_write_tokens=5, output_tokens=40, reasoning_tokens=25)
    completion = parse(
        ChatResponse(id="chatcmpl-abc", model="gpt-4o-mini-2024-07-18", parts=[TextPart("Hel"), TextPart("lo")],
                     usage=usage, created=1727347609)
    )
    assert completion.id == "chatcmpl-abc"
    assert completion.object == "chat.completion"
    assert completion.created == 1727347609
    assert completion.model == "gpt-4o-mini-2024-07-18"  # what the upstream returned, not the requested id
    [choice] = completion.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content == "Hello"
    assert choice.message.refusal is None and choice.message.tool_calls is None
    assert "reasoning_content" not in (choice.message.model_extra or {})
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 105  # input + cache reads + cache writes
    assert completion.usage.completion_tokens == 40
    assert completion.usage.total_tokens == 145
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 90
    assert completion.usage.prompt_tokens_details.cache_write_tokens == 5
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 25


def test_tool_calls_only_have_null_content_and_tool_calls_finish() -> None:
    completion = parse(
        ChatResponse(
            id="msg_01X",
            model="claude-sonnet-4-6",
            parts=[
                ToolCallPart(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCallPart(id="toolu_2", name="now", arguments=""),
            ],
            stop_reason="tool_use",
        )
    )
    assert completion.id == "chatcmpl-msg_01X"
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("toolu_1", "function", "get_weather", '{"city":"Paris"}'),
        ("toolu_2", "function", "now", ""),
    ]


def test_reasoning_comes_back_as_reasoning_content_beside_the_text() -> None:
    completion = parse(
        ChatResponse(
            id="cac7192e-e619",
            model="deepseek-reasoner",
            parts=[ThinkingPart("We need", signature="sig", origin="anthropic"), ThinkingPart("", redacted="opaque"),
                   TextPart("Answer"), ImagePart(url="https://example.com/x.png")],
        )
    )
    message = completion.choices[0].message
    assert message.content == "Answer"
    assert (message.model_extra or {})["reasoning_content"] == "We need"
    assert "sig" not in completion.model_dump_json()  # signatures never leak to chat clients


@pytest.mark.parametrize(
    ("stop_reason", "has_tools", "expected"),
    [
        ("end_turn", False, "stop"),
        ("stop_sequence", False, "stop"),
        ("pause_turn", False, "stop"),
        ("max_tokens", False, "length"),
        ("tool_use", True, "tool_calls"),
        ("content_filter", False, "content_filter"),
        ("end_turn", True, "tool_calls"),  # Gemini-style "stop" beside tool calls
        ("max_tokens", True, "length"),  # a truncated call stays visibly truncated
    ],
)
def test_finish_reasons(stop_reason: StopReason, has_tools: bool, expected: str) -> None:
    parts: list[Part] = [ToolCallPart(id="c", name="f", arguments="{}")] if has_tools else [TextPart("x")]
    completion = parse(ChatResponse(id="x", model="m", parts=parts, stop_reason=stop_reason))
    assert completion.choices[0].finish_reason == expected


def test_empty_response_defaults() -> None:
    body = SURFACE.encode_response(ChatResponse(id="", model="", parts=[]), REQUEST)
    completion = ChatCompletion.model_validate(body)
    assert completion.id.startswith("chatcmpl-") and len(completion.id) > len("chatcmpl-")
    assert completion.model == "openai/gpt-4o-mini"  # falls back to the requested model
    assert completion.created > 1_700_000_000
    assert completion.choices[0].message.content == ""
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}  # no cache_write key when zero


def test_matches_a_recorded_openai_response() -> None:
    recorded = orjson.loads((FIXTURES / "openai-text.json").read_bytes())
    wire_usage = recorded["usage"]
    response = ChatResponse(
        id=recorded["id"],
        model=recorded["model"],
        parts=[TextPart(recorded["choices"][0]["message"]["content"])],
        usage=Usage(input_tokens=wire_usage["prompt_tokens"], output_tokens=wire_usage["completion_tokens"]),
        created=recorded["created"],
    )
    body = encode_response(response, REQUEST)
    for key in ("id", "object", "created", "model"):
        assert body[key] == recorded[key]
    ours, theirs = body["choices"][0], recorded["choices"][0]
    assert ours["finish_reason"] == theirs["finish_reason"] and ours["index"] == theirs["index"]
    assert ours["message"] == {k: theirs["message"][k] for k in ("role", "content", "refusal")}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert body["usage"][key] == wire_usage[key]
    assert set(body) <= set(recorded)  # no field a real OpenAI response lacks
