"""Decode an Anthropic Messages SSE stream into canonical stream events, as the events arrive.

Blocks are keyed by Anthropic's content-block `index` in the shared `StreamAssembler`; this module keeps
only what the assembler cannot: usage to merge, tool calls that got no arguments, and server-tool blocks
being collected. It must not encode anything for a client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from clearmaas.canonical import (
    StreamAssembler,
    StreamError,
    StreamEvent,
    StreamFinish,
    StreamStart,
    ThinkingPart,
    UnknownPart,
    Usage,
    UsageReport,
)
from clearmaas.errors import GatewayError, UpstreamProtocolError
from clearmaas.providers.anthropic.errors import error_from_event
from clearmaas.providers.anthropic.response import ORIGIN, PROTOCOL, map_stop_reason, map_usage, merge_usage
from clearmaas.transport.sse import SSEEvent

__all__ = ["StreamDecoder", "decode_stream"]


async def decode_stream(events: AsyncIterator[SSEEvent]) -> AsyncIterator[StreamEvent]:
    """Canonical events for an upstream stream; a stream that breaks off early ends with a `StreamError`."""
    decoder = StreamDecoder()
    async for event in events:
        for out in decoder.feed(event):
            yield out
        if decoder.done:
            return
    for out in decoder.close():
        yield out


class StreamDecoder:
    """The state of one stream: feed it events in order, then `close()` it at the end of the input."""

    def __init__(self) -> None:
        self._assembler = StreamAssembler()
        self._usage = Usage()
        self._finished = False
        self.done = False  # an `error` event ended the stream: nothing after it counts
        self._tool_blocks: set[int] = set()
        self._tool_blocks_with_arguments: set[int] = set()
        self._server_blocks: dict[int, dict[str, Any]] = {}
        self._server_json: dict[int, list[str]] = {}

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if self.done or not event.data.strip():
            return []  # an event without data (a proxy's keep-alive) carries nothing
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return self._fail(UpstreamProtocolError("The upstream stream sent an event that is not JSON."))
        if not isinstance(payload, dict):
            return []
        # The SDKs fill a missing `type` from the SSE event name, so accept either.
        kind = payload.get("type") or event.event
        if kind == "message_start":
            return self._message_start(payload)
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "content_block_stop":
            return self._block_stop(payload)
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            return self._fail(error_from_event(payload))
        return []  # `ping`, and event types added after this was written (Anthropic: "ignore unknown events")

    def close(self) -> list[StreamEvent]:
        """At the end of the input: a stream that never finished was cut off."""
        if self.done or self._finished:
            return []
        return self._fail(UpstreamProtocolError("The upstream stream ended before the message was complete."))

    def _message_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        message = payload.get("message")
        if not isinstance(message, dict):
            message = {}
        self._usage = map_usage(message.get("usage"))
        return [StreamStart(id=str(message.get("id") or ""), model=str(message.get("model") or ""), usage=self._usage)]

    def _block_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        index = payload.get("index")
        block = payload.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return []
        kind = block.get("type")
        asm = self._assembler
        if kind == "text":
            # Opened lazily by its first text, so an empty text block never becomes a part.
            return asm.text(index, str(block.get("text") or ""))
        if kind == "thinking":
            events = asm.start(index, ThinkingPart(text="", origin=ORIGIN))
            events += asm.thinking(index, str(block.get("thinking") or ""))
            events += asm.signature(index, str(block.get("signature") or ""))
            return events
        if kind == "redacted_thinking":
            return asm.whole(index, ThinkingPart(text="", redacted=str(block.get("data") or ""), origin=ORIGIN))
        if kind == "tool_use":
            self._tool_blocks.add(index)
            events = asm.tool_call(index, id=str(block.get("id") or ""), name=str(block.get("name") or ""))
            tool_input = block.get("input")
            if tool_input:  # always `{}` from Anthropic, which then streams the input as input_json_delta
                self._tool_blocks_with_arguments.add(index)
                events += asm.tool_arguments(index, orjson.dumps(tool_input).decode())
            return events
        # server_tool_use, *_tool_result and unknown blocks: emitted whole at content_block_stop.
        self._server_blocks[index] = dict(block)
        self._server_json[index] = []
        return []

    def _block_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        index = payload.get("index")
        delta = payload.get("delta")
        if not isinstance(index, int) or not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        asm = self._assembler
        if kind == "text_delta":
            return asm.text(index, str(delta.get("text") or ""))
        if kind == "thinking_delta":
            return asm.thinking(index, str(delta.get("thinking") or ""))
        if kind == "signature_delta":
            return asm.signature(index, str(delta.get("signature") or ""))
        if kind == "input_json_delta":
            fragment = str(delta.get("partial_json") or "")
            if index in self._server_json:
                self._server_json[index].append(fragment)
                return []
            if fragment:
                self._tool_blocks_with_arguments.add(index)
            return asm.tool_arguments(index, fragment)
        # citations_delta has no canonical delta: citations are kept only by non-streaming decoding.
        return []

    def _block_stop(self, payload: dict[str, Any]) -> list[StreamEvent]:
        index = payload.get("index")
        if not isinstance(index, int):
            return []
        asm = self._assembler
        block = self._server_blocks.pop(index, None)
        if block is not None:
            text = "".join(self._server_json.pop(index, []))
            if text:
                # Unparsable input keeps the block as it started rather than invent one.
                with contextlib.suppress(orjson.JSONDecodeError):
                    block["input"] = orjson.loads(text)
            return asm.whole(index, UnknownPart(origin=PROTOCOL, data=block))
        events: list[StreamEvent] = []
        if index in self._tool_blocks and index not in self._tool_blocks_with_arguments:
            # A tool without arguments streams only `partial_json: ""`; say `{}` as the non-streaming
            # response does (vercel/ai fixture anthropic-tool-no-args.chunks.txt).
            self._tool_blocks_with_arguments.add(index)
            events += asm.tool_arguments(index, "{}")
        events += asm.end(index)
        return events

    def _message_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        events = self._assembler.end_all()
        wire_usage = payload.get("usage")
        if isinstance(wire_usage, dict):
            self._usage = merge_usage(self._usage, wire_usage)
            events.append(UsageReport(self._usage))
        delta = payload.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason") and not self._finished:
            self._finished = True
            stop_sequence = delta.get("stop_sequence")
            events.append(
                StreamFinish(
                    map_stop_reason(delta["stop_reason"], has_tool_calls=self._assembler.tool_calls > 0),
                    stop_sequence if isinstance(stop_sequence, str) else None,
                )
            )
        return events

    def _message_stop(self) -> list[StreamEvent]:
        events = self._assembler.end_all()
        if not self._finished:  # no message_delta said why: infer it as the non-streaming decoder does
            self._finished = True
            events.append(StreamFinish(map_stop_reason(None, has_tool_calls=self._assembler.tool_calls > 0)))
        return events

    def _fail(self, error: GatewayError) -> list[StreamEvent]:
        events = self._assembler.end_all()
        events.append(StreamError(error))
        self.done = True
        return events
