from __future__ import annotations

import orjson
import pytest

from clearmaas.providers.google.call_ids import id_with_details
from clearmaas.canonical import (
    PartDelta,
    PartEnd,
    PartStart,
    SignatureDelta,
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
    Usage,
    UsageReport,
    accumulate_sync,
)
from clearmaas.errors import UpstreamHTTPError, UpstreamProtocolError
from clearmaas.providers.google.response import tool_call_id

from .recordings import chunk_lines, decode_lines, decode_recording

RECORDINGS = [
    "google-text.chunks.txt",
    "google-reasoning.chunks.txt",
    "google-tool-call.chunks.txt",
    "google-stream-tool-call-arguments.chunks.txt",
]


def _signature(name: str, line: int) -> str:
    parts = orjson.loads(chunk_lines(name)[line])["candidates"][0]["content"]["parts"]
    return str(parts[0]["thoughtSignature"])


async def test_text_recording_exact_events() -> None:
    events = await decode_recording("google-text.chunks.txt")
    signature = _signature("google-text.chunks.txt", 2)
    assert events == [
        StreamStart(id="bH6LaZW8Fp_3nsEPqtaSwQ4", model="gemini-3-pro-preview"),
        PartStart(0, TextPart(text="")),
        PartDelta(0, TextDelta("There are **3**")),
        UsageReport(Usage(input_tokens=9, output_tokens=5 + 185, reasoning_tokens=185)),
        PartDelta(0, TextDelta(' "r"s in strawberry.\n\nst**r**awbe**rr**y')),
        UsageReport(Usage(input_tokens=9, output_tokens=23 + 185, reasoning_tokens=185)),
        # Gemini 3 ends the stream with an empty text part carrying the signature; it stays a part of its own.
        PartEnd(0),
        PartStart(1, TextPart(text="", details={"google": {"thoughtSignature": signature}})),
        PartEnd(1),
        StreamFinish("end_turn"),
    ]


async def test_reasoning_recording_usage_includes_thoughts() -> None:
    events = await decode_recording("google-reasoning.chunks.txt")
    response = accumulate_sync(events)
    assert response.id == "dX6LadKVC7SZ28oPr9yJoQs" and response.model == "gemini-3-pro-preview"
    assert response.usage == Usage(input_tokens=9, output_tokens=29 + 256, reasoning_tokens=256)
    assert response.usage.total_tokens == 294  # the recording's totalTokenCount
    assert [type(p) for p in response.parts] == [TextPart, TextPart]
    first = response.parts[0]
    assert isinstance(first, TextPart)
    assert first.text == 'There are **3** "r"s in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y.'
    assert response.stop_reason == "end_turn"


async def test_tool_call_recording_exact_events() -> None:
    events = await decode_recording("google-tool-call.chunks.txt")
    signature = _signature("google-tool-call.chunks.txt", 0)
    call_id = id_with_details(tool_call_id("b36LacjwM668nsEP2tbsgQQ", 0, "weather"), {"thoughtSignature": signature})
    assert events == [
        StreamStart(id="b36LacjwM668nsEP2tbsgQQ", model="gemini-3-pro-preview"),
        PartStart(0, ToolCallPart(id=call_id, name="weather", details={"google": {"thoughtSignature": signature}})),
        PartDelta(0, ToolArgumentsDelta('{"location":"San Francisco"}')),
        PartEnd(0),
        UsageReport(Usage(input_tokens=29, output_tokens=15 + 45, reasoning_tokens=45)),
        StreamFinish("tool_use"),  # the empty text part of the last record adds nothing
    ]


async def test_streamed_arguments_recording_assembles_each_call() -> None:
    name = "google-stream-tool-call-arguments.chunks.txt"
    events = await decode_recording(name)
    response = accumulate_sync(events)
    response_id = "dqHOab6xGLzWodAPkPuViA4"
    assert response.parts == [
        ToolCallPart(
            id=id_with_details(tool_call_id(response_id, 0, "getWeather"), {"thoughtSignature": _signature(name, 0)}),
            name="getWeather",
            arguments='{"location":"Boston"}',
            details={"google": {"thoughtSignature": _signature(name, 0)}},
        ),
        ToolCallPart(
            id=tool_call_id(response_id, 1, "getWeather"), name="getWeather", arguments='{"location":"San Francisco"}'
        ),
    ]
    assert response.stop_reason == "tool_use"
    assert response.model == "gemini-3.1-pro-preview"
    # Records that carry only trafficType report no usage; the last one carries it all.
    assert [e for e in events if isinstance(e, UsageReport)] == [
        UsageReport(Usage(input_tokens=26, output_tokens=23 + 132, reasoning_tokens=132))
    ]
    # One arguments delta per call, sent when the call completes.
    assert [e.delta for e in events if isinstance(e, PartDelta)] == [
        ToolArgumentsDelta('{"location":"Boston"}'),
        ToolArgumentsDelta('{"location":"San Francisco"}'),
    ]


@pytest.mark.parametrize("name", RECORDINGS)
async def test_any_byte_split_gives_the_same_events(name: str) -> None:
    assert await decode_recording(name, split=7) == await decode_recording(name)


@pytest.mark.parametrize("name", RECORDINGS)
async def test_stream_matches_its_parts_order_and_ends_with_finish(name: str) -> None:
    events = await decode_recording(name)
    assert isinstance(events[0], StreamStart) and isinstance(events[-1], StreamFinish)
    opened = [e.index for e in events if isinstance(e, PartStart)]
    closed = [e.index for e in events if isinstance(e, PartEnd)]
    assert opened == closed == list(range(len(opened)))


def _chunk(parts: list[dict[str, object]], finish: str | None = None, **extra: object) -> str:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finishReason"] = finish
    return orjson.dumps(
        {"candidates": [candidate], "responseId": "r", "modelVersion": "gemini-2.5-pro", **extra}
    ).decode()


async def test_thoughts_stream_as_google_thinking_with_signature() -> None:
    events = await decode_lines(
        [
            _chunk([{"text": "Counting ", "thought": True}]),
            _chunk([{"text": "letters.", "thought": True, "thoughtSignature": "sig-1"}]),
            _chunk([{"text": "Three."}], "STOP"),
        ]
    )
    assert events[1:] == [
        PartStart(0, ThinkingPart(text="", origin="google")),
        PartDelta(0, ThinkingDelta("Counting ")),
        PartDelta(0, ThinkingDelta("letters.")),
        PartDelta(0, SignatureDelta("sig-1")),
        PartEnd(0),
        PartStart(1, TextPart(text="")),
        PartDelta(1, TextDelta("Three.")),
        PartEnd(1),
        StreamFinish("end_turn"),
    ]
    assert accumulate_sync(events).parts[0] == ThinkingPart(
        text="Counting letters.", signature="sig-1", origin="google"
    )


async def test_signature_on_the_first_text_fragment_rides_on_that_part() -> None:
    events = await decode_lines([_chunk([{"text": "Hi", "thoughtSignature": "s"}]), _chunk([{"text": "!"}], "STOP")])
    assert accumulate_sync(events).parts == [TextPart(text="Hi!", details={"google": {"thoughtSignature": "s"}})]


async def test_parallel_calls_in_one_record() -> None:
    events = await decode_lines(
        [
            _chunk(
                [{"functionCall": {"name": "a", "args": {"x": 1}}}, {"functionCall": {"name": "b", "args": {}}}], "STOP"
            )
        ]
    )
    response = accumulate_sync(events)
    assert [(p.name, p.arguments) for p in response.parts if isinstance(p, ToolCallPart)] == [
        ("a", '{"x":1}'),
        ("b", "{}"),
    ]
    assert response.stop_reason == "tool_use"


async def test_partial_arguments_of_every_type_and_path() -> None:
    fragments = [
        {"jsonPath": "$.query", "stringValue": "new ", "willContinue": True},
        {"jsonPath": "$.query", "stringValue": "york"},
        {"jsonPath": "$.limit", "numberValue": 5.0},
        {"jsonPath": "$.ratio", "numberValue": 0.5},
        {"jsonPath": "$.exact", "boolValue": False},
        {"jsonPath": "$.cursor", "nullValue": "NULL_VALUE"},
        {"jsonPath": "$.filters[1].tag", "stringValue": "b"},
        {"jsonPath": "$['odd key']", "stringValue": "v"},
        {"jsonPath": "not a path", "stringValue": "ignored"},
    ]
    events = await decode_lines(
        [
            _chunk([{"functionCall": {"name": "search", "willContinue": True}}]),
            _chunk([{"functionCall": {"partialArgs": fragments, "willContinue": True}}]),
            _chunk([{"functionCall": {}}], "STOP"),
        ]
    )
    [call] = accumulate_sync(events).parts
    assert isinstance(call, ToolCallPart)
    assert orjson.loads(call.arguments) == {
        "query": "new york",
        "limit": 5,
        "ratio": 0.5,
        "exact": False,
        "cursor": None,
        "filters": [None, {"tag": "b"}],
        "odd key": "v",
    }


async def test_error_record_in_the_stream_ends_it() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    events = await decode_lines(
        [_chunk([{"text": "par"}]), orjson.dumps(error).decode(), _chunk([{"text": "x"}], "STOP")]
    )
    assert isinstance(events[-1], StreamError)
    failure = events[-1].error
    assert isinstance(failure, UpstreamHTTPError)
    assert failure.upstream_status == 503 and failure.status == 502 and failure.upstream_type == "UNAVAILABLE"
    assert not any(isinstance(e, StreamFinish) for e in events)


async def test_stream_cut_before_finish_is_an_error() -> None:
    events = await decode_lines([_chunk([{"text": "half"}])])
    assert isinstance(events[-1], StreamError) and isinstance(events[-1].error, UpstreamProtocolError)


async def test_malformed_function_call_finish_is_an_error() -> None:
    events = await decode_lines([_chunk([], "MALFORMED_FUNCTION_CALL")])
    assert isinstance(events[-1], StreamError)
    assert "MALFORMED_FUNCTION_CALL" in events[-1].error.message


async def test_blocked_prompt_finishes_with_content_filter() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
    }
    events = await decode_lines([orjson.dumps(blocked).decode()])
    assert events == [StreamStart(id="", model=""), UsageReport(Usage(input_tokens=4)), StreamFinish("content_filter")]


async def test_non_json_event_is_a_protocol_error() -> None:
    events: list[StreamEvent] = await decode_lines(["{not json"])
    assert len(events) == 1 and isinstance(events[0], StreamError)


async def test_grounding_on_the_last_record_is_billed() -> None:
    last = orjson.loads(
        _chunk([{"text": "."}], "STOP", usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 1})
    )
    last["candidates"][0]["groundingMetadata"] = {"webSearchQueries": ["q1"]}
    events = await decode_lines([_chunk([{"text": "Sunny"}]), orjson.dumps(last).decode()])
    assert accumulate_sync(events).usage.server_tool_calls == {"web_search": 1}


async def test_empty_thought_opens_no_part() -> None:
    events = await decode_lines([_chunk([{"text": "", "thought": True}]), _chunk([{"text": "ok"}], "STOP")])
    assert accumulate_sync(events).parts == [TextPart(text="ok")]
