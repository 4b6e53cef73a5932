"""The fast path's own logic, without a server: which usage chunk the client asked for, and how upstream events
are counted and forwarded (in-band errors in the gateway's envelope)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from clearmaas.providers.anthropic import AnthropicAdapter
from clearmaas.providers.base import PassthroughStream
from clearmaas.providers.openai_chat import OpenAIChatAdapter
from clearmaas.providers.profiles import OPENAI
from clearmaas.relay.passthrough import _forward, wants_usage_chunk
from clearmaas.relay.record import CallRecord
from clearmaas.surfaces.anthropic_messages import SURFACE as ANTHROPIC_SURFACE
from clearmaas.surfaces.openai_chat import SURFACE as OPENAI_SURFACE
from clearmaas.transport.sse import SSEParser


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ({"stream": True}, False),  # OpenAI sends no usage chunk unless asked
        ({"stream": True, "stream_options": {"include_usage": True}}, True),
        ({"stream": True, "stream_options": {"include_usage": False}}, False),
        ({"stream": True, "stream_options": {}}, False),
        ({"stream": True, "stream_options": None}, False),
        ({"stream": True, "stream_options": {"include_usage": "true"}}, False),
    ],
)
def test_only_include_usage_true_asks_for_the_usage_chunk(body: dict[str, Any], wanted: bool) -> None:
    assert wants_usage_chunk(body) is wanted


class _Upstream:
    """Just enough of `UpstreamResponse` for `_forward`: the body in given chunks, and `close`."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.closed = False

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    def close(self) -> None:
        self.closed = True


async def _forwarded(chunks: list[bytes], adapter: Any, surface: Any) -> tuple[list[bytes], PassthroughStream, bool]:
    upstream = _Upstream(chunks)
    state = PassthroughStream()
    record = CallRecord(request_id="r", endpoint=surface.protocol)
    out = [c async for c in _forward(upstream, surface, state, adapter, True, record)]  # type: ignore[arg-type]
    return out, state, upstream.closed


_OPENAI_CHUNK = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'


async def test_events_are_counted_once_each() -> None:
    """`serve_passthrough` turns an error that is the stream's first event into an HTTP status; that needs the
    exact count (the relay and the adapter both counted, so a first event looked like the second)."""
    out, state, closed = await _forwarded([_OPENAI_CHUNK], OpenAIChatAdapter(OPENAI), OPENAI_SURFACE)
    assert out == [_OPENAI_CHUNK] and state.events == 1 and closed
    _, state, _ = await _forwarded([_OPENAI_CHUNK * 2, b"data: [DONE]\n\n"], OpenAIChatAdapter(OPENAI), OPENAI_SURFACE)
    assert state.events == 3


async def test_in_band_errors_go_out_in_the_gateways_envelope_scrubbed() -> None:
    leaky = b'data: {"error":{"message":"Overloaded, see https://status.provider.test/x","type":"server_error"}}\n\n'
    out, state, _ = await _forwarded([_OPENAI_CHUNK, leaky], OpenAIChatAdapter(OPENAI), OPENAI_SURFACE)
    assert out[0] == _OPENAI_CHUNK
    error = orjson.loads(out[1].removeprefix(b"data: "))["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert "https://" not in error["message"] and "Overloaded" in error["message"]
    assert state.error is not None and state.error.status == 502

    overloaded = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    start = b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3}}}\n\n'
    out, state, _ = await _forwarded([start + overloaded], AnthropicAdapter(), ANTHROPIC_SURFACE)
    events = SSEParser().feed(b"".join(out))
    assert [e.event for e in events] == ["message_start", "error"]
    assert orjson.loads(events[1].data)["error"]["type"] == "upstream_error"
    assert state.events == 2
