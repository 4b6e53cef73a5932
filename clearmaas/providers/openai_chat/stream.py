"""Decode a Chat Completions SSE stream into canonical stream events, chunk by chunk, through the one
`StreamAssembler` (protocols.md §2.4, §6.11).

Nothing is buffered beyond a `<think>` tag cut in two: each chunk's events are yielded before the next
chunk is read.
"""

from __future__ import annotations

import uuid
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
    UsageReport,
)
from clearmaas.errors import UpstreamHTTPError, UpstreamProtocolError
from clearmaas.providers.openai_chat.errors import envelope_error, payload_error
from clearmaas.providers.openai_chat.response import ThinkTagSplitter, map_usage, reasoning_text, stop_reason
from clearmaas.providers.profiles import Profile
from clearmaas.transport.sse import SSEEvent

__all__ = ["decode_stream"]

_THINKING = "thinking"
_TEXT = "text"


async def decode_stream(events: AsyncIterator[SSEEvent], *, profile: Profile) -> AsyncIterator[StreamEvent]:
    """Canonical events for an upstream stream; an in-band error ends it with `StreamError`."""
    decoder = _ChunkDecoder(profile)
    async for event in events:
        data = event.data.strip()
        if data == "[DONE]":
            decoder.done = True
            break
        if not data:
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            yield StreamError(UpstreamProtocolError("The upstream provider sent a stream event that is not JSON."))
            return
        if not isinstance(chunk, dict):
            continue
        error = _chunk_error(chunk, event, profile)
        if error is not None:
            for out in decoder.close():
                yield out
            yield StreamError(error)
            return
        for out in decoder.chunk(chunk):
            yield out
    for out in decoder.end():
        yield out


def _chunk_error(chunk: dict[str, Any], event: SSEEvent, profile: Profile) -> UpstreamHTTPError | None:
    error = envelope_error(chunk, profile) or payload_error(chunk)
    if error is None and event.event == "error":  # the OpenAI SDK raises on an `error` event whatever its data
        message = chunk.get("message")
        text = message if isinstance(message, str) and message else "The upstream provider reported an error."
        error = UpstreamHTTPError(text, upstream_status=500)
    return error


class _ChunkDecoder:
    """Per-stream bookkeeping around the assembler: which tool call each `index` feeds, and the finish."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.assembler = StreamAssembler()
        self.splitter = ThinkTagSplitter() if profile.think_tags else None
        self.started = False
        self.finished = False
        self.done = False
        self.tools: dict[int, tuple[str, int, str]] = {}  # tool_calls[].index -> (id, generation, key)

    def chunk(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self.started:
            self.started = True
            out.append(StreamStart(id=str(chunk.get("id") or ""), model=str(chunk.get("model") or "")))
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if choice is not None and not self.finished:
            delta = choice.get("delta")
            # MiniMax M3 ends a stream with the whole `chat.completion` again (ENTERPILOT/GoModel#1068):
            # only its finish and usage are news.
            if isinstance(delta, dict) and chunk.get("object") != "chat.completion":
                out += self._delta(delta)
            finish = choice.get("finish_reason")
            if finish is not None:
                out += self._finish(finish)
        # Usage rides in a last `choices: []` chunk (OpenAI), in the finish chunk (DeepSeek) or inside the
        # choice (Moonshot); each report is cumulative, so the last one wins.
        usage = chunk.get("usage")
        if not isinstance(usage, dict) and choice is not None:
            usage = choice.get("usage")
        if isinstance(usage, dict):
            mapped = map_usage(usage, self.profile)
            if not mapped.is_empty():  # MiniMax puts zero usage on every chunk (MiniMax-AI/MiniMax-M2.5#2)
                out.append(UsageReport(mapped))
        return out

    def _delta(self, delta: dict[str, Any]) -> list[StreamEvent]:
        out = self._thinking(reasoning_text(delta, self.profile))
        content = delta.get("content")
        if isinstance(content, str) and content:
            if self.splitter is None:
                out += self.assembler.text(_TEXT, content)
            else:
                for kind, piece in self.splitter.feed(content):
                    out += self._thinking(piece) if kind == "thinking" else self.assembler.text(_TEXT, piece)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                if isinstance(call, dict):
                    out += self._tool_call(call)
        return out

    def _thinking(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        out: list[StreamEvent] = []
        if not self.assembler.is_open(_THINKING):
            # Opened explicitly so the part names its origin; the assembler would open a bare one.
            out += self.assembler.start(_THINKING, ThinkingPart(text="", origin=self.profile.name))
        out += self.assembler.thinking(_THINKING, text)
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[StreamEvent]:
        index = call.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = len(self.tools)
        raw_function = call.get("function")
        function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
        raw_id, raw_name = call.get("id"), function.get("name")
        call_id = raw_id if isinstance(raw_id, str) else ""
        name = raw_name if isinstance(raw_name, str) else ""
        known = self.tools.get(index)
        out: list[StreamEvent] = []
        # A new call under this index: the first time it is seen, or (a provider bug that reuses index 0
        # for parallel calls) a different id with a name. Later fragments often carry no id (Qwen).
        if known is None or (call_id and name and call_id != known[0]):
            generation = 0 if known is None else known[1] + 1
            key = f"tool:{index}:{generation}"
            call_id = call_id or f"call_{uuid.uuid4().hex[:24]}"
            self.tools[index] = (call_id, generation, key)
            out += self.assembler.tool_call(key, id=call_id, name=name)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out += self.assembler.tool_arguments(self.tools[index][2], arguments)
        return out

    def _finish(self, finish: object) -> list[StreamEvent]:
        out = self.close()
        self.finished = True
        reason = stop_reason(finish, self.profile, has_tool_calls=self.assembler.tool_calls > 0)
        out.append(StreamFinish(reason))
        return out

    def close(self) -> list[StreamEvent]:
        """Flush a held partial tag and close the open part."""
        out: list[StreamEvent] = []
        if self.splitter is not None:
            for kind, piece in self.splitter.flush():
                out += self._thinking(piece) if kind == "thinking" else self.assembler.text(_TEXT, piece)
        out += self.assembler.end_all()
        return out

    def end(self) -> list[StreamEvent]:
        """What the end of the upstream stream means: a finish if none came, or an error if it was cut."""
        if self.finished:
            return []
        out = self.close()
        if not self.done:
            out.append(StreamError(UpstreamProtocolError("The upstream stream ended before it finished.")))
            return out
        if not self.started:
            out.append(StreamStart(id="", model=""))
        out.append(StreamFinish(stop_reason(None, self.profile, has_tool_calls=self.assembler.tool_calls > 0)))
        return out
