from __future__ import annotations

from clearmaas.canonical import (
    PartDelta,
    PartEnd,
    PartStart,
    StreamAssembler,
    StreamFinish,
    StreamStart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    accumulate_sync,
)
from clearmaas.canonical.tool_ids import restore_tool_id, safe_tool_id


def test_sequential_parts_get_increasing_indices_and_close_in_order() -> None:
    asm = StreamAssembler()
    events = []
    events += asm.thinking("r", "hmm")
    events += asm.text("c", "Hello")
    events += asm.text("c", " world")
    events += asm.tool_call(("tool", 0), id="call_1", name="get_weather")
    events += asm.tool_arguments(("tool", 0), '{"city":')
    events += asm.tool_arguments(("tool", 0), '"Paris"}')
    events += asm.end_all()
    kinds = [(type(e).__name__, getattr(e, "index", None)) for e in events]
    assert kinds == [
        ("PartStart", 0), ("PartDelta", 0),
        ("PartEnd", 0), ("PartStart", 1), ("PartDelta", 1), ("PartDelta", 1),
        ("PartEnd", 1), ("PartStart", 2), ("PartDelta", 2), ("PartDelta", 2),
        ("PartEnd", 2),
    ]
    response = accumulate_sync([StreamStart(id="x", model="m"), *events, StreamFinish("tool_use")])
    assert response.parts == [
        ThinkingPart(text="hmm"),
        TextPart(text="Hello world"),
        ToolCallPart(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
    ]
    assert response.stop_reason == "tool_use"


def test_interleaved_tool_fragments_go_to_their_own_call() -> None:
    asm = StreamAssembler()
    events = []
    events += asm.tool_call(0, id="a", name="one")
    events += asm.tool_arguments(0, '{"x":')
    events += asm.tool_call(1, id="b", name="two")
    events += asm.tool_arguments(0, "1}")  # late fragment for the first call
    events += asm.tool_arguments(1, '{"y":2}')
    events += asm.end_all()
    late = [e for e in events if isinstance(e, PartDelta) and e.index == 0]
    assert len(late) == 2
    response = accumulate_sync(events)
    assert [p.arguments for p in response.parts] == ['{"x":1}', '{"y":2}']  # type: ignore[union-attr]


def test_empty_text_never_opens_a_part() -> None:
    asm = StreamAssembler()
    assert asm.text("c", "") == []
    assert asm.thinking("r", "") == []
    assert asm.end_all() == []


def test_whole_part_starts_and_ends() -> None:
    asm = StreamAssembler()
    events = asm.whole(3, ThinkingPart(text="", redacted="opaque", origin="anthropic"))
    assert isinstance(events[0], PartStart) and isinstance(events[1], PartEnd)


def test_tool_ids_round_trip_and_are_anthropic_legal() -> None:
    import re

    for tool_id in ["call_abc", "functions.Bash:0", "toolu_01", "cmx_x", "a b/c"]:
        safe = safe_tool_id(tool_id)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", safe)
        assert restore_tool_id(safe) == tool_id
    assert safe_tool_id("call_abc") == "call_abc"
