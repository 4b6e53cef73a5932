"""`decode_response` and `map_usage` beyond the recordings, and a round trip through the wire format."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearmaas.canonical import ChatResponse, Part, StopReason, TextPart, ThinkingPart, ToolCallPart, Usage
from clearmaas.errors import UpstreamProtocolError
from clearmaas.providers.openai_chat.response import ThinkTagSplitter, decode_response, map_usage
from clearmaas.providers.profiles import DEEPSEEK, GENERIC, GROK, KIMI, MINIMAX, OPENAI, PROFILES, QWEN, Profile


def _completion(message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage,
        }
    )


def test_kimi_tool_call_ids_are_kept_exactly() -> None:
    message = {
        "content": "",
        "reasoning_content": "Two cities.",
        "tool_calls": [
            {
                "id": "functions.get_weather:0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "functions.get_weather:1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    }
    response = decode_response(_completion(message, "tool_calls"), profile=KIMI)
    assert response.parts == [
        ThinkingPart(text="Two cities.", origin="kimi"),
        ToolCallPart(id="functions.get_weather:0", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCallPart(id="functions.get_weather:1", name="get_weather", arguments='{"city": "Rome"}'),
    ]
    assert response.stop_reason == "tool_use"


def test_minimax_think_tags_in_content_are_split_out() -> None:
    message: dict[str, Any] = {
        "content": "<think>\nGreeting.\n</think>\n\nHello!",
        "tool_calls": [{"id": "call_function_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    response = decode_response(_completion(message, "tool_calls"), profile=MINIMAX)
    assert response.parts == [
        ThinkingPart(text="\nGreeting.\n", origin="minimax"),
        TextPart(text="Hello!"),
        ToolCallPart(id="call_function_1", name="f", arguments="{}"),
    ]
    # Other providers' content is taken literally.
    assert decode_response(_completion(message), profile=OPENAI).parts[0] == TextPart(text=message["content"])


def test_minimax_reasoning_details() -> None:
    message = {
        "content": "Hi!",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "id": "reasoning-text-1",
                "format": "MiniMax-response-v1",
                "index": 0,
                "text": "Be nice.",
            }
        ],
    }
    response = decode_response(_completion(message), profile=MINIMAX)
    assert response.parts == [ThinkingPart(text="Be nice.", origin="minimax"), TextPart(text="Hi!")]


def test_generic_servers_use_the_reasoning_field() -> None:
    response = decode_response(_completion({"content": "4", "reasoning": "2+2"}), profile=GENERIC)
    assert response.parts == [ThinkingPart(text="2+2", origin="openai_compatible"), TextPart(text="4")]


@pytest.mark.parametrize(
    ("finish", "profile", "expected"),
    [
        ("stop", OPENAI, "end_turn"),
        ("length", OPENAI, "max_tokens"),
        ("tool_calls", OPENAI, "tool_use"),
        ("function_call", OPENAI, "tool_use"),
        ("content_filter", OPENAI, "content_filter"),
        (None, OPENAI, "end_turn"),
        ("something_new", OPENAI, "end_turn"),
        ("insufficient_system_resource", DEEPSEEK, "max_tokens"),
    ],
)
def test_finish_reasons(finish: str | None, profile: Profile, expected: str) -> None:
    assert decode_response(_completion({"content": "x"}, finish), profile=profile).stop_reason == expected


def test_refusal_is_text_and_empty_answers_are_empty() -> None:
    refused = decode_response(_completion({"content": None, "refusal": "I can't help."}, "stop"), profile=OPENAI)
    assert refused.parts == [TextPart(text="I can't help.")]
    assert decode_response(orjson.dumps({"id": "x", "choices": []}), profile=OPENAI).parts == []


def test_bodies_that_are_not_completions() -> None:
    with pytest.raises(UpstreamProtocolError):
        decode_response(b"<html>", profile=OPENAI)
    with pytest.raises(UpstreamProtocolError):
        decode_response(b"[1, 2]", profile=OPENAI)


def test_usage_mapping_table() -> None:
    assert map_usage(None, OPENAI) == Usage()
    qwen = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 600, "cache_creation_input_tokens": 300},
    }
    assert map_usage(qwen, QWEN) == Usage(
        input_tokens=100, cache_read_tokens=600, cache_write_tokens=300, output_tokens=50
    )
    kimi = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "cached_tokens": 64}
    assert map_usage(kimi, KIMI) == Usage(input_tokens=36, cache_read_tokens=64, output_tokens=5)
    deepseek = {
        "prompt_tokens": 50,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 32,
        "prompt_cache_miss_tokens": 18,
    }
    assert map_usage(deepseek, DEEPSEEK) == Usage(input_tokens=18, cache_read_tokens=32, output_tokens=5)
    grok = {"prompt_tokens": 10, "completion_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 7}}
    assert map_usage(grok, GROK) == Usage(input_tokens=10, output_tokens=10, reasoning_tokens=7)
    assert map_usage(grok, OPENAI) == Usage(input_tokens=10, output_tokens=3, reasoning_tokens=3)


def test_think_splitter_keeps_unmatched_and_literal_text() -> None:
    splitter = ThinkTagSplitter()
    out = (
        splitter.feed("a</think>b<th")
        + splitter.feed("ink>c")
        + splitter.feed("</thi")
        + splitter.feed("nk>  d<")
        + splitter.flush()
    )
    assert out == [("text", "a</think>b"), ("thinking", "c"), ("text", "d"), ("text", "<")]


# --- round trip ------------------------------------------------------------------------------------------

_text = st.text(min_size=1, max_size=40).filter(lambda s: "<think>" not in s)
_usage = st.builds(
    lambda prompt, cached, completion, reasoning: (prompt + cached, cached, completion + reasoning, reasoning),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 5_000),
    st.integers(0, 5_000),
)
_call = st.builds(
    ToolCallPart,
    id=st.from_regex(r"(call_[A-Za-z0-9]{8}|functions\.[a-z_]{1,10}:[0-9])", fullmatch=True),
    name=st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,20}", fullmatch=True),
    arguments=st.dictionaries(st.text(max_size=5), st.integers(-1000, 1000), max_size=3).map(
        lambda d: orjson.dumps(d).decode()
    ),
)


@st.composite
def _responses(draw: st.DrawFn, profile: Profile) -> ChatResponse:
    parts: list[Part] = []
    if draw(st.booleans()):
        parts.append(ThinkingPart(text=draw(_text), origin=profile.name))
    if draw(st.booleans()):
        parts.append(TextPart(text=draw(_text)))
    parts += draw(st.lists(_call, max_size=3))
    prompt, cached, completion, reasoning = draw(_usage)
    ends: list[StopReason] = ["end_turn", "max_tokens", "content_filter"]
    stop: StopReason = "tool_use" if any(p.kind == "tool_call" for p in parts) else draw(st.sampled_from(ends))
    return ChatResponse(
        id=draw(st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True)),
        model=draw(st.sampled_from(["gpt-4o", "deepseek-chat", "kimi-k2.6"])),
        parts=parts,
        stop_reason=stop,
        usage=Usage(
            input_tokens=prompt - cached, cache_read_tokens=cached, output_tokens=completion, reasoning_tokens=reasoning
        ),
        created=draw(st.integers(0, 2**31)),
    )


_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "content_filter": "content_filter"}


def _to_wire(response: ChatResponse, profile: Profile) -> bytes:
    """A test-only encoder: canonical response -> the provider's wire JSON."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    for part in response.parts:
        if isinstance(part, TextPart):
            message["content"] = part.text
        elif isinstance(part, ThinkingPart):
            if profile.reasoning_echo == "reasoning_details":
                message["reasoning_details"] = [{"type": "reasoning.text", "text": part.text}]
            else:
                message[profile.reasoning_fields[0]] = part.text
        elif isinstance(part, ToolCallPart):
            message.setdefault("tool_calls", []).append(
                {"id": part.id, "type": "function", "function": {"name": part.name, "arguments": part.arguments}}
            )
    usage = response.usage
    completion = (
        usage.output_tokens - usage.reasoning_tokens if profile.completion_excludes_reasoning else usage.output_tokens
    )
    wire_usage: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": usage.prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }
    cache_path = profile.cached_fields[0].split(".")
    holder = wire_usage
    for key in cache_path[:-1]:
        holder = holder.setdefault(key, {})
    holder[cache_path[-1]] = usage.cache_read_tokens
    return orjson.dumps(
        {
            "id": response.id,
            "object": "chat.completion",
            "created": response.created,
            "model": response.model,
            "choices": [{"index": 0, "message": message, "finish_reason": _FINISH[response.stop_reason]}],
            "usage": wire_usage,
        }
    )


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
@given(data=st.data())
def test_round_trip(profile: Profile, data: st.DataObject) -> None:
    original = data.draw(_responses(profile))
    assert decode_response(_to_wire(original, profile), profile=profile) == original
