"""Streams synthesized from the providers' docs: Qwen, Kimi and MiniMax quirks, parallel tool calls,
in-band errors and cut streams."""

from __future__ import annotations

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
    ToolArgumentsDelta,
    ToolCallPart,
    Usage,
    UsageReport,
    accumulate_sync,
)
from clearmaas.errors import UpstreamHTTPError, UpstreamProtocolError
from clearmaas.providers.openai_chat.stream import decode_stream
from clearmaas.providers.profiles import GENERIC, KIMI, MINIMAX, OPENAI, QWEN
from tests.providers.openai_chat.recordings import (
    chunk,
    chunks_sse,
    decode_bytes,
    events_of,
    sse,
    usage_chunk,
)


def _call(index: int, *, id: str | None = None, name: str | None = None, args: str | None = None) -> dict:
    function: dict = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    call: dict = {"index": index, "function": function}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    return call


async def test_qwen_reasoning_then_tool_call_with_id_less_later_chunks() -> None:
    # help.aliyun.com deep-thinking + function calling: reasoning_content deltas, then tool_calls whose
    # later fragments carry only `index` (lobehub PR#11649).
    chunks = [
        chunk({"role": "assistant", "content": None, "reasoning_content": "The user wants"}),
        chunk({"content": None, "reasoning_content": " the weather."}),
        chunk({"content": "", "reasoning_content": None}),
        chunk({"tool_calls": [_call(0, id="call_8f08d2b0fc0c4d8fab7123", name="get_current_weather", args="")]}),
        chunk({"tool_calls": [_call(0, args='{"location":')]}),
        chunk({"tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"arguments": ' "Hangzhou"}'}}]}),
        chunk({}, finish="tool_calls"),
        usage_chunk(
            {
                "prompt_tokens": 250,
                "completion_tokens": 60,
                "total_tokens": 310,
                "completion_tokens_details": {"reasoning_tokens": 40},
                "prompt_tokens_details": {"cached_tokens": 200},
            }
        ),
    ]
    events = await decode_bytes(chunks_sse(chunks), QWEN, chunk_size=11)
    response = accumulate_sync(events)
    assert response.parts == [
        ThinkingPart(text="The user wants the weather.", origin="qwen"),
        ToolCallPart(
            id="call_8f08d2b0fc0c4d8fab7123", name="get_current_weather", arguments='{"location": "Hangzhou"}'
        ),
    ]
    assert response.stop_reason == "tool_use"
    assert response.usage == Usage(input_tokens=50, cache_read_tokens=200, output_tokens=60, reasoning_tokens=40)


async def test_kimi_ids_are_kept_and_usage_inside_the_choice_is_read() -> None:
    # Moonshot streams usage inside the last choice; tool ids look like `functions.<name>:<n>`.
    last = chunk({}, finish="tool_calls")
    last["choices"][0]["usage"] = {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "cached_tokens": 10,
    }
    chunks = [
        chunk({"role": "assistant", "content": "Let me check."}),
        chunk({"tool_calls": [_call(0, id="functions.get_weather:0", name="get_weather", args='{"city": "Paris"}')]}),
        chunk({"tool_calls": [_call(1, id="functions.get_weather:1", name="get_weather", args='{"city": "Rome"}')]}),
        last,
    ]
    events = await decode_bytes(chunks_sse(chunks), KIMI)
    response = accumulate_sync(events)
    assert [p.id for p in response.parts if isinstance(p, ToolCallPart)] == [
        "functions.get_weather:0",
        "functions.get_weather:1",
    ]
    assert response.parts[0] == TextPart(text="Let me check.")
    assert response.stop_reason == "tool_use"
    assert events[-1] == UsageReport(Usage(input_tokens=20, cache_read_tokens=10, output_tokens=12))


async def test_parallel_tool_calls_with_interleaved_fragments_reach_their_own_call() -> None:
    chunks = [
        chunk(
            {"role": "assistant", "content": None, "tool_calls": [_call(0, id="call_a", name="get_weather", args="")]}
        ),
        chunk({"tool_calls": [_call(1, id="call_b", name="get_time", args="")]}),
        chunk({"tool_calls": [_call(0, args='{"city":')]}),
        chunk({"tool_calls": [_call(1, args='{"tz":')]}),
        chunk({"tool_calls": [_call(0, args='"Paris"}'), _call(1, args='"CET"}')]}),
        chunk({}, finish="stop"),  # some providers say `stop` even with tool calls
    ]
    events = await decode_bytes(chunks_sse(chunks), OPENAI)
    late = [e for e in events if isinstance(e, PartDelta) and e.index == 0 and isinstance(e.delta, ToolArgumentsDelta)]
    assert [e.delta.json for e in late] == ['{"city":', '"Paris"}']  # type: ignore[union-attr]
    response = accumulate_sync(events)
    assert response.parts == [
        ToolCallPart(id="call_a", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCallPart(id="call_b", name="get_time", arguments='{"tz":"CET"}'),
    ]
    assert response.stop_reason == "tool_use"


async def test_a_reused_index_with_a_new_id_starts_a_new_call() -> None:
    # Some servers number every parallel call 0 (ccNexus PR#89); the new id tells them apart.
    chunks = [
        chunk({"tool_calls": [_call(0, id="call_1", name="a", args="{}")]}),
        chunk({"tool_calls": [_call(0, id="call_2", name="b", args='{"x":')]}),
        chunk({"tool_calls": [_call(0, args="1}")]}),
        chunk({}, finish="tool_calls"),
    ]
    response = accumulate_sync(await decode_bytes(chunks_sse(chunks), GENERIC))
    assert response.parts == [
        ToolCallPart(id="call_1", name="a", arguments="{}"),
        ToolCallPart(id="call_2", name="b", arguments='{"x":1}'),
    ]


async def test_a_call_without_any_id_gets_one() -> None:
    chunks = [chunk({"tool_calls": [_call(0, name="a", args="{}")]}), chunk({}, finish="tool_calls")]
    response = accumulate_sync(await decode_bytes(chunks_sse(chunks), GENERIC))
    call = response.parts[0]
    assert isinstance(call, ToolCallPart) and call.id.startswith("call_") and len(call.id) > 10


@pytest.mark.parametrize("size", [1, 3, 1000])
async def test_minimax_think_tags_split_across_chunks(size: int) -> None:
    text = "<think>\nThe user greets me.\n</think>\n\nHello! How can I help?"
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    chunks = [chunk({"role": "assistant", "content": p}) for p in pieces]
    chunks.append(chunk({}, finish="stop", usage={"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}))
    events = await decode_bytes(chunks_sse(chunks), MINIMAX)
    # No piece of a tag ever reaches a delta, however the tags were cut.
    assert all(
        "<" not in getattr(e.delta, "text", "") and ">" not in getattr(e.delta, "text", "")
        for e in events
        if isinstance(e, PartDelta)
    )
    response = accumulate_sync(events)
    assert response.parts == [
        ThinkingPart(text="\nThe user greets me.\n", origin="minimax"),
        TextPart(text="Hello! How can I help?"),
    ]
    assert response.usage == Usage(input_tokens=5, output_tokens=9)


async def test_minimax_partial_tag_is_text_when_it_never_completes() -> None:
    chunks = [chunk({"content": "a <thi"}), chunk({"content": "ng> b <"}), chunk({}, finish="stop")]
    response = accumulate_sync(await decode_bytes(chunks_sse(chunks), MINIMAX))
    assert response.parts == [TextPart(text="a <thing> b <")]


async def test_minimax_reasoning_details_are_thinking() -> None:
    # reasoning_split=True: reasoning arrives in `reasoning_details[].text`, incrementally
    # (MiniMax-AI/MiniMax-M2#95), ahead of the content.
    detail = {"type": "reasoning.text", "id": "reasoning-text-1", "format": "MiniMax-response-v1", "index": 0}
    chunks = [
        chunk({"role": "assistant", "content": "", "reasoning_details": [{**detail, "text": "The user"}]}),
        chunk({"reasoning_details": [{**detail, "text": " says hi."}]}),
        chunk({"content": "Hi there!"}),
        chunk({}, finish="stop"),
    ]
    response = accumulate_sync(await decode_bytes(chunks_sse(chunks), MINIMAX))
    assert response.parts == [ThinkingPart(text="The user says hi.", origin="minimax"), TextPart(text="Hi there!")]


async def test_minimax_error_envelope_in_the_stream_ends_it() -> None:
    events = [
        e
        async for e in decode_stream(
            events_of(
                sse(chunk({"content": "Hel"}, base_resp={"status_code": 0, "status_msg": ""})),
                sse({"id": "x", "choices": None, "base_resp": {"status_code": 1002, "status_msg": "rate limit"}}),
                sse(chunk({"content": "never"})),
            ),
            profile=MINIMAX,
        )
    ]
    assert isinstance(events[0], StreamStart)
    assert events[-2] == PartEnd(0)
    error = events[-1]
    assert isinstance(error, StreamError) and isinstance(error.error, UpstreamHTTPError)
    assert (error.error.status, error.error.upstream_code, error.error.message) == (429, "1002", "rate limit")
    assert not any(isinstance(e, PartDelta) and getattr(e.delta, "text", "") == "never" for e in events)


async def test_in_band_error_chunk_becomes_stream_error() -> None:
    events = [
        e
        async for e in decode_stream(
            events_of(
                sse(chunk({"role": "assistant", "content": "Hi"})),
                sse(
                    {
                        "error": {
                            "message": "The server had an error. Please try again in 2s.",
                            "type": "server_error",
                            "code": None,
                        }
                    }
                ),
            ),
            profile=OPENAI,
        )
    ]
    assert [type(e).__name__ for e in events] == ["StreamStart", "PartStart", "PartDelta", "PartEnd", "StreamError"]
    error = events[-1].error  # type: ignore[union-attr]
    assert isinstance(error, UpstreamHTTPError)
    assert (error.upstream_status, error.status, error.retry_after) == (500, 502, 2)


async def test_error_event_name_is_an_error_too() -> None:
    events = [e async for e in decode_stream(events_of(sse({"message": "overloaded"}, name="error")), profile=OPENAI)]
    assert len(events) == 1 and isinstance(events[0], StreamError)
    assert events[0].error.message == "overloaded"


async def test_a_stream_cut_before_finish_is_an_error() -> None:
    events = await decode_bytes(chunks_sse([chunk({"content": "Hel"})], done=False), OPENAI)
    assert isinstance(events[-1], StreamError) and isinstance(events[-1].error, UpstreamProtocolError)
    assert events[-2] == PartEnd(0)


async def test_done_without_finish_reason_finishes_the_stream() -> None:
    events = await decode_bytes(chunks_sse([chunk({"content": "Hi"})]), OPENAI)
    assert events[-2:] == [PartEnd(0), StreamFinish("end_turn")]


async def test_not_json_is_a_protocol_error() -> None:
    events = [e async for e in decode_stream(events_of(sse("{not json")), profile=OPENAI)]
    assert len(events) == 1 and isinstance(events[0].error, UpstreamProtocolError)  # type: ignore[union-attr]


async def test_events_are_yielded_before_the_next_chunk_is_read() -> None:
    seen: list[str] = []

    async def upstream():  # type: ignore[no-untyped-def]
        seen.append("chunk1")
        yield sse(chunk({"content": "Hi"}))
        seen.append("chunk2")
        yield sse(chunk({}, finish="stop"))

    stream = decode_stream(upstream(), profile=OPENAI)
    assert isinstance(await anext(stream), StreamStart)
    assert await anext(stream) == PartStart(0, TextPart(text=""))
    assert seen == ["chunk1"]
    rest = [e async for e in stream]
    assert seen == ["chunk1", "chunk2"] and rest[-1] == StreamFinish("end_turn")


async def test_content_after_tool_calls_and_length_finish() -> None:
    chunks = [chunk({"content": "a"}), chunk({"content": None}), chunk({"content": ""}), chunk({}, finish="length")]
    events = await decode_bytes(chunks_sse(chunks), OPENAI)
    assert [e for e in events if isinstance(e, PartStart)] == [PartStart(0, TextPart(text=""))]
    assert events[-1] == StreamFinish("max_tokens")


async def test_minimax_zero_usage_on_every_chunk_and_a_closing_whole_completion() -> None:
    zero = {"total_tokens": 0, "total_characters": 0}
    closing = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "MiniMax-M3",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "delta": {"role": "assistant", "content": "Hello there"},
                "message": {"role": "assistant", "content": "Hello there"},
            }
        ],
        "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10},
    }
    chunks = [
        chunk({"role": "", "reasoning_content": ""}, usage=zero),
        chunk({"content": "Hello"}, usage=zero),
        chunk({"content": " there"}, usage=zero),
        closing,
    ]
    events = await decode_bytes(chunks_sse(chunks), MINIMAX)
    assert [e for e in events if isinstance(e, UsageReport)] == [UsageReport(Usage(input_tokens=8, output_tokens=2))]
    response = accumulate_sync(events)
    assert response.parts == [TextPart(text="Hello there")]
    assert response.stop_reason == "end_turn"
