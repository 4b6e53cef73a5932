"""Anthropic stream decoding beyond the recordings: errors, truncation, usage merging, odd blocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clearmaas.canonical import (
    PartDelta,
    PartEnd,
    PartStart,
    StreamError,
    StreamEvent,
    StreamFinish,
    StreamStart,
    TextDelta,
    ThinkingPart,
    ToolArgumentsDelta,
    ToolCallPart,
    UnknownPart,
    Usage,
    UsageReport,
    accumulate_sync,
)
from clearmaas.errors import UpstreamHTTPError, UpstreamProtocolError
from clearmaas.providers.anthropic import decode_stream
from clearmaas.transport.sse import SSEEvent

from .recordings import events_of, sse

START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "usage": {
            "input_tokens": 120,
            "cache_read_input_tokens": 3000,
            "cache_creation_input_tokens": 40,
            "output_tokens": 1,
        },
    },
}
STOP = {"type": "message_stop"}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str | None, usage: dict[str, Any], stop_sequence: str | None = None) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": usage,
    }


async def decode(*payloads: dict[str, Any]) -> list[StreamEvent]:
    return [event async for event in decode_stream(events_of(*(sse(p) for p in payloads)))]


async def test_usage_merges_message_start_counts_into_message_delta() -> None:
    events = await decode(
        START,
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="hi"),
        block_stop(0),
        message_delta("end_turn", {"output_tokens": 25, "output_tokens_details": {"thinking_tokens": 7}}),
        STOP,
    )
    assert events[0] == StreamStart(
        id="msg_1",
        model="claude-sonnet-4-5",
        usage=Usage(input_tokens=120, cache_read_tokens=3000, cache_write_tokens=40, output_tokens=1),
    )
    assert events[-2:] == [
        UsageReport(
            Usage(input_tokens=120, cache_read_tokens=3000, cache_write_tokens=40, output_tokens=25, reasoning_tokens=7)
        ),
        StreamFinish("end_turn"),
    ]


async def test_stop_sequence_and_refusal() -> None:
    events = await decode(START, message_delta("stop_sequence", {"output_tokens": 3}, "###"), STOP)
    assert StreamFinish("stop_sequence", "###") in events
    events = await decode(START, message_delta("refusal", {"output_tokens": 3}), STOP)
    assert events[-1] == StreamFinish("content_filter")
    events = await decode(START, message_delta("model_context_window_exceeded", {"output_tokens": 3}), STOP)
    assert events[-1] == StreamFinish("max_tokens")


@pytest.mark.parametrize(
    ("error_type", "upstream_status", "status"),
    [
        ("overloaded_error", 529, 502),
        ("rate_limit_error", 429, 429),
        ("api_error", 500, 502),
        ("invalid_request_error", 400, 400),
        ("mystery_error", 500, 502),
    ],
)
async def test_error_event_ends_the_stream(error_type: str, upstream_status: int, status: int) -> None:
    events = await decode(
        START,
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text="partial"),
        {"type": "error", "error": {"type": error_type, "message": "Overloaded"}},
        delta(0, type="text_delta", text="never seen"),
    )
    assert isinstance(events[-2], PartEnd)
    error = events[-1]
    assert isinstance(error, StreamError)
    assert isinstance(error.error, UpstreamHTTPError)
    assert error.error.upstream_status == upstream_status
    assert error.error.status == status
    assert error.error.upstream_type == error_type
    assert error.error.retryable is (upstream_status >= 429 and upstream_status != 400)
    assert not any(isinstance(e, PartDelta) and e.delta == TextDelta("never seen") for e in events)


async def test_a_stream_cut_off_before_the_end_is_an_error() -> None:
    events = await decode(START, block_start(0, {"type": "text", "text": ""}), delta(0, type="text_delta", text="par"))
    assert isinstance(events[-1], StreamError)
    assert isinstance(events[-1].error, UpstreamProtocolError)
    assert not any(isinstance(e, StreamFinish) for e in events)


async def test_invalid_json_is_a_protocol_error() -> None:
    broken = SSEEvent(event="content_block_delta", data="{not json", raw=b"")
    events = [e async for e in decode_stream(events_of(sse(START), broken, sse(STOP)))]
    assert isinstance(events[-1], StreamError) and isinstance(events[-1].error, UpstreamProtocolError)


async def test_pings_unknown_events_and_unknown_deltas_are_ignored() -> None:
    events = await decode(
        START,
        {"type": "ping"},
        {"type": "brand_new_event", "whatever": 1},
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="citations_delta", citation={"type": "web_search_result_location"}),
        delta(0, type="text_delta", text="ok"),
        delta(0, type="future_delta", x=1),
        block_stop(0),
        message_delta("end_turn", {"output_tokens": 2}),
        STOP,
    )
    assert [type(e).__name__ for e in events] == [
        "StreamStart",
        "PartStart",
        "PartDelta",
        "PartEnd",
        "UsageReport",
        "StreamFinish",
    ]


async def test_events_without_data_are_ignored() -> None:
    keep_alive = SSEEvent(event="ping", data="", raw=b"event: ping\n\n")
    events = [e async for e in decode_stream(events_of(sse(START), keep_alive, sse(STOP)))]
    assert [type(e).__name__ for e in events] == ["StreamStart", "StreamFinish"]


async def test_type_can_come_from_the_event_name_alone() -> None:
    payload = {"index": 0, "delta": {"type": "text_delta", "text": "named"}}
    events = [
        e
        async for e in decode_stream(
            events_of(
                sse(START),
                sse(block_start(0, {"type": "text", "text": ""})),
                sse(payload, name="content_block_delta"),
                sse(block_stop(0)),
                sse(message_delta("end_turn", {"output_tokens": 1})),
            )
        )
    ]
    assert PartDelta(0, TextDelta("named")) in events


async def test_redacted_thinking_tool_without_arguments_and_empty_text() -> None:
    events = await decode(
        START,
        block_start(0, {"type": "redacted_thinking", "data": "EmwKAhgB"}),
        block_start(1, {"type": "text", "text": ""}),
        block_stop(1),  # an empty text block becomes no part at all
        block_start(2, {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}),
        delta(2, type="input_json_delta", partial_json=""),
        block_stop(2),
        message_delta("tool_use", {"output_tokens": 9}),
        STOP,
    )
    assert events[1] == PartStart(0, ThinkingPart(text="", redacted="EmwKAhgB", origin="anthropic"))
    assert events[2] == PartEnd(0)
    assert PartDelta(1, ToolArgumentsDelta("{}")) in events
    response = accumulate_sync(events)
    assert response.parts == [
        ThinkingPart(text="", redacted="EmwKAhgB", origin="anthropic"),
        ToolCallPart(id="toolu_1", name="now", arguments="{}"),
    ]
    assert response.stop_reason == "tool_use"


async def test_parallel_tool_calls_keep_their_own_arguments() -> None:
    response = accumulate_sync(
        await decode(
            START,
            block_start(0, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}),
            delta(0, type="input_json_delta", partial_json='{"x":'),
            delta(0, type="input_json_delta", partial_json="1}"),
            block_stop(0),
            block_start(1, {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}}),
            delta(1, type="input_json_delta", partial_json='{"y":2}'),
            block_stop(1),
            message_delta("tool_use", {"output_tokens": 9}),
            STOP,
        )
    )
    assert response.parts == [
        ToolCallPart(id="toolu_a", name="f", arguments='{"x":1}'),
        ToolCallPart(id="toolu_b", name="g", arguments='{"y":2}'),
    ]


async def test_server_tool_block_with_bad_input_json_is_kept_as_started() -> None:
    block = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    events = await decode(
        START,
        block_start(0, block),
        delta(0, type="input_json_delta", partial_json='{"query": "cut'),
        block_stop(0),
        message_delta("end_turn", {"output_tokens": 9}),
    )
    assert events[1] == PartStart(0, UnknownPart(origin="anthropic_messages", data=block))


async def test_message_stop_without_a_stop_reason_still_finishes() -> None:
    events = await decode(
        START,
        block_start(0, {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}}),
        delta(0, type="input_json_delta", partial_json="{}"),
        block_stop(0),
        message_delta(None, {"output_tokens": 4}),
        STOP,
    )
    assert events[-1] == StreamFinish("tool_use")
    assert sum(isinstance(e, StreamFinish) for e in events) == 1


async def test_events_are_yielded_as_they_arrive() -> None:
    queue: asyncio.Queue[SSEEvent | None] = asyncio.Queue()

    async def upstream() -> AsyncIterator[SSEEvent]:
        while (event := await queue.get()) is not None:
            yield event

    stream = decode_stream(upstream())
    await queue.put(sse(START))
    first = await asyncio.wait_for(stream.__anext__(), timeout=1)
    assert isinstance(first, StreamStart)
    await queue.put(sse(block_start(0, {"type": "thinking", "thinking": "", "signature": ""})))
    assert await asyncio.wait_for(stream.__anext__(), timeout=1) == PartStart(
        0, ThinkingPart(text="", origin="anthropic")
    )
    await queue.put(None)
    rest = [event async for event in stream]
    assert isinstance(rest[-1], StreamError)  # the upstream ended without finishing
