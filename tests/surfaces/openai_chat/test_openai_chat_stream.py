"""encode_stream, read back by the official OpenAI SDK (its HTTP stream decoding and ChatCompletionStreamState)
and compared with `clearmaas.canonical.accumulate` of the same events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from clearmaas.canonical import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    PartDelta,
    PartEnd,
    PartStart,
    SignatureDelta,
    StopReason,
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
from clearmaas.errors import RateLimited, UpstreamConnectError, UpstreamHTTPError
from clearmaas.surfaces.base import StreamContext
from clearmaas.surfaces.openai_chat import SURFACE, encode_stream

CREATED = 1727347609
FIXTURES = Path(__file__).parents[2] / "fixtures" / "openai"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
          "tool_use": "tool_calls", "content_filter": "content_filter"}


def context(*, include_usage: bool, created: int = CREATED) -> StreamContext:
    request = ChatRequest(model="openai/gpt-4o", messages=[], origin="openai_chat", stream=True,
                          include_usage=include_usage)
    return StreamContext(request=request, created=created)


async def _aiter(events: Sequence[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


def encode(events: Sequence[StreamEvent], *, include_usage: bool, created: int = CREATED) -> bytes:
    async def collect() -> bytes:
        stream = encode_stream(_aiter(events), context(include_usage=include_usage, created=created))
        return b"".join([chunk async for chunk in stream])

    return asyncio.run(collect())


def frames(body: bytes) -> list[Any]:
    """Each SSE frame's data, parsed; `[DONE]` stays a string. Also checks the framing itself."""
    assert body.endswith(b"\n\n")
    out: list[Any] = []
    for frame in body[:-2].split(b"\n\n"):
        assert frame.startswith(b"data: ") and b"\n" not in frame  # OpenAI SSE: one data line, no event line
        data = frame[len(b"data: "):]
        out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


@dataclass
class SDKResult:
    chunks: list[ChatCompletionChunk]
    state: ChatCompletionStreamState[Any]


class SDK:
    """An `openai.OpenAI` client whose HTTP transport answers with the bytes under test."""

    def __init__(self) -> None:
        self.body = b""
        transport = httpx2.MockTransport(
            lambda request: httpx2.Response(200, content=self.body, headers={"content-type": "text/event-stream"})
        )
        self.client = openai.OpenAI(
            api_key="sk-clearmaas-test", base_url="http://gateway.test/v1", max_retries=0,
            http_client=httpx2.Client(transport=transport),
        )

    def read(self, body: bytes) -> SDKResult:
        self.body = body
        state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
        chunks: list[ChatCompletionChunk] = []
        stream = self.client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        for chunk in stream:
            chunks.append(chunk)
            state.handle_chunk(chunk)
        return SDKResult(chunks, state)


@pytest.fixture(scope="module")
def sdk() -> Iterator[SDK]:
    harness = SDK()
    yield harness
    harness.client.close()


def sdk_view(result: SDKResult) -> dict[str, Any]:
    # The accumulated snapshot: `get_final_completion()` would add only structured-output parsing, and it
    # refuses `length` / `content_filter` finishes.
    completion = result.state.current_completion_snapshot
    [choice] = completion.choices
    message = choice.message
    return {
        "id": completion.id,
        "model": completion.model,
        "content": message.content or "",
        "reasoning": (message.model_extra or {}).get("reasoning_content"),
        "tool_calls": [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []],
        "finish_reason": choice.finish_reason,
        "usage": None if completion.usage is None else completion.usage.model_dump(exclude_none=True),
    }


def canonical_view(response: ChatResponse, *, include_usage: bool) -> dict[str, Any]:
    texts = [p.text for p in response.parts if isinstance(p, TextPart)]
    thinking = "".join(p.text for p in response.parts if isinstance(p, ThinkingPart))
    calls = [(p.id, p.name, p.arguments) for p in response.parts if isinstance(p, ToolCallPart)]
    finish = FINISH[response.stop_reason]
    usage = response.usage
    expected_usage = None
    if include_usage:
        expected_usage = {
            "prompt_tokens": usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens}
            | ({"cache_write_tokens": usage.cache_write_tokens} if usage.cache_write_tokens else {}),
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        }
    return {
        "id": "chatcmpl-" + response.id,
        "model": response.model,
        "content": "".join(texts),
        "reasoning": thinking or None,
        "tool_calls": calls,
        "finish_reason": "tool_calls" if calls and finish == "stop" else finish,
        "usage": expected_usage,
    }


PARALLEL: list[StreamEvent] = [
    StreamStart("abc", "gpt-4o-2024-08-06", usage=Usage(input_tokens=40)),
    PartStart(0, TextPart("")),
    PartDelta(0, TextDelta("Checking both.")),
    PartEnd(0),
    PartStart(1, ToolCallPart(id="call_a", name="get_weather")),
    PartDelta(1, ToolArgumentsDelta('{"city":')),
    PartStart(2, ToolCallPart(id="call_b", name="get_time")),
    PartDelta(2, ToolArgumentsDelta('{"tz":')),
    PartDelta(1, ToolArgumentsDelta('"Paris"}')),  # late fragment for the first call, after the second opened
    PartDelta(2, ToolArgumentsDelta('"CET"}')),
    PartEnd(2),
    StreamFinish("tool_use"),
    UsageReport(Usage(input_tokens=44, output_tokens=10)),
    UsageReport(Usage(input_tokens=44, cache_read_tokens=6, output_tokens=16)),  # cumulative: this one wins
]


def test_parallel_interleaved_tool_calls_reach_the_sdk_intact(sdk: SDK) -> None:
    result = sdk.read(encode(PARALLEL, include_usage=True))
    view = sdk_view(result)
    assert view["tool_calls"] == [("call_a", "get_weather", '{"city":"Paris"}'), ("call_b", "get_time", '{"tz":"CET"}')]
    assert view["content"] == "Checking both."
    assert view["finish_reason"] == "tool_calls"
    assert view["usage"]["prompt_tokens"] == 50 and view["usage"]["completion_tokens"] == 16
    assert view == canonical_view(accumulate_sync(PARALLEL), include_usage=True)


def test_chunk_layout_role_first_consistent_framing_and_usage_last() -> None:
    data = frames(encode(PARALLEL, include_usage=True))
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in chunks} == {
        ("chatcmpl-abc", "chat.completion.chunk", CREATED, "gpt-4o-2024-08-06")
    }
    assert chunks[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    ]
    first_call = chunks[2]["choices"][0]["delta"]["tool_calls"]
    assert first_call == [{"index": 0, "id": "call_a", "type": "function",
                           "function": {"name": "get_weather", "arguments": ""}}]
    late = chunks[6]["choices"][0]["delta"]["tool_calls"]
    assert late == [{"index": 0, "function": {"arguments": '"Paris"}'}}]  # routed by part, not to "the latest"
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 66
    assert usage["usage"]["prompt_tokens_details"] == {"cached_tokens": 6}


def test_without_include_usage_no_chunk_mentions_usage(sdk: SDK) -> None:
    body = encode(PARALLEL, include_usage=False)
    assert all("usage" not in chunk for chunk in frames(body)[:-1])
    result = sdk.read(body)
    assert all(chunk.usage is None for chunk in result.chunks)
    assert sdk_view(result) == canonical_view(accumulate_sync(PARALLEL), include_usage=False)


REASONING: list[StreamEvent] = [
    StreamStart("msg_01", "claude-sonnet-4-6"),
    PartStart(0, ThinkingPart("")),
    PartDelta(0, ThinkingDelta("Let me ")),
    PartDelta(0, ThinkingDelta("think.")),
    PartDelta(0, SignatureDelta("EqQBCkYIBxgCKkB")),
    PartEnd(0),
    PartStart(1, ThinkingPart("", redacted="opaque-data")),
    PartEnd(1),
    PartStart(2, TextPart("")),
    PartDelta(2, TextDelta("42")),
    PartEnd(2),
    PartStart(3, ImagePart(url="https://example.com/chart.png")),
    PartEnd(3),
    StreamFinish("max_tokens"),
]


def test_reasoning_streams_as_reasoning_content_and_signatures_are_dropped(sdk: SDK) -> None:
    body = encode(REASONING, include_usage=False)
    assert b"EqQBCkYIBxgCKkB" not in body and b"opaque-data" not in body
    deltas = [c["choices"][0]["delta"] for c in frames(body)[:-1]]
    assert deltas[1:4] == [{"reasoning_content": "Let me "}, {"reasoning_content": "think."}, {"content": "42"}]
    view = sdk_view(sdk.read(body))
    assert view["reasoning"] == "Let me think." and view["content"] == "42" and view["finish_reason"] == "length"
    assert view == canonical_view(accumulate_sync(REASONING), include_usage=False)


def test_whole_tool_call_and_stray_deltas(sdk: SDK) -> None:
    events: list[StreamEvent] = [
        StreamStart("chatcmpl-keep", "gemini-2.5-flash"),
        PartStart(0, ToolCallPart(id="call_0", name="lookup", arguments='{"q":"x"}')),  # Gemini sends calls whole
        PartEnd(0),
        PartDelta(7, ToolArgumentsDelta("{}")),  # unknown part: dropped, not given to call 0
        PartDelta(0, ToolArgumentsDelta("")),
        StreamFinish("end_turn"),
        StreamFinish("max_tokens"),  # a second finish is ignored
    ]
    body = encode(events, include_usage=False)
    view = sdk_view(sdk.read(body))
    assert view["id"] == "chatcmpl-keep"
    assert view["tool_calls"] == [("call_0", "lookup", '{"q":"x"}')]
    assert view["finish_reason"] == "tool_calls"
    assert len(frames(body)) == 4  # role, call, finish, [DONE]


def test_usage_requested_but_never_reported_is_zero_and_stream_without_start_still_frames() -> None:
    data = frames(encode([PartStart(0, TextPart("")), PartDelta(0, TextDelta("hi")), StreamFinish("end_turn")],
                         include_usage=True))
    assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert data[0]["model"] == "openai/gpt-4o" and data[0]["id"].startswith("chatcmpl-")
    assert data[-2]["usage"]["total_tokens"] == 0 and data[-1] == "[DONE]"
    empty = frames(encode([], include_usage=False))
    assert [d if d == "[DONE]" else d["choices"][0]["delta"] for d in empty] == [
        {"role": "assistant", "content": ""},
        "[DONE]",
    ]


def test_mid_stream_error_raises_api_error_in_the_sdk_and_has_no_done(sdk: SDK) -> None:
    error = UpstreamHTTPError("overloaded", upstream_status=529)
    events: list[StreamEvent] = [StreamStart("x", "m"), PartStart(0, TextPart("")), PartDelta(0, TextDelta("partial")),
              StreamError(error), PartDelta(0, TextDelta("never sent"))]
    body = encode(events, include_usage=True)
    assert b"[DONE]" not in body and b"never sent" not in body
    assert frames(body)[-1] == {"error": {"message": "overloaded", "type": "upstream_error",
                                          "code": "upstream_error", "param": None}}
    seen: list[ChatCompletionChunk] = []
    sdk.body = body
    with pytest.raises(openai.APIError) as caught:
        for chunk in sdk.client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                                         stream=True):
            seen.append(chunk)
    assert caught.value.message == "overloaded"
    assert caught.value.code == "upstream_error" and caught.value.type == "upstream_error"
    assert [c.choices[0].delta.content for c in seen] == ["", "partial"]


def test_error_as_first_event_is_the_only_frame() -> None:
    data = frames(encode([StreamError(RateLimited("slow down", retry_after=3))], include_usage=True))
    assert data == [{"error": {"message": "slow down", "type": "clearmaas_api_error",
                               "code": "rate_limit_exceeded", "param": None}}]


async def _failing(events: Sequence[StreamEvent], error: Exception) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event
    raise error


async def test_raised_gateway_error_before_first_byte_propagates_after_it_goes_in_band() -> None:
    early = encode_stream(_failing([], UpstreamConnectError("refused")), context(include_usage=False))
    with pytest.raises(UpstreamConnectError):
        await early.__anext__()
    late = encode_stream(_failing([StreamStart("x", "m")], UpstreamConnectError("reset")), context(include_usage=False))
    chunks = [chunk async for chunk in late]
    assert len(chunks) == 2 and chunks[-1] == SURFACE.encode_stream_error(UpstreamConnectError("reset"))


async def test_each_chunk_is_yielded_as_soon_as_its_event_arrives() -> None:
    queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

    async def live() -> AsyncIterator[StreamEvent]:
        while (event := await queue.get()) is not None:
            yield event

    stream = SURFACE.encode_stream(live(), context(include_usage=False))

    async def next_after(event: StreamEvent | None) -> bytes:
        await queue.put(event)
        return await asyncio.wait_for(stream.__anext__(), timeout=1)  # would time out if the encoder buffered

    assert b'"role":"assistant"' in await next_after(StreamStart("x", "m"))
    await queue.put(PartStart(0, TextPart("")))
    assert b'"content":"Hel"' in await next_after(PartDelta(0, TextDelta("Hel")))
    assert b'"content":"lo"' in await next_after(PartDelta(0, TextDelta("lo")))
    assert b'"finish_reason":"stop"' in await next_after(StreamFinish("end_turn"))
    assert await next_after(None) == b"data: [DONE]\n\n"


def test_same_chunk_structure_as_a_recorded_openai_stream(sdk: SDK) -> None:
    recorded = [orjson.loads(line) for line in (FIXTURES / "openai-text.chunks.txt").read_bytes().splitlines()]
    first = recorded[0]
    events: list[StreamEvent] = [StreamStart(first["id"], first["model"]), PartStart(0, TextPart(""))]
    for chunk in recorded[1:]:
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            events.append(PartDelta(0, TextDelta(chunk["choices"][0]["delta"]["content"])))
    wire = recorded[-1]["usage"]
    events += [PartEnd(0), StreamFinish("end_turn"),
               UsageReport(Usage(input_tokens=wire["prompt_tokens"], output_tokens=wire["completion_tokens"]))]
    ours = frames(encode(events, include_usage=True, created=first["created"]))
    assert ours[-1] == "[DONE]" and len(ours) - 1 == len(recorded)
    vendor_only = {"service_tier", "system_fingerprint", "obfuscation", "refusal", "audio_tokens",
                   "accepted_prediction_tokens", "rejected_prediction_tokens"}

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k not in vendor_only}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return value

    for mine, theirs in zip(ours[:-1], recorded, strict=True):
        assert shape(mine) == shape(theirs)  # same ids, deltas, finish and usage, key for key
    assert sdk_view(sdk.read(encode(events, include_usage=True)))["content"] == "".join(
        c["choices"][0]["delta"].get("content") or "" for c in recorded if c["choices"]
    )


# --- property: any canonical stream reads back, through the SDK, as its canonical accumulation ---------------

_fragment = st.text(max_size=6)
_stop: st.SearchStrategy[StopReason] = st.sampled_from(list(FINISH))
_usage = st.builds(Usage, input_tokens=st.integers(0, 10**6), cache_read_tokens=st.integers(0, 10**5),
                   cache_write_tokens=st.integers(0, 10**5), output_tokens=st.integers(0, 10**5),
                   reasoning_tokens=st.integers(0, 10**4))


@st.composite
def canonical_streams(draw: Callable[..., Any]) -> list[StreamEvent]:
    """StreamStart, parts opened in order (a new part closes the open one), text/thinking deltas while
    open, tool-argument fragments possibly late and interleaved, usage anywhere, then a finish."""
    kinds = draw(st.lists(st.sampled_from(["text", "thinking", "tool"]), max_size=5))
    plans = [draw(st.lists(_fragment, max_size=4)) for _ in kinds]
    events: list[StreamEvent] = [StreamStart(draw(st.text("abcdef0123456789", min_size=1, max_size=8)),
                                             draw(st.sampled_from(["gpt-4o", "claude-sonnet-4-6", "deepseek-chat"])),
                                             usage=draw(st.none() | _usage))]
    started, open_part = 0, None
    while True:
        options: list[tuple[str, int]] = []
        if started < len(kinds):
            options.append(("start", started))
        if open_part is not None and kinds[open_part] != "tool" and plans[open_part]:
            options.append(("delta", open_part))
        options += [("delta", k) for k in range(started) if kinds[k] == "tool" and plans[k]]
        if draw(st.booleans()) and draw(st.booleans()):
            options.append(("usage", -1))
        if not options:
            break
        action, k = draw(st.sampled_from(options))
        if action == "usage":
            events.append(UsageReport(draw(_usage)))
        elif action == "start":
            if open_part is not None:
                events.append(PartEnd(open_part))
            kind = kinds[k]
            if kind == "tool":
                events.append(PartStart(k, ToolCallPart(id=f"call_{k}", name=draw(st.sampled_from(["f", "get_x"])),
                                                        arguments=draw(st.sampled_from(["", "{"])))))
            else:
                events.append(PartStart(k, TextPart("") if kind == "text" else ThinkingPart("")))
            open_part, started = k, started + 1
        else:
            fragment = plans[k].pop(0)
            if kinds[k] == "text":
                events.append(PartDelta(k, TextDelta(fragment)))
            elif kinds[k] == "thinking":
                events.append(PartDelta(k, ThinkingDelta(fragment)))
                if draw(st.booleans()):
                    events.append(PartDelta(k, SignatureDelta("sig")))
            else:
                events.append(PartDelta(k, ToolArgumentsDelta(fragment)))
    if open_part is not None:
        events.append(PartEnd(open_part))
    tail: list[StreamEvent] = [StreamFinish(draw(_stop))]
    if draw(st.booleans()):
        tail.insert(draw(st.integers(0, 1)), UsageReport(draw(_usage)))  # usage before or after the finish
    return events + tail


@settings(max_examples=150, deadline=None)
@given(events=canonical_streams(), include_usage=st.booleans())
def test_property_sdk_accumulation_equals_canonical_accumulation(
    sdk: SDK, events: list[StreamEvent], include_usage: bool
) -> None:
    body = encode(events, include_usage=include_usage)
    data = frames(body)
    assert data[-1] == "[DONE]"
    assert len({(c["id"], c["created"], c["model"]) for c in data[:-1]}) == 1
    assert all(("usage" in c) is include_usage for c in data[:-1])
    assert sum(1 for c in data[:-1] if c["choices"] and c["choices"][0]["finish_reason"]) == 1
    assert sdk_view(sdk.read(body)) == canonical_view(accumulate_sync(events), include_usage=include_usage)
