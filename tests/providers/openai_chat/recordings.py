"""Recorded OpenAI-compatible traffic, SSE replay helpers and catalogue entries for the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from clearmaas.canonical import StreamEvent
from clearmaas.catalogue.entry import ModelEntry, ReasoningMode
from clearmaas.providers.openai_chat.stream import decode_stream
from clearmaas.providers.profiles import Profile
from clearmaas.transport.sse import SSEEvent, iter_sse

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def body(name: str) -> bytes:
    """A recording by `<folder>/<file>`, e.g. `deepseek/deepseek-text.json`."""
    return (FIXTURES / name).read_bytes()


def wire(name: str) -> Any:
    """The recording parsed independently of the code under test, to compare against."""
    return orjson.loads(body(name))


def stream_lines(name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body(name).splitlines() if line.strip()]


def sse_bytes(lines: list[bytes], *, done: bool = True) -> bytes:
    """Chunks framed as OpenAI sends them: `data: <json>` each, then `data: [DONE]` (fixtures README)."""
    out = b"".join(b"data: " + line + b"\n\n" for line in lines)
    return out + b"data: [DONE]\n\n" if done else out


def recording_sse(name: str) -> bytes:
    return sse_bytes([line for line in body(name).splitlines() if line.strip()])


def chunks_sse(chunks: list[dict[str, Any]], *, done: bool = True) -> bytes:
    return sse_bytes([orjson.dumps(chunk) for chunk in chunks], done=done)


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def decode_bytes(data: bytes, profile: Profile, *, chunk_size: int = 1 << 20) -> list[StreamEvent]:
    return [event async for event in decode_stream(iter_sse(_pieces(data, chunk_size)), profile=profile)]


async def events_of(*events: SSEEvent) -> AsyncIterator[SSEEvent]:
    for event in events:
        yield event


def sse(payload: dict[str, Any] | str, *, name: str | None = None) -> SSEEvent:
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    head = b"event: " + name.encode() + b"\n" if name else b""
    return SSEEvent(event=name, data=data, raw=head + b"data: " + data.encode() + b"\n\n")


def chunk(delta: dict[str, Any] | None = None, *, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One `chat.completion.chunk` with a single choice."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        **extra,
    }


def usage_chunk(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "test-model",
        "choices": [],
        "usage": usage,
    }


def entry(
    upstream: str,
    *,
    provider: str = "openai",
    reasoning: ReasoningMode | None = None,
    max_output_tokens: int = 32_000,
    capabilities: frozenset[str] = frozenset(),
) -> ModelEntry:
    return ModelEntry(
        id=f"{provider}/{upstream}",
        provider=provider,
        upstream=upstream,
        context_length=128_000,
        max_output_tokens=max_output_tokens,
        reasoning=reasoning,
        capabilities=capabilities,
    )
