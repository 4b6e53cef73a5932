"""Recorded Anthropic traffic for the adapter tests, and SSE replay helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from clearmaas.canonical import StreamEvent
from clearmaas.providers.anthropic import decode_stream
from clearmaas.transport.sse import SSEEvent, iter_sse

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def wire(name: str) -> Any:
    """The recording parsed independently of the code under test, to compare against."""
    return orjson.loads(body(name))


def stream_lines(name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body(name).splitlines() if line.strip()]


def sse_bytes(name: str) -> bytes:
    """A `*.chunks.txt` recording framed as Anthropic sends it: `event: <type>` + `data: <line>`."""
    out = b""
    for line in body(name).splitlines():
        if line.strip():
            out += b"event: " + orjson.loads(line)["type"].encode() + b"\ndata: " + line + b"\n\n"
    return out


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def decode_bytes(data: bytes, *, chunk_size: int = 1 << 20) -> list[StreamEvent]:
    return [event async for event in decode_stream(iter_sse(_chunks(data, chunk_size)))]


async def replay(name: str, *, chunk_size: int = 1 << 20) -> list[StreamEvent]:
    return await decode_bytes(sse_bytes(name), chunk_size=chunk_size)


async def events_of(*events: SSEEvent) -> AsyncIterator[SSEEvent]:
    for event in events:
        yield event


def sse(payload: dict[str, Any], *, name: str | None = None) -> SSEEvent:
    data = orjson.dumps(payload)
    event = name if name is not None else str(payload.get("type"))
    return SSEEvent(event=event, data=data.decode(), raw=b"event: " + event.encode() + b"\ndata: " + data + b"\n\n")
