from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clearmaas.transport.sse import SSEParser, anthropic_event, data_event

STREAM = (
    b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
    b": keep-alive\n\n"
    b"data: {\"a\":1}\n\n"
    b"data: line1\ndata: line2\n\n"
    b"data: [DONE]\n\n"
)


def parse_all(chunks: list[bytes]) -> list[tuple[str | None, str]]:
    parser = SSEParser()
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.flush())
    return [(e.event, e.data) for e in events]


def test_parses_named_and_data_only_events_and_skips_comments() -> None:
    assert parse_all([STREAM]) == [
        ("message_start", '{"type":"message_start"}'),
        (None, '{"a":1}'),
        (None, "line1\nline2"),
        (None, "[DONE]"),
    ]


def test_crlf_framing_as_gemini_sends_it() -> None:
    assert parse_all([b'data: {"x":1}\r\n\r\ndata: {"x":2}\r\n\r\n']) == [(None, '{"x":1}'), (None, '{"x":2}')]


def test_raw_bytes_are_kept_for_forwarding() -> None:
    parser = SSEParser()
    events = parser.feed(STREAM)
    assert b"".join(e.raw for e in events) == STREAM.replace(b": keep-alive\n\n", b"")


def test_trailing_event_without_blank_line_is_flushed() -> None:
    assert parse_all([b"data: {\"last\":true}"]) == [(None, '{"last":true}')]


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks, last = [], 0
    for p in points:
        chunks.append(STREAM[last:p])
        last = p
    chunks.append(STREAM[last:])
    assert parse_all(chunks) == parse_all([STREAM])


def test_encoders() -> None:
    assert data_event({"a": 1}) == b'data: {"a":1}\n\n'
    assert anthropic_event("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_crlf_split_across_chunks_does_not_split_an_event() -> None:
    stream = b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\n"
    cut = stream.index(b"\n", stream.index(b"data: 1"))  # between the CR and the LF after "data: 1"
    assert parse_all([stream[:cut], stream[cut:]]) == [("a", "1\n2")]
    for i in range(1, len(stream)):
        assert parse_all([stream[:i], stream[i:]]) == [("a", "1\n2")]
