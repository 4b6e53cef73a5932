"""Every recorded OpenAI, DeepSeek and xAI response, whole and streamed, decoded with exact expectations."""

from __future__ import annotations

import pytest

from clearmaas.canonical import (
    PartDelta,
    PartEnd,
    PartStart,
    StreamFinish,
    StreamStart,
    TextPart,
    ThinkingPart,
    Usage,
    UsageReport,
    accumulate_sync,
)
from clearmaas.providers.openai_chat.errors import map_error
from clearmaas.providers.openai_chat.response import decode_response
from clearmaas.providers.profiles import DEEPSEEK, GROK, OPENAI, Profile
from tests.providers.openai_chat.recordings import body, decode_bytes, recording_sse, stream_lines, wire


def _joined(name: str, field: str) -> str:
    return "".join(line["choices"][0]["delta"].get(field) or "" for line in stream_lines(name) if line["choices"])


def test_openai_text_json() -> None:
    expected = wire("openai-chat/openai-text.json")
    response = decode_response(body("openai-chat/openai-text.json"), profile=OPENAI)
    assert response.id == "chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU"
    assert response.model == "gpt-4.1-nano-2025-04-14"
    assert response.created == 1770933883
    assert response.parts == [TextPart(text=expected["choices"][0]["message"]["content"])]
    assert response.stop_reason == "end_turn"
    assert response.usage == Usage(input_tokens=16, output_tokens=363)


def test_deepseek_text_json_stops_on_length() -> None:
    expected = wire("deepseek/deepseek-text.json")
    response = decode_response(body("deepseek/deepseek-text.json"), profile=DEEPSEEK)
    assert response.id == "00f10ecd-60b3-4707-b5db-e4bcadf7aea1"
    assert response.parts == [TextPart(text=expected["choices"][0]["message"]["content"])]
    assert response.stop_reason == "max_tokens"
    assert response.usage == Usage(input_tokens=13, output_tokens=300)


def test_deepseek_reasoning_json_puts_thinking_first() -> None:
    message = wire("deepseek/deepseek-reasoning.json")["choices"][0]["message"]
    response = decode_response(body("deepseek/deepseek-reasoning.json"), profile=DEEPSEEK)
    assert response.model == "deepseek-reasoner"
    assert response.parts == [
        ThinkingPart(text=message["reasoning_content"], origin="deepseek"),
        TextPart(text=message["content"]),
    ]
    assert response.stop_reason == "end_turn"
    assert response.usage == Usage(input_tokens=18, output_tokens=345, reasoning_tokens=315)


def test_deepseek_json_splits_cache_hits_from_input() -> None:
    message = wire("deepseek/deepseek-json.json")["choices"][0]["message"]
    response = decode_response(body("deepseek/deepseek-json.json"), profile=DEEPSEEK)
    assert response.parts == [
        ThinkingPart(text=message["reasoning_content"], origin="deepseek"),
        TextPart(text='{\n  "location": "San Francisco",\n  "condition": "cloudy",\n  "temperature": 7\n}'),
    ]
    # prompt 495 includes the 320 cache hits; completion 144 includes reasoning 118.
    assert response.usage == Usage(input_tokens=175, cache_read_tokens=320, output_tokens=144, reasoning_tokens=118)
    assert response.usage.prompt_tokens == 495


def test_xai_json_adds_reasoning_to_completion_tokens() -> None:
    message = wire("xai/xai-text.json")["choices"][0]["message"]
    response = decode_response(body("xai/xai-text.json"), profile=GROK)
    assert response.parts == [ThinkingPart(text=message["reasoning_content"], origin="grok"), TextPart(text="Hello")]
    assert response.stop_reason == "end_turn"
    # xAI: completion_tokens (1) excludes reasoning (228); total_tokens 241 = 12 + 1 + 228.
    assert response.usage == Usage(input_tokens=10, cache_read_tokens=2, output_tokens=229, reasoning_tokens=228)
    assert response.usage.total_tokens == wire("xai/xai-text.json")["usage"]["total_tokens"]


def test_legacy_parameter_error_keeps_provider_fields() -> None:
    error = map_error(400, {}, body("openai-chat/reasoning-model-legacy-parameter-error.json"))
    assert error.message == (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    )
    assert (error.status, error.type, error.code) == (400, "openai_error", "unsupported_parameter")
    assert (error.upstream_type, error.upstream_code, error.param) == (
        "invalid_request_error",
        "unsupported_parameter",
        "max_tokens",
    )


@pytest.mark.parametrize("chunk_size", [1 << 20, 7])
async def test_openai_text_stream(chunk_size: int) -> None:
    name = "openai-chat/openai-text.chunks.txt"
    events = await decode_bytes(recording_sse(name), OPENAI, chunk_size=chunk_size)
    assert events[0] == StreamStart(id="chatcmpl-D8Z5oo6uDh67AD85p73ksdT1KxhE0", model="gpt-4.1-nano-2025-04-14")
    # The first chunk's `content: ""` opens nothing: the text part starts with the first real text.
    assert events[1] == PartStart(0, TextPart(text=""))
    assert events[2] == PartDelta(0, events[2].delta) and events[2].delta.text == "**"  # type: ignore[union-attr]
    assert events[-3:] == [PartEnd(0), StreamFinish("end_turn"), UsageReport(Usage(input_tokens=16, output_tokens=300))]
    assert sum(isinstance(e, PartStart) for e in events) == 1
    response = accumulate_sync(events)
    assert response.parts == [TextPart(text=_joined(name, "content"))]
    assert response.usage.total_tokens == 316


async def test_deepseek_text_stream_has_usage_in_the_finish_chunk() -> None:
    name = "deepseek/deepseek-text.chunks.txt"
    events = await decode_bytes(recording_sse(name), DEEPSEEK, chunk_size=64)
    assert events[-3:] == [
        PartEnd(0),
        StreamFinish("max_tokens"),
        UsageReport(Usage(input_tokens=13, output_tokens=400)),
    ]
    assert accumulate_sync(events).parts == [TextPart(text=_joined(name, "content"))]


async def test_deepseek_reasoning_stream() -> None:
    name = "deepseek/deepseek-reasoning.chunks.txt"
    events = await decode_bytes(recording_sse(name), DEEPSEEK)
    starts = [e for e in events if isinstance(e, PartStart)]
    assert starts == [PartStart(0, ThinkingPart(text="", origin="deepseek")), PartStart(1, TextPart(text=""))]
    response = accumulate_sync(events)
    assert response.id == "cac7192e-e619-40c6-96b0-ed4276bc03ac"
    assert response.parts == [
        ThinkingPart(text=_joined(name, "reasoning_content"), origin="deepseek"),
        TextPart(text=_joined(name, "content")),
    ]
    assert response.parts[0].text.startswith("We need")  # type: ignore[union-attr]
    assert response.stop_reason == "end_turn"
    assert response.usage == Usage(input_tokens=18, output_tokens=219, reasoning_tokens=205)


@pytest.mark.parametrize("chunk_size", [1 << 20, 5])
async def test_xai_stream(chunk_size: int) -> None:
    events = await decode_bytes(recording_sse("xai/xai-text.chunks.txt"), GROK, chunk_size=chunk_size)
    response = accumulate_sync(events)
    assert response.model == "grok-3-mini"
    assert response.parts == [ThinkingPart(text="First, the user said", origin="grok"), TextPart(text="Hello")]
    assert response.stop_reason == "end_turn"
    assert response.usage == Usage(input_tokens=1, cache_read_tokens=11, output_tokens=291, reasoning_tokens=290)
    assert response.usage.total_tokens == 303


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("openai-chat/openai-text.chunks.txt", OPENAI),
        ("deepseek/deepseek-text.chunks.txt", DEEPSEEK),
        ("deepseek/deepseek-reasoning.chunks.txt", DEEPSEEK),
        ("xai/xai-text.chunks.txt", GROK),
    ],
)
async def test_every_stream_is_well_formed(name: str, profile: Profile) -> None:
    events = await decode_bytes(recording_sse(name), profile)
    assert isinstance(events[0], StreamStart)
    assert sum(isinstance(e, StreamFinish) for e in events) == 1
    open_parts: set[int] = set()
    for event in events:
        if isinstance(event, PartStart):
            assert not open_parts, "parts are sequential"
            open_parts.add(event.index)
        elif isinstance(event, PartDelta):
            assert event.index in open_parts
        elif isinstance(event, PartEnd):
            open_parts.remove(event.index)
        elif isinstance(event, StreamFinish):
            assert not open_parts
