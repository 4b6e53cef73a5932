"""Server-sent events: an incremental parser for upstream streams and the encoders for client streams.

The parser keeps each event's raw bytes so the same-format fast path can forward exactly what the
provider sent. It accepts LF, CRLF and CR line endings (Gemini sends CRLF).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

__all__ = ["SSEEvent", "SSEParser", "anthropic_event", "data_event", "iter_sse"]


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str
    raw: bytes

    def json(self) -> object:
        return orjson.loads(self.data)


class SSEParser:
    """Feed bytes in any chunking; get back the events completed so far."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # A CR ending this chunk may be the first half of a CRLF split across chunks: keep it for later.
            held = buffer.endswith(b"\r")
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buffer += b"\r"
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            block = buffer[start : end + 2]
            start = end + 2
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """An event the stream ended without a blank line after (some servers do this)."""
        rest, self._buffer = self._buffer.replace(b"\r", b"\n"), b""
        if rest.strip():
            event = _parse_block(rest + b"\n\n")
            return [event] if event is not None else []
        return []


def _parse_block(block: bytes) -> SSEEvent | None:
    name: str | None = None
    data: list[str] = []
    for line in block.decode("utf-8", "replace").split("\n"):
        if not line or line[0] == ":":
            continue
        field, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if not data and name is None:
        return None
    return SSEEvent(name, "\n".join(data), block)


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    parser = SSEParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
    for event in parser.flush():
        yield event


def data_event(payload: object) -> bytes:
    """An OpenAI-style event: a `data:` line only."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def anthropic_event(name: str, payload: object) -> bytes:
    """An Anthropic-style event: the SDKs dispatch on the `event:` name, which must equal `data.type`."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
