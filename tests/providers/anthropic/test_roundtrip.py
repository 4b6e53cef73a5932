"""Property: a canonical response written as Anthropic would send it decodes back to itself, whole or streamed.

The encoders here are test-only: they play Anthropic's part.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from clearmaas.canonical import (
    ChatResponse,
    Part,
    StopReason,
    StreamEvent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    UnknownPart,
    Usage,
    accumulate_sync,
)
from clearmaas.providers.anthropic import decode_response
from clearmaas.providers.anthropic.stream import StreamDecoder

from .recordings import sse

_WIRE_STOP = {"content_filter": "refusal"}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
counts = st.integers(min_value=0, max_value=10**7)

texts = st.builds(TextPart, text=st.text(min_size=1))
cited_texts = st.builds(
    lambda text, citations: TextPart(text=text, details={"anthropic": {"citations": citations}}),
    st.text(min_size=1),
    st.lists(json_objects.map(lambda o: {"type": "web_search_result_location", **o}), min_size=1, max_size=2),
)
thinking = st.builds(
    lambda text, signature: ThinkingPart(text=text, signature=signature, origin="anthropic"),
    st.text(),
    st.text(min_size=1),
)
redacted = st.builds(lambda data: ThinkingPart(text="", redacted=data, origin="anthropic"), st.text(min_size=1))
tool_calls = st.builds(
    lambda id, name, arguments: ToolCallPart(id=id, name=name, arguments=orjson.dumps(arguments).decode()),
    st.from_regex(r"toolu_[A-Za-z0-9_-]{1,24}", fullmatch=True),
    st.text(min_size=1, max_size=20),
    json_objects,
)
unknowns = st.builds(
    lambda kind, fields: UnknownPart(origin="anthropic_messages", data={**fields, "type": kind}),
    st.sampled_from(["server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "container_upload"]),
    json_objects,
)
usages = st.builds(
    Usage,
    input_tokens=counts,
    cache_read_tokens=counts,
    cache_write_tokens=counts,
    output_tokens=counts,
    reasoning_tokens=counts,
    server_tool_calls=st.dictionaries(st.from_regex(r"[a-z_]{1,16}", fullmatch=True), st.integers(1, 50), max_size=2),
)
stop_reasons: st.SearchStrategy[StopReason] = st.sampled_from(
    ["end_turn", "max_tokens", "stop_sequence", "tool_use", "content_filter", "pause_turn"]
)


def responses(parts: st.SearchStrategy[Part]) -> st.SearchStrategy[ChatResponse]:
    return st.builds(
        ChatResponse,
        id=st.text(min_size=1, max_size=30),
        model=st.text(min_size=1, max_size=30),
        parts=st.lists(parts, max_size=6),
        stop_reason=stop_reasons,
        stop_sequence=st.none() | st.text(min_size=1, max_size=5),
        usage=usages,
    )


def wire_block(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        block: dict[str, Any] = {"type": "text", "text": part.text}
        if part.details:
            block["citations"] = part.details["anthropic"]["citations"]
        return block
    if isinstance(part, ThinkingPart):
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.redacted}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    if isinstance(part, ToolCallPart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": orjson.loads(part.arguments)}
    assert isinstance(part, UnknownPart)
    return part.data


def wire_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"thinking_tokens": usage.reasoning_tokens},
        "server_tool_use": {f"{name}_requests": n for name, n in usage.server_tool_calls.items()},
        "service_tier": "standard",
    }


def to_anthropic_json(response: ChatResponse) -> bytes:
    return orjson.dumps(
        {
            "id": response.id,
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": [wire_block(part) for part in response.parts],
            "stop_reason": _WIRE_STOP.get(response.stop_reason, response.stop_reason),
            "stop_sequence": response.stop_sequence,
            "usage": wire_usage(response.usage),
        }
    )


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def to_anthropic_events(response: ChatResponse, size: int) -> list[dict[str, Any]]:
    usage = wire_usage(response.usage)
    start_usage = {
        key: usage[key] for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    }
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": response.id,
                "type": "message",
                "role": "assistant",
                "model": response.model,
                "content": [],
                "stop_reason": None,
                "usage": {**start_usage, "output_tokens": 1},
            },
        },
        {"type": "ping"},
    ]
    for index, part in enumerate(response.parts):
        deltas: list[dict[str, Any]] = []
        if isinstance(part, TextPart):
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(part.text, size)]
        elif isinstance(part, ThinkingPart) and not part.redacted:
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _pieces(part.text, size)]
            deltas.append({"type": "signature_delta", "signature": part.signature})
        elif isinstance(part, ToolCallPart):
            start = {"type": "tool_use", "id": part.id, "name": part.name, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": piece} for piece in _pieces(part.arguments, size)]
        else:
            start = wire_block(part)
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events += [{"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": _WIRE_STOP.get(response.stop_reason, response.stop_reason),
                "stop_sequence": response.stop_sequence,
            },
            "usage": {key: value for key, value in usage.items() if key not in start_usage},
        }
    )
    events.append({"type": "message_stop"})
    return events


@settings(max_examples=150, deadline=None)
@given(responses(texts | cited_texts | thinking | redacted | tool_calls | unknowns))
def test_whole_response_round_trip(response: ChatResponse) -> None:
    assert decode_response(to_anthropic_json(response)) == response


@settings(max_examples=150, deadline=None)
@given(responses(texts | thinking | redacted | tool_calls | unknowns), st.integers(1, 7))
def test_streamed_response_round_trip(response: ChatResponse, size: int) -> None:
    decoder = StreamDecoder()
    events: list[StreamEvent] = []
    for payload in to_anthropic_events(response, size):
        events += decoder.feed(sse(payload))
    events += decoder.close()
    assert decoder.done is False
    assert accumulate_sync(events) == response
