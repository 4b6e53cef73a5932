"""Property: for any canonical event stream, the message the Anthropic SDK accumulates from our SSE equals the
non-streamed encoding of the canonical accumulation, whatever the interleaving of parts, late deltas,
signature fragments and usage timing."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearmaas.canonical import (
    ImagePart,
    PartDelta,
    PartEnd,
    PartStart,
    SignatureDelta,
    StreamEvent,
    StreamFinish,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolArgumentsDelta,
    ToolCallPart,
    UnknownPart,
    Usage,
    UsageReport,
)

from .harness import comparable, encode_all, expected_message, sdk_final_message

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_tool_ids = st.sampled_from(["toolu_01A", "call_abc123", "functions.Bash:0", "functions.get_weather:12", "cmx_x"]) | (
    st.text(min_size=1, max_size=12)
)
_texts = st.lists(st.text(max_size=6), max_size=4)
_usages = st.builds(
    Usage,
    input_tokens=st.integers(0, 10**6),
    cache_read_tokens=st.integers(0, 10**5),
    cache_write_tokens=st.integers(0, 10**5),
    output_tokens=st.integers(0, 10**5),
    reasoning_tokens=st.integers(0, 100),
    server_tool_calls=st.dictionaries(st.sampled_from(["web_search", "web_fetch"]), st.integers(0, 5), max_size=2),
)


def _split(data: st.DataObject, text: str) -> list[str]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=4)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _part(data: st.DataObject, index: int) -> list[StreamEvent]:
    """One part's events in order: start first, then deltas, with its end anywhere after the start."""
    kind = data.draw(st.sampled_from(["text", "thinking", "redacted", "tool", "unknown", "foreign"]))
    start: StreamEvent
    deltas: list[StreamEvent] = []
    if kind == "text":
        start = PartStart(index, TextPart(text=data.draw(st.sampled_from(["", "Hi "]))))
        deltas = [PartDelta(index, TextDelta(t)) for t in data.draw(_texts)]
    elif kind == "thinking":
        origin = data.draw(st.sampled_from([None, "anthropic", "google"]))
        start = PartStart(index, ThinkingPart(text="", origin=origin))
        deltas = [PartDelta(index, ThinkingDelta(t)) for t in data.draw(_texts)]
        signature = data.draw(st.sampled_from(["", "Er4BCkYICxgCKkCoxqLH", "EqQBCkgIAxABGAIiQF"]))
        deltas += [PartDelta(index, SignatureDelta(s)) for s in _split(data, signature) if signature]
    elif kind == "redacted":
        start = PartStart(index, ThinkingPart(text="", redacted="EmwKAhgBEgy3va3pzix/LafPsn4a", origin="anthropic"))
    elif kind == "tool":
        start = PartStart(index, ToolCallPart(id=data.draw(_tool_ids), name=data.draw(st.text(min_size=1, max_size=8))))
        arguments: dict[str, Any] = data.draw(st.dictionaries(st.text(max_size=6), _json, max_size=4))
        with_braces: bool = data.draw(st.booleans())  # `{}` sent, or no fragment at all
        text = orjson.dumps(arguments).decode() if arguments or with_braces else ""
        deltas = [PartDelta(index, ToolArgumentsDelta(fragment)) for fragment in _split(data, text)]
    elif kind == "unknown":
        query = data.draw(st.text(max_size=10))
        block: dict[str, Any] = {
            "type": "server_tool_use",
            "id": "srvtoolu_1",
            "name": "web_search",
            "input": {"q": query},
        }
        start = PartStart(index, UnknownPart(origin="anthropic_messages", data=block))
    else:
        start = PartStart(index, ImagePart(url="https://img.test/x.png"))
    events: list[StreamEvent] = [start, *deltas]
    if data.draw(st.booleans()):
        events.insert(data.draw(st.integers(1, len(events))), PartEnd(index))
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_sdk_accumulation_equals_canonical_accumulation(data: st.DataObject) -> None:
    queues = [_part(data, i) for i in range(data.draw(st.integers(0, 5)))]
    start_usage = data.draw(st.none() | _usages)
    events: list[StreamEvent] = [StreamStart(id="msg_prop", model="claude-prop", usage=start_usage)]
    started = 0
    # Merge the parts: starts in index order, every other event after its own part's start.
    while any(queues):
        eligible = [i for i, queue in enumerate(queues) if queue and i <= started]
        i = data.draw(st.sampled_from(eligible))
        event = queues[i].pop(0)
        if isinstance(event, PartStart):
            started += 1
        events.append(event)
    reports = data.draw(st.lists(_usages, max_size=2))
    finish = data.draw(
        st.none()
        | st.builds(
            StreamFinish,
            stop_reason=st.sampled_from(["end_turn", "max_tokens", "stop_sequence", "tool_use", "content_filter"]),
            stop_sequence=st.none() | st.just("###"),
        )
    )
    late: list[StreamEvent] = [UsageReport(usage) for usage in reports]
    if finish is not None:
        late.append(finish)
    for event in late:
        events.insert(data.draw(st.integers(1, len(events))), event)
    estimate = data.draw(st.integers(0, 5000))

    got = comparable(sdk_final_message(encode_all(events, estimate=estimate)))
    expected = comparable(expected_message(events))
    if start_usage is None and not reports:
        expected["usage"]["input_tokens"] = estimate  # announced in message_start; nothing ever replaced it
    assert got == expected
