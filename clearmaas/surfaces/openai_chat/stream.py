"""Encode a canonical event stream as Chat Completions SSE chunks, one chunk per event as it arrives.

Shape (protocols.md §2.4): a role chunk, content / `reasoning_content` / `tool_calls` deltas, a finish chunk
with an empty delta, then (only when the client set `stream_options.include_usage`) a `choices: []` usage
chunk, then `data: [DONE]`. A failure is an in-band `{"error": …}` chunk with no `[DONE]` after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from clearmaas.canonical import StreamEvent, Usage
from clearmaas.errors import GatewayError
from clearmaas.surfaces.base import StreamContext
from clearmaas.surfaces.openai_chat.encode import completion_id, finish_reason, now, wire_usage
from clearmaas.surfaces.openai_chat.errors import encode_stream_error
from clearmaas.surfaces.openai_chat.wire import ChatCompletionChunk, Delta, DeltaToolCall, FinishReason
from clearmaas.transport.sse import data_event

__all__ = ["DONE", "encode_stream"]

DONE = b"data: [DONE]\n\n"


class _ChunkWriter:
    """Chunk framing that stays the same across one stream: id, created, model, the usage key."""

    __slots__ = ("created", "id", "include_usage", "model")

    def __init__(self, context: StreamContext) -> None:
        self.id = completion_id("")
        self.model = context.request.model
        self.created = context.created or now()
        self.include_usage = context.request.include_usage

    def chunk(self, delta: Delta, finish: FinishReason | None = None) -> bytes:
        payload: ChatCompletionChunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            # With include_usage every chunk carries `usage: null` until the last one (protocols.md §2.4).
            payload["usage"] = None
        return data_event(payload)

    def usage_chunk(self, usage: Usage) -> bytes:
        payload: ChatCompletionChunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": wire_usage(usage),
        }
        return data_event(payload)


async def encode_stream(events: AsyncIterator[StreamEvent], context: StreamContext) -> AsyncIterator[bytes]:
    """Chat Completions SSE bytes for `events`, yielded as each event arrives (never buffered).

    A `GatewayError` raised by `events` after the first byte is sent in-band like a `StreamError`; raised
    before it, it propagates so the handler can still answer with a real HTTP status.
    """
    writer = _ChunkWriter(context)
    usage: Usage | None = None
    started = False
    finished = False
    tool_index: dict[int, int] = {}  # hub part index -> OpenAI tool_calls[].index
    try:
        async for event in events:
            if event.kind == "start":
                if event.id:
                    writer.id = completion_id(event.id)
                writer.model = event.model or writer.model
                if event.usage is not None:
                    usage = event.usage
            elif event.kind == "usage":
                usage = event.usage  # cumulative: the last report wins
                continue
            elif event.kind == "error":
                yield encode_stream_error(event.error)
                return
            if not started:
                started = True
                yield writer.chunk({"role": "assistant", "content": ""})
            if event.kind == "part_start":
                part = event.part
                if part.kind == "tool_call":
                    index = tool_index[event.index] = len(tool_index)
                    call: DeltaToolCall = {
                        "index": index,
                        "id": part.id,
                        "type": "function",
                        "function": {"name": part.name, "arguments": part.arguments},
                    }
                    yield writer.chunk({"tool_calls": [call]})
                elif part.kind == "text" and part.text:
                    yield writer.chunk({"content": part.text})
                elif part.kind == "thinking" and part.text:
                    yield writer.chunk({"reasoning_content": part.text})
                # Signatures, redacted thinking and unknown blocks have no chat-chunk form.
            elif event.kind == "part_delta":
                delta = event.delta
                if delta.kind == "text" and delta.text:
                    yield writer.chunk({"content": delta.text})
                elif delta.kind == "thinking" and delta.text:
                    # Non-standard, as DeepSeek/Qwen/Kimi stream it (protocols.md §6.7).
                    yield writer.chunk({"reasoning_content": delta.text})
                elif delta.kind == "tool_arguments" and delta.json and event.index in tool_index:
                    # Routed by the hub part index, so interleaved parallel calls each get their own fragments.
                    fragment: DeltaToolCall = {"index": tool_index[event.index], "function": {"arguments": delta.json}}
                    yield writer.chunk({"tool_calls": [fragment]})
            elif event.kind == "finish" and not finished:
                finished = True
                yield writer.chunk({}, finish_reason(event.stop_reason, has_tool_calls=bool(tool_index)))
    except GatewayError as error:
        if not started:
            raise
        yield encode_stream_error(error)
        return
    if not started:
        yield writer.chunk({"role": "assistant", "content": ""})
    if writer.include_usage:
        yield writer.usage_chunk(usage or Usage())
    yield DONE
