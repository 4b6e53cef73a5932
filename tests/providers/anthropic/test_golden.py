"""Every recorded Anthropic response, whole and streamed, decoded with exact expectations."""

from __future__ import annotations

import orjson
import pytest

from clearmaas.canonical import (
    PartDelta,
    PartEnd,
    PartStart,
    StreamError,
    StreamFinish,
    StreamStart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    UnknownPart,
    Usage,
    UsageReport,
    accumulate_sync,
)
from clearmaas.providers.anthropic import decode_response

from .recordings import FIXTURES, body, replay, stream_lines, wire

COVERED = {
    "anthropic-claude-opus-5-reasoning-high.1.json",
    "anthropic-clear-thinking.1.chunks.txt",
    "anthropic-clear-thinking.1.json",
    "anthropic-clear-tool-uses.1.chunks.txt",
    "anthropic-clear-tool-uses.1.json",
    "anthropic-json-tool.1.chunks.txt",
    "anthropic-json-tool.1.json",
    "anthropic-json-tool.2.chunks.txt",
    "anthropic-text.chunks.txt",
    "anthropic-text.json",
    "anthropic-web-search-tool.1.chunks.txt",
    "anthropic-web-search-tool.1.json",
}


def test_every_recording_has_a_golden_test() -> None:
    assert {path.name for path in FIXTURES.iterdir()} == COVERED


# --- whole responses -----------------------------------------------------------------------------------


def test_text_response() -> None:
    response = decode_response(body("anthropic-text.json"))
    assert response.id == "msg_01VdEjxAP5ahtHKrrRdNBteQ"
    assert response.model == "claude-sonnet-4-5-20250929"
    assert response.parts == [
        TextPart(
            text="Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help "
            "you with?"
        )
    ]
    assert response.stop_reason == "end_turn"
    assert response.stop_sequence is None
    assert response.usage == Usage(input_tokens=12, output_tokens=29)


def test_thinking_response_keeps_text_and_signature() -> None:
    response = decode_response(body("anthropic-clear-thinking.1.json"))
    signature = wire("anthropic-clear-thinking.1.json")["content"][0]["signature"]
    assert signature.startswith("Er4BCkYICxgCKkCoxqLHLrx4mFL9Ox7") and signature.endswith("sH8MtUIqxRgB")
    assert response.parts == [
        ThinkingPart(text="925 divided by 5 = 185", signature=signature, origin="anthropic"),
        TextPart(text="925 ÷ 5 = 185"),
    ]
    assert response.usage == Usage(input_tokens=69, output_tokens=33)


def test_reasoning_response_reports_thinking_tokens() -> None:
    response = decode_response(body("anthropic-claude-opus-5-reasoning-high.1.json"))
    blocks = wire("anthropic-claude-opus-5-reasoning-high.1.json")["content"]
    thinking = response.parts[0]
    assert isinstance(thinking, ThinkingPart)
    assert thinking.text.startswith("I need to find all roots of this cubic polynomial")
    assert thinking.text == blocks[0]["thinking"]
    assert thinking.signature == blocks[0]["signature"]
    assert thinking.signature is not None and thinking.signature.startswith("CAISqwQKhwEIEBgCKkAciZInI2gcLrwOU5o9")
    assert response.parts[1] == TextPart(text=blocks[1]["text"])
    assert response.model == "claude-opus-5"
    assert response.usage == Usage(input_tokens=51, output_tokens=1699, reasoning_tokens=139)


def test_text_after_tool_use_response() -> None:
    response = decode_response(body("anthropic-clear-tool-uses.1.json"))
    assert len(response.parts) == 1
    text = response.parts[0]
    assert isinstance(text, TextPart)
    assert text.text.startswith("\n\nHere's a comparison of the weather in both cities:")
    assert text.text.endswith("San Francisco is the better choice right now!")
    assert response.usage == Usage(input_tokens=859, output_tokens=132)


def test_tool_use_response() -> None:
    response = decode_response(body("anthropic-json-tool.1.json"))
    assert response.stop_reason == "tool_use"
    assert response.stop_sequence is None  # the field is absent from this recording
    (call,) = response.parts
    assert isinstance(call, ToolCallPart)
    assert call.id == "toolu_01Q9ExVZnzZj7E2QQYHYtNUa"
    assert call.name == "json"
    assert orjson.loads(call.arguments) == {
        "elements": [
            {"location": "San Francisco", "temperature": -5, "condition": "snowy"},
            {"location": "London", "temperature": 0, "condition": "snowy"},
            {"location": "Paris", "temperature": 23, "condition": "cloudy"},
            {"location": "Berlin", "temperature": -9, "condition": "snowy"},
        ]
    }
    assert response.usage == Usage(input_tokens=1151, output_tokens=87)


def test_web_search_response_keeps_server_tool_blocks_and_citations() -> None:
    response = decode_response(body("anthropic-web-search-tool.1.json"))
    blocks = wire("anthropic-web-search-tool.1.json")["content"]
    assert len(response.parts) == len(blocks)
    kinds = [block["type"] for block in blocks]
    assert kinds[:5] == [
        "server_tool_use",
        "web_search_tool_result",
        "text",
        "server_tool_use",
        "web_search_tool_result",
    ]
    search = response.parts[0]
    assert search == UnknownPart(origin="anthropic_messages", data=blocks[0])
    assert isinstance(search, UnknownPart) and search.data["input"] == {"query": "tech news today September 26 2024"}
    result = response.parts[1]
    assert isinstance(result, UnknownPart) and result.data["tool_use_id"] == "srvtoolu_01Qxbje4duKBes3Nj42MkZug"
    assert result.data["content"][0]["title"] == "Latest News - Apple Developer"
    cited = [part for part in response.parts if isinstance(part, TextPart) and part.details]
    assert cited, "the recording has cited text blocks"
    for cited_part in cited:
        assert cited_part.details is not None
        assert cited_part.details["anthropic"]["citations"][0]["type"] == "web_search_result_location"
    for part, block in zip(response.parts, blocks, strict=True):
        if block["type"] == "text":
            assert part == TextPart(
                text=block["text"],
                details={"anthropic": {"citations": block["citations"]}} if "citations" in block else None,
            )
    assert response.usage == Usage(input_tokens=27118, output_tokens=600, server_tool_calls={"web_search": 2})


# --- streams -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1 << 20, 7])
async def test_text_stream(chunk_size: int) -> None:
    events = await replay("anthropic-text.chunks.txt", chunk_size=chunk_size)
    assert events[0] == StreamStart(
        id="msg_01QC4g3HwBThD4BaNtBckFDJ",
        model="claude-sonnet-4-5-20250929",
        usage=Usage(input_tokens=12, output_tokens=1),
    )
    assert events[1] == PartStart(0, TextPart(text=""))
    texts = [e.delta.text for e in events if isinstance(e, PartDelta)]  # type: ignore[union-attr]
    assert texts == [
        "Hello",
        "! I",
        "'m doing well, thank you for asking",
        ". How are you doing today?",
        " Is",
        " there anything I can help you with?",
    ]
    assert events[-3:] == [PartEnd(0), UsageReport(Usage(input_tokens=12, output_tokens=30)), StreamFinish("end_turn")]
    response = accumulate_sync(events)
    assert response.parts == [
        TextPart(
            text="Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can "
            "help you with?"
        )
    ]


async def test_thinking_stream_keeps_signature_byte_exact() -> None:
    events = await replay("anthropic-clear-thinking.1.chunks.txt")
    signature = stream_lines("anthropic-clear-thinking.1.chunks.txt")[13]["delta"]["signature"]
    assert signature.startswith("EvQBCkYICxgCKkAxhD4NUKFzudtZ6Nzb") and signature.endswith("/4yzNgvi/EhT6Ca17BgB")
    assert events[1] == PartStart(0, ThinkingPart(text="", origin="anthropic"))
    response = accumulate_sync(events)
    assert response.parts == [
        ThinkingPart(
            text="The previous result was 925. Now I need to divide that by 5.\n\n925 ÷ 5 = 185",
            signature=signature,
            origin="anthropic",
        ),
        TextPart(text="925 ÷ 5 = 185"),
    ]
    assert response.usage == Usage(input_tokens=69, output_tokens=53)
    assert response.stop_reason == "end_turn"


async def test_text_after_tool_use_stream() -> None:
    response = accumulate_sync(await replay("anthropic-clear-tool-uses.1.chunks.txt", chunk_size=13))
    assert response.id == "msg_01YJG5jvxYUWfhVa6MSqT6qk"
    (text,) = response.parts
    assert isinstance(text, TextPart)
    assert text.text.startswith("\n\nHere's a comparison of the weather in both cities:\n\n**San Francisco:**")
    assert text.text.endswith("San Francisco is the better choice right now.")
    assert response.usage == Usage(input_tokens=859, output_tokens=122)


async def test_tool_use_stream() -> None:
    events = await replay("anthropic-json-tool.1.chunks.txt", chunk_size=5)
    assert events[1] == PartStart(0, ToolCallPart(id="toolu_01KFbKqPYSuAKujiL6mTfzYA", name="json", arguments=""))
    response = accumulate_sync(events)
    assert response.parts == [
        ToolCallPart(
            id="toolu_01KFbKqPYSuAKujiL6mTfzYA",
            name="json",
            arguments='{"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]}',
        )
    ]
    assert response.stop_reason == "tool_use"
    assert response.usage == Usage(input_tokens=849, output_tokens=47)


async def test_text_then_tool_use_stream() -> None:
    events = await replay("anthropic-json-tool.2.chunks.txt")
    starts = [e for e in events if isinstance(e, PartStart)]
    assert [s.index for s in starts] == [0, 1]
    response = accumulate_sync(events)
    assert response.parts == [
        TextPart(text="I'll invoke the JSON response tool."),
        ToolCallPart(
            id="toolu_01KFbKqPYSuAKujiL6mTfzYA",
            name="json",
            arguments='{"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]}',
        ),
    ]
    assert response.stop_reason == "tool_use"


async def test_web_search_stream() -> None:
    events = await replay("anthropic-web-search-tool.1.chunks.txt", chunk_size=4096)
    lines = stream_lines("anthropic-web-search-tool.1.chunks.txt")
    assert not any(isinstance(e, StreamError) for e in events)
    assert events[0] == StreamStart(
        id="msg_01LHpEgU4KbfgXGVi3UtHQY1",
        model="claude-sonnet-4-20250514",
        usage=Usage(input_tokens=2037, output_tokens=1),
    )
    response = accumulate_sync(events)
    assert response.parts[0] == UnknownPart(
        origin="anthropic_messages",
        data={
            "type": "server_tool_use",
            "id": "srvtoolu_01Bj5uzzLcYG5hfueSLcDH8k",
            "name": "web_search",
            "input": {"query": "tech news today September 26 2025"},
        },
    )
    assert response.parts[1] == UnknownPart(origin="anthropic_messages", data=lines[8]["content_block"])
    assert lines[8]["content_block"]["type"] == "web_search_tool_result"
    texts = response.parts[2:]
    assert len(texts) == 19  # blocks 2..20, all text
    assert all(isinstance(part, TextPart) for part in texts)
    assert texts[0] == TextPart(
        text="Based on my search results, here are the key tech news developments from today (September 26, 2025):"
        "\n\n## Apple News\n"
    )
    assert texts[2] == TextPart(text=" ")
    # message_delta's cumulative usage replaces message_start's input count (search results are input too).
    assert response.usage == Usage(input_tokens=15665, output_tokens=795, server_tool_calls={"web_search": 1})
    assert response.stop_reason == "end_turn"
