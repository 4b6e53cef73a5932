"""Encode a canonical event stream as Anthropic Messages SSE: `message_start`, `ping`, content blocks,
`message_delta`, `message_stop`, each as `event: <type>\\ndata: <json>\\n\\n`.

Every SSE event is yielded as soon as the canonical event behind it arrives, with two exceptions:
`message_delta` waits for the end of the stream, because usage may come after the finish (OpenAI sends
`finish_reason` before its usage chunk, protocols.md §0.4); and a thinking block's signature is sent
whole, as one `signature_delta` just before its `content_block_stop`, as Anthropic does (the SDK's
accumulator replaces the signature on each delta rather than appending). No I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, assert_never

from clearmaas.canonical import (
    Part,
    PartDelta,
    PartEnd,
    PartStart,
    SignatureDelta,
    StreamError,
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
from clearmaas.canonical.events import Delta
from clearmaas.canonical.tool_ids import safe_tool_id
from clearmaas.surfaces.anthropic_messages.encode import message_id
from clearmaas.surfaces.anthropic_messages.errors import encode_stream_error
from clearmaas.surfaces.anthropic_messages.wire import (
    PROTOCOL,
    WireMessage,
    tag_signature,
    wire_stop_reason,
    wire_usage,
)
from clearmaas.surfaces.base import StreamContext
from clearmaas.transport.sse import anthropic_event

__all__ = ["StreamEncoder", "encode_stream"]


async def encode_stream(events: AsyncIterator[StreamEvent], context: StreamContext) -> AsyncIterator[bytes]:
    """The SSE body of a streamed `POST /v1/messages` answer, one event per chunk."""
    encoder = StreamEncoder(context)
    try:
        async for event in events:
            for chunk in encoder.feed(event):
                yield chunk
            if encoder.failed:
                return
        for chunk in encoder.close():
            yield chunk
    finally:
        # Stopping early (an error, or the client going away) must release the upstream stream too.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass(slots=True)
class _Block:
    """A content block sent to the client, addressed by its wire index."""

    index: int
    kind: str  # text, thinking, redacted_thinking, tool_use, unknown
    origin: str | None = None
    signature: str = ""
    stopped: bool = False


class StreamEncoder:
    """Turns canonical events into SSE events; `feed` each event, then `close` when the events end."""

    def __init__(self, context: StreamContext) -> None:
        self._context = context
        self._started = False
        self._blocks: dict[int, _Block | None] = {}  # hub index -> block (None: a part with no wire form)
        self._order: list[_Block] = []
        # Text parts not opened yet (hub index -> already ended): a text block opens with its first text, or
        # when a later part starts (to keep the order), so a part that stays empty at the end (Gemini closes
        # with an empty text part that only carries a signature) never becomes an empty text block, which
        # Anthropic rejects when the client sends it back (protocols.md §0.7).
        self._unopened_text: dict[int, bool] = {}
        self._usage: Usage | None = None
        self._finish: StreamFinish | None = None
        self.failed = False

    def feed(self, event: StreamEvent) -> list[bytes]:
        out: list[bytes] = []
        if not self._started and not isinstance(event, StreamStart | StreamError):
            out.extend(self._message_start(None))
        if isinstance(event, StreamStart):
            if not self._started:
                out.extend(self._message_start(event))
            elif self._usage is None:  # a late start: message_start is gone, but its counts still count
                self._usage = event.usage
        elif isinstance(event, PartStart):
            for index in list(self._unopened_text):
                out.extend(self._open_text(index))
            out.extend(self._part_start(event.index, event.part))
        elif isinstance(event, PartDelta):
            out.extend(self._part_delta(event.index, event.delta))
        elif isinstance(event, PartEnd):
            if event.index in self._unopened_text:
                self._unopened_text[event.index] = True
            block = self._blocks.get(event.index)
            if block is not None:
                out.extend(self._stop(block))
        elif isinstance(event, UsageReport):
            self._usage = event.usage
        elif isinstance(event, StreamFinish):
            self._finish = event
        elif isinstance(event, StreamError):
            self.failed = True
            out.append(encode_stream_error(event.error))
        else:
            assert_never(event)
        return out

    def close(self) -> list[bytes]:
        """Stop the blocks still open and send the held stop reason with the final usage."""
        out: list[bytes] = [] if self._started else self._message_start(None)
        for block in self._order:
            out.extend(self._stop(block))
        finish = self._finish or StreamFinish(stop_reason="end_turn")
        usage: dict[str, Any] = {"output_tokens": 0} if self._usage is None else dict(wire_usage(self._usage))
        delta = {"stop_reason": wire_stop_reason(finish.stop_reason), "stop_sequence": finish.stop_sequence}
        out.append(_event("message_delta", delta=delta, usage=usage))
        out.append(_event("message_stop"))
        return out

    def _message_start(self, start: StreamStart | None) -> list[bytes]:
        self._started = True
        usage = start.usage if start is not None else None
        self._usage = usage
        # Claude Code reads the context size from these counts, so 0 for a real prompt is a bug
        # (BerriAI/litellm#41406); without the provider's count, the gateway's estimate stands in.
        if usage is not None and usage.prompt_tokens > 0:
            counts = (usage.input_tokens, usage.cache_write_tokens, usage.cache_read_tokens)
        else:
            counts = (self._context.input_tokens_estimate, 0, 0)
        message: WireMessage = {
            "id": message_id(start.id if start is not None else ""),
            "type": "message",
            "role": "assistant",
            "model": (start.model if start is not None else "") or self._context.request.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": counts[0],
                "cache_creation_input_tokens": counts[1],
                "cache_read_input_tokens": counts[2],
                "output_tokens": usage.output_tokens if usage is not None else 0,
            },
        }
        return [_event("message_start", message=message), _event("ping")]

    def _part_start(self, index: int, part: Part) -> list[bytes]:
        # Parts begin empty, but one that arrives with content has it sent as deltas, as Anthropic would.
        if isinstance(part, TextPart):
            if not part.text:
                self._blocks[index] = None
                self._unopened_text[index] = False
                return []
            out = self._open(index, "text", {"type": "text", "text": ""})
            return out + self._part_delta_text(index, part.text)
        if isinstance(part, ThinkingPart):
            if part.redacted is not None:
                data = tag_signature(part.redacted, part.origin)
                return self._open(index, "redacted_thinking", {"type": "redacted_thinking", "data": data})
            out = self._open(index, "thinking", {"type": "thinking", "thinking": "", "signature": ""}, part.origin)
            if part.text:
                out.append(_delta(self._index(index), type="thinking_delta", thinking=part.text))
            self._block(index).signature = part.signature or ""
            return out
        if isinstance(part, ToolCallPart):
            block = {"type": "tool_use", "id": safe_tool_id(part.id), "name": part.name, "input": {}}
            out = self._open(index, "tool_use", block)
            if part.arguments:
                out.append(_delta(self._index(index), type="input_json_delta", partial_json=part.arguments))
            return out
        if isinstance(part, UnknownPart) and part.origin == PROTOCOL:
            return self._open(index, "unknown", dict(part.data))
        self._blocks[index] = None
        return []

    def _part_delta(self, index: int, delta: Delta) -> list[bytes]:
        # A delta for a block already stopped still goes out, with that block's index: the SDKs accumulate
        # by index, and a provider may interleave tool-call fragments (protocols.md §0.10).
        if index in self._unopened_text:
            if not isinstance(delta, TextDelta) or not delta.text:
                return []
            return self._open_text(index) + self._part_delta_text(index, delta.text)
        block = self._blocks.get(index)
        if block is None:
            return []
        if isinstance(delta, TextDelta) and block.kind == "text":
            return self._part_delta_text(index, delta.text)
        if isinstance(delta, ThinkingDelta) and block.kind == "thinking" and delta.text:
            return [_delta(block.index, type="thinking_delta", thinking=delta.text)]
        if isinstance(delta, SignatureDelta) and block.kind == "thinking" and delta.signature:
            block.signature += delta.signature
            if block.stopped:  # the whole signature again: the SDK replaces, it does not append
                return [_delta(block.index, type="signature_delta", signature=self._signature(block))]
            return []
        if isinstance(delta, ToolArgumentsDelta) and block.kind == "tool_use" and delta.json:
            return [_delta(block.index, type="input_json_delta", partial_json=delta.json)]
        return []

    def _open_text(self, index: int) -> list[bytes]:
        """Open a deferred text block; one whose part already ended is stopped at once (later deltas still go
        out with its index, as for any stopped block)."""
        ended = self._unopened_text.pop(index)
        out = self._open(index, "text", {"type": "text", "text": ""})
        if ended:
            out.extend(self._stop(self._block(index)))
        return out

    def _part_delta_text(self, index: int, text: str) -> list[bytes]:
        return [_delta(self._index(index), type="text_delta", text=text)] if text else []

    def _open(self, index: int, kind: str, content_block: dict[str, Any], origin: str | None = None) -> list[bytes]:
        block = _Block(index=len(self._order), kind=kind, origin=origin)
        self._blocks[index] = block
        self._order.append(block)
        return [_event("content_block_start", index=block.index, content_block=content_block)]

    def _stop(self, block: _Block) -> list[bytes]:
        if block.stopped:
            return []
        block.stopped = True
        out: list[bytes] = []
        if block.signature:
            out.append(_delta(block.index, type="signature_delta", signature=self._signature(block)))
        out.append(_event("content_block_stop", index=block.index))
        return out

    def _signature(self, block: _Block) -> str:
        return tag_signature(block.signature, block.origin)

    def _block(self, index: int) -> _Block:
        block = self._blocks[index]
        assert block is not None
        return block

    def _index(self, index: int) -> int:
        return self._block(index).index


def _event(name: str, **fields: Any) -> bytes:
    return anthropic_event(name, {"type": name, **fields})


def _delta(index: int, **delta: Any) -> bytes:
    return _event("content_block_delta", index=index, delta=delta)
