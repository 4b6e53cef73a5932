"""Replays the recorded Gemini traffic in tests/fixtures/google the way Gemini frames it on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from clearmaas.canonical import StreamEvent
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.base import Deployment
from clearmaas.providers.google import decode_stream
from clearmaas.transport.sse import iter_sse

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "google"
DEPLOYMENT = Deployment(base_url="https://generativelanguage.googleapis.com/", api_key="AIza-test-key")


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def chunk_lines(name: str) -> list[str]:
    return [line for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


async def sse_bytes(lines: list[str], *, split: int = 0) -> AsyncIterator[bytes]:
    """`data: <line>\\r\\n\\r\\n` per record, as streamGenerateContent?alt=sse sends it; `split` > 0 cuts
    the byte stream into pieces of that size to exercise the parser's buffering."""
    raw = b"".join(b"data: " + line.encode() + b"\r\n\r\n" for line in lines)
    if split <= 0:
        yield raw
        return
    for start in range(0, len(raw), split):
        yield raw[start : start + split]


async def decode_lines(lines: list[str], *, split: int = 0) -> list[StreamEvent]:
    return [event async for event in decode_stream(iter_sse(sse_bytes(lines, split=split)))]


async def decode_recording(name: str, *, split: int = 0) -> list[StreamEvent]:
    return await decode_lines(chunk_lines(name), split=split)


def gemini(upstream: str, *, reasoning: bool = True) -> ModelEntry:
    return ModelEntry(
        id=f"google/{upstream}",
        provider="google",
        upstream=upstream,
        context_length=1_048_576,
        max_output_tokens=65_536,
        reasoning="gemini" if reasoning else None,
    )
