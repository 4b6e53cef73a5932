"""The stream encoder, checked through the official Anthropic SDK's `MessageStream` accumulator: what the SDK
builds from our SSE must equal the non-streamed encoding of the canonical accumulation of the same events."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anthropic
import pytest

from clearmaas.canonical import (
    ImagePart,
    PartDelta,
    PartEnd,
    PartStart,
    SignatureDelta,
    StreamAssembler,
    StreamError,
    StreamEvent,
    StreamFinish,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolArgumentsDelta,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
    Usage,
    UsageReport,
)
from clearmaas.errors import UpstreamTimeout
from clearmaas.surfaces.anthropic_messages import decode_request, encode_stream
from clearmaas.surfaces.base import StreamContext
from clearmaas.transport.sse import SSEParser

from .harness import REQUEST, comparable, encode_all, expected_message, sdk_final_message, sse_events

START = StreamStart(id="msg_01abc", model="claude-sonnet-4-5", usage=Usage(input_tokens=120, cache_read_tokens=30))
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def sdk_matches(events: list[StreamEvent], *, estimate: int = 0) -> tuple[anthropic.types.Message, bytes]:
    body = encode_all(events, estimate=estimate)
    got = sdk_final_message(body)
    assert comparable(got) == comparable(expected_message(events))
    return got, body


def names(body: bytes) -> list[str | None]:
    return [name for name, _ in sse_events(body)]


def test_text_stream_has_the_full_event_sequence() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, TextPart(text="")),
        PartDelta(0, TextDelta("Hel")),
        PartDelta(0, TextDelta("lo")),
        PartEnd(0),
        StreamFinish(stop_reason="end_turn"),
        UsageReport(Usage(input_tokens=120, cache_read_tokens=30, output_tokens=7)),
    ]
    got, body = sdk_matches(events)
    assert got.content[0].type == "text" and got.content[0].text == "Hello"
    assert got.id == "msg_01abc" and got.model == "claude-sonnet-4-5" and got.stop_reason == "end_turn"
    assert (got.usage.input_tokens, got.usage.cache_read_input_tokens, got.usage.output_tokens) == (120, 30, 7)
    assert names(body) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    # The SDK dispatches on the event name, which must equal data.type (protocols.md §0.1).
    assert all(name == data["type"] for name, data in sse_events(body))


def test_thinking_signature_arrives_whole_just_before_the_block_stops() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, ThinkingPart(text="", origin="anthropic")),
        PartDelta(0, ThinkingDelta("925 / 5")),
        PartDelta(0, SignatureDelta("Er4BCkYI")),
        PartDelta(0, ThinkingDelta(" = 185")),
        PartDelta(0, SignatureDelta("CxgCKkCo")),
        PartEnd(0),
        PartStart(1, TextPart(text="")),
        PartDelta(1, TextDelta("185")),
        StreamFinish(stop_reason="end_turn"),
    ]
    got, body = sdk_matches(events)
    assert got.content[0].type == "thinking"
    assert (got.content[0].thinking, got.content[0].signature) == ("925 / 5 = 185", "Er4BCkYICxgCKkCo")
    wire = sse_events(body)
    start = next(data for name, data in wire if name == "content_block_start")
    assert start["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    signatures = [i for i, (_, data) in enumerate(wire) if data.get("delta", {}).get("type") == "signature_delta"]
    assert len(signatures) == 1
    assert wire[signatures[0] + 1][1] == {"type": "content_block_stop", "index": 0}


def test_thinking_without_signature_sends_no_signature_delta() -> None:
    events: list[StreamEvent] = [START, PartStart(0, ThinkingPart(text="")), PartDelta(0, ThinkingDelta("hmm"))]
    got, body = sdk_matches(events)
    assert got.content[0].type == "thinking" and got.content[0].signature == ""
    assert b"signature_delta" not in body


def test_foreign_signature_is_tagged_and_comes_back_with_its_origin() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, ThinkingPart(text="", origin="google")),
        PartDelta(0, ThinkingDelta("plan")),
        PartDelta(0, SignatureDelta("CiQB0e2Kb")),
        PartEnd(0),
    ]
    got, _ = sdk_matches(events)
    block = got.content[0].model_dump(exclude_none=True)
    echoed = decode_request(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [block]}]}, {}
    )
    part = echoed.messages[0].parts[0]
    assert isinstance(part, ThinkingPart)
    assert (part.text, part.signature, part.origin) == ("plan", "CiQB0e2Kb", "google")


def test_tool_arguments_in_fragments_and_a_tool_without_arguments() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, ToolCallPart(id="toolu_01", name="get_weather")),
        PartDelta(0, ToolArgumentsDelta('{"locati')),
        PartDelta(0, ToolArgumentsDelta('on": "Par')),
        PartDelta(0, ToolArgumentsDelta('is", "days": [1, 2]}')),
        PartEnd(0),
        PartStart(1, ToolCallPart(id="toolu_02", name="list_files")),
        PartEnd(1),
        StreamFinish(stop_reason="tool_use"),
    ]
    got, body = sdk_matches(events)
    assert got.content[0].type == "tool_use" and got.content[0].input == {"location": "Paris", "days": [1, 2]}
    assert got.content[1].type == "tool_use" and got.content[1].input == {}
    assert got.stop_reason == "tool_use"
    deltas = [data for name, data in sse_events(body) if name == "content_block_delta"]
    assert [d["index"] for d in deltas] == [0, 0, 0]  # the argument-less tool gets no input_json_delta at all


def test_usage_arriving_after_the_finish_reaches_message_delta() -> None:
    # OpenAI sends finish_reason, then a usage-only chunk (protocols.md §0.4).
    events: list[StreamEvent] = [
        StreamStart(id="chatcmpl-9", model="gpt-4o-mini"),
        PartStart(0, TextPart(text="")),
        PartDelta(0, TextDelta("Hi")),
        PartEnd(0),
        StreamFinish(stop_reason="max_tokens"),
        UsageReport(Usage(input_tokens=40, cache_read_tokens=8, output_tokens=2, reasoning_tokens=1)),
    ]
    got, body = sdk_matches(events, estimate=50)
    assert got.stop_reason == "max_tokens" and got.id == "msg_chatcmpl-9"
    assert (got.usage.input_tokens, got.usage.cache_read_input_tokens, got.usage.output_tokens) == (40, 8, 2)
    wire = sse_events(body)
    assert [name for name, _ in wire][-2:] == ["message_delta", "message_stop"]
    assert wire[-2][1]["usage"] == {
        "input_tokens": 40,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 8,
        "output_tokens": 2,
        "output_tokens_details": {"thinking_tokens": 1},
    }
    assert wire[0][1]["message"]["usage"]["input_tokens"] == 50  # the estimate, until the real count arrives


@pytest.mark.parametrize(
    ("usage", "estimate", "expected"),
    [
        (Usage(input_tokens=2037, cache_write_tokens=100, output_tokens=1), 999, (2037, 100, 0, 1)),
        (None, 1500, (1500, 0, 0, 0)),
        (Usage(), 1500, (1500, 0, 0, 0)),  # a provider that reports nothing up front
    ],
)
def test_message_start_input_tokens_are_real_or_estimated_never_zero(
    usage: Usage | None, estimate: int, expected: tuple[int, int, int, int]
) -> None:
    body = encode_all([StreamStart(id="msg_1", model="m", usage=usage)], estimate=estimate)
    name, data = sse_events(body)[0]
    start_usage = data["message"]["usage"]
    assert name == "message_start" and data["message"]["stop_reason"] is None and data["message"]["content"] == []
    assert (
        start_usage["input_tokens"],
        start_usage["cache_creation_input_tokens"],
        start_usage["cache_read_input_tokens"],
        start_usage["output_tokens"],
    ) == expected
    if usage is None:  # no usage ever: message_delta leaves the announced input count standing
        assert sdk_final_message(body).usage.input_tokens == estimate


def test_kimi_tool_id_is_made_legal_and_restored_when_echoed_back() -> None:
    kimi_id = "functions.Bash:0"
    events: list[StreamEvent] = [
        StreamStart(id="cmpl-1", model="kimi-k2"),
        PartStart(0, ToolCallPart(id=kimi_id, name="Bash")),
        PartDelta(0, ToolArgumentsDelta('{"command": "ls"}')),
        PartEnd(0),
        StreamFinish(stop_reason="tool_use"),
    ]
    got, _ = sdk_matches(events)
    block = got.content[0]
    assert block.type == "tool_use" and ANTHROPIC_ID.match(block.id) and block.id != kimi_id
    echoed = decode_request(
        {
            "model": "kimi-k2",
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "list files"},
                {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "a.txt"}]},
            ],
        },
        {},
    )
    call, result = echoed.messages[1].parts[0], echoed.messages[2].parts[0]
    assert isinstance(call, ToolCallPart) and call.id == kimi_id and call.arguments == '{"command":"ls"}'
    assert isinstance(result, ToolResultPart) and result.tool_call_id == kimi_id


def test_mid_stream_error_makes_the_sdk_raise_and_ends_without_message_stop() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, TextPart(text="")),
        PartDelta(0, TextDelta("partial")),
        StreamError(UpstreamTimeout("The upstream provider timed out.")),
    ]
    body = encode_all(events)
    wire = sse_events(body)
    assert [name for name, _ in wire][-1] == "error"
    assert "message_stop" not in names(body) and "message_delta" not in names(body)
    assert wire[-1][1] == {
        "type": "error",
        "error": {"type": "upstream_error", "code": "upstream_error", "message": "The upstream provider timed out."},
    }
    with pytest.raises(anthropic.APIStatusError) as raised:
        sdk_final_message(body)
    assert raised.value.body == wire[-1][1]


def test_error_before_anything_else_is_the_only_event() -> None:
    body = encode_all([StreamError(UpstreamTimeout("timed out"))])
    assert names(body) == ["error"]


async def test_stopping_on_an_error_releases_the_upstream_iterator() -> None:
    state = {"pulled": 0, "closed": False}

    async def source() -> AsyncIterator[StreamEvent]:
        try:
            events: list[StreamEvent] = [START, StreamError(UpstreamTimeout("gone")), PartStart(0, TextPart(text=""))]
            for event in events:
                state["pulled"] += 1
                yield event
        finally:
            state["closed"] = True

    chunks = [chunk async for chunk in encode_stream(source(), StreamContext(request=REQUEST))]
    assert chunks[-1].startswith(b"event: error\n")
    assert state == {"pulled": 2, "closed": True}


def test_stream_ending_without_finish_closes_blocks_with_end_turn() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, ToolCallPart(id="toolu_9", name="Read")),
        PartDelta(0, ToolArgumentsDelta('{"path": "a"}')),
    ]
    got, body = sdk_matches(events)
    assert got.stop_reason == "end_turn" and got.content[0].type == "tool_use"
    assert names(body)[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]


def test_late_argument_fragments_keep_their_blocks_index() -> None:
    # OpenAI-style interleaved tool calls, through the real assembler: fragments for call 0 arrive after call 1
    # opened, so the assembler emits them as late deltas for an already-stopped part.
    assembler = StreamAssembler()
    events: list[StreamEvent] = [StreamStart(id="chatcmpl-2", model="gpt-4.1")]
    events += assembler.tool_call(0, id="call_a", name="search")
    events += assembler.tool_arguments(0, '{"q": ')
    events += assembler.tool_call(1, id="call_b", name="fetch")
    events += assembler.tool_arguments(1, '{"url": "https://x.test"}')
    events += assembler.tool_arguments(0, '"weather"}')
    events += assembler.end_all()
    events.append(StreamFinish(stop_reason="tool_use"))
    got, body = sdk_matches(events)
    assert [b.input for b in got.content if b.type == "tool_use"] == [{"q": "weather"}, {"url": "https://x.test"}]
    wire = sse_events(body)
    stopped_zero = wire.index(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    late = [data for _, data in wire[stopped_zero:] if data.get("delta", {}).get("partial_json") == '"weather"}']
    assert late and late[0]["index"] == 0


def test_whole_blocks_pass_through_and_parts_without_a_wire_form_leave_no_gap() -> None:
    server_tool_use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}
    events: list[StreamEvent] = [
        START,
        PartStart(0, ThinkingPart(text="", redacted="EmwKAhgBEgy3va", origin="anthropic")),
        PartEnd(0),
        PartStart(1, ImagePart(url="https://img.test/a.png")),  # nothing to send an Anthropic client
        PartEnd(1),
        PartStart(2, UnknownPart(origin="anthropic_messages", data=server_tool_use)),
        PartEnd(2),
        PartStart(3, UnknownPart(origin="openai_responses", data={"type": "web_search_call"})),
        PartStart(4, TextPart(text="Found it")),  # content given at the start is sent as a delta
        PartEnd(4),
    ]
    got, body = sdk_matches(events)
    assert [block.type for block in got.content] == ["redacted_thinking", "server_tool_use", "text"]
    assert got.content[2].type == "text" and got.content[2].text == "Found it"
    starts = [data for name, data in sse_events(body) if name == "content_block_start"]
    assert [data["index"] for data in starts] == [0, 1, 2]
    assert starts[0]["content_block"] == {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"}
    assert starts[1]["content_block"] == server_tool_use
    assert starts[2]["content_block"] == {"type": "text", "text": ""}


def test_a_text_part_that_stays_empty_at_the_end_sends_no_block() -> None:
    """Gemini ends an answer with an empty text part carrying only its signature; an empty text block would be
    echoed back by the client and rejected by Anthropic (protocols.md §0.7)."""
    events: list[StreamEvent] = [
        START,
        PartStart(0, TextPart(text="")),
        PartDelta(0, TextDelta("Hello")),
        PartEnd(0),
        PartStart(1, ToolCallPart(id="call_1", name="get_weather", arguments="{}")),
        PartEnd(1),
        PartStart(2, TextPart(text="", details={"google": {"thoughtSignature": "c2ln"}})),
        PartDelta(2, TextDelta("")),
        PartEnd(2),
        StreamFinish(stop_reason="tool_use"),
    ]
    got, body = sdk_matches(events)
    assert [block.type for block in got.content] == ["text", "tool_use"]
    starts = [data for name, data in sse_events(body) if name == "content_block_start"]
    assert [data["index"] for data in starts] == [0, 1]
    assert names(body).count("content_block_stop") == 2


def test_an_empty_text_part_opens_when_a_later_part_starts_keeping_the_order() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, TextPart(text="")),
        PartStart(1, ThinkingPart(text="Hmm", origin="deepseek")),
        PartEnd(1),
        PartDelta(0, TextDelta("Late text")),
        PartEnd(0),
    ]
    got, body = sdk_matches(events)
    assert [block.type for block in got.content] == ["text", "thinking"]
    assert got.content[0].type == "text" and got.content[0].text == "Late text"
    starts = [data for name, data in sse_events(body) if name == "content_block_start"]
    assert [(data["index"], data["content_block"]["type"]) for data in starts] == [(0, "text"), (1, "thinking")]


def test_empty_stream_still_closes_properly() -> None:
    body = encode_all([], estimate=12)
    assert names(body) == ["message_start", "ping", "message_delta", "message_stop"]
    got = sdk_final_message(body)
    assert got.id.startswith("msg_") and got.model == REQUEST.model
    assert (got.stop_reason, got.usage.input_tokens, got.content) == ("end_turn", 12, [])


def test_a_start_arriving_late_still_gives_its_usage() -> None:
    body = encode_all([PartStart(0, TextPart(text="hi")), START])
    got = sdk_final_message(body)
    assert names(body)[:2] == ["message_start", "ping"]  # made up when the first part came
    assert got.id.startswith("msg_") and got.content[0].type == "text" and got.content[0].text == "hi"
    assert (got.usage.input_tokens, got.usage.cache_read_input_tokens) == (120, 30)


def test_content_filter_is_a_refusal() -> None:
    got, _ = sdk_matches([START, StreamFinish(stop_reason="content_filter")])
    assert got.stop_reason == "refusal"


async def test_each_event_is_sent_before_the_next_one_is_read() -> None:
    events: list[StreamEvent] = [
        START,
        PartStart(0, TextPart(text="")),
        PartDelta(0, TextDelta("a")),
        PartDelta(0, TextDelta("b")),
        PartEnd(0),
        StreamFinish(stop_reason="end_turn"),
        UsageReport(Usage(input_tokens=1, output_tokens=2)),
    ]
    pulled = 0

    async def source() -> AsyncIterator[StreamEvent]:
        nonlocal pulled
        for event in events:
            pulled += 1
            yield event

    seen: list[tuple[str | None, int]] = []
    async for chunk in encode_stream(source(), StreamContext(request=REQUEST)):
        (event,) = SSEParser().feed(chunk)
        seen.append((event.event, pulled))
    assert seen == [
        ("message_start", 1),
        ("ping", 1),
        # A text block opens with its first text, so an empty text part never becomes an empty block.
        ("content_block_start", 3),
        ("content_block_delta", 3),
        ("content_block_delta", 4),
        ("content_block_stop", 5),
        ("message_delta", 7),  # held until the iterator ends: usage came after the finish
        ("message_stop", 7),
    ]
