"""Test harness: run the surface's SSE through the official Anthropic SDK's stream accumulator, and build
what the SDK should end up with from the canonical accumulation of the same events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anthropic
import httpx2
import orjson
from anthropic.types import Message as SDKMessage

from clearmaas.canonical import ChatRequest, StreamEvent, accumulate_sync
from clearmaas.surfaces.anthropic_messages import encode_response, encode_stream
from clearmaas.surfaces.base import StreamContext
from clearmaas.transport.sse import SSEParser

__all__ = [
    "REQUEST",
    "aiter_events",
    "comparable",
    "encode_all",
    "expected_message",
    "sdk_client",
    "sdk_final_message",
    "sse_events",
]

REQUEST = ChatRequest(model="anthropic/claude-sonnet-4.6", messages=[], origin="anthropic_messages", max_tokens=1024)


async def aiter_events(events: Iterable[StreamEvent]) -> AsyncIterator[StreamEvent]:
    for event in events:
        yield event


async def _collect(events: Iterable[StreamEvent], context: StreamContext) -> bytes:
    return b"".join([chunk async for chunk in encode_stream(aiter_events(events), context)])


def encode_all(events: Iterable[StreamEvent], *, estimate: int = 0, request: ChatRequest = REQUEST) -> bytes:
    """The whole SSE body for `events` (runs its own event loop: for sync tests and hypothesis)."""
    context = StreamContext(request=request, input_tokens_estimate=estimate)
    return asyncio.run(_collect(list(events), context))


def sse_events(body: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    parser = SSEParser()
    events = parser.feed(body) + parser.flush()
    return [(event.event, orjson.loads(event.data)) for event in events]


def sdk_client(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> anthropic.Anthropic:
    """An SDK client whose every request is answered with `body` by an in-process transport."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        content_type = "text/event-stream" if status == 200 else "application/json"
        return httpx2.Response(status, headers={"content-type": content_type, **(headers or {})}, content=body)

    http_client = httpx2.Client(transport=httpx2.MockTransport(answer))
    return anthropic.Anthropic(
        api_key="sk-test", base_url="http://gateway.test", http_client=http_client, max_retries=0
    )


def sdk_final_message(body: bytes) -> SDKMessage:
    """What `client.messages.stream(...).get_final_message()` makes of `body`; raises what the SDK raises."""
    with (
        sdk_client(body) as client,
        client.messages.stream(
            model=REQUEST.model, max_tokens=1024, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream:
            pass
        return stream.get_final_message()


def expected_message(events: Iterable[StreamEvent], *, request: ChatRequest = REQUEST) -> SDKMessage:
    """The non-streamed encoding of the canonical accumulation, as the SDK parses it."""
    return SDKMessage.model_validate(encode_response(accumulate_sync(events), request))


def comparable(message: SDKMessage) -> dict[str, Any]:
    """A message as plain data; empty text blocks (which a stream may carry, a message never) are left out."""
    data = message.model_dump(exclude_none=True)
    data["content"] = [block for block in data["content"] if not (block["type"] == "text" and not block["text"])]
    return data
