"""Fold a canonical event stream into a complete response: for a non-streaming client served from a
stream-only upstream, for the usage log, and for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from clearmaas.canonical.events import StreamEvent
from clearmaas.canonical.messages import Part, TextPart, ThinkingPart, ToolCallPart
from clearmaas.canonical.response import ChatResponse

__all__ = ["Accumulator", "accumulate"]


class Accumulator:
    """Builds a `ChatResponse` event by event; `error` is set if the stream failed."""

    def __init__(self) -> None:
        self.response = ChatResponse(id="", model="", parts=[])
        self._parts: dict[int, Part] = {}
        self.error: Exception | None = None
        self.finished = False

    def add(self, event: StreamEvent) -> None:
        kind = event.kind
        if kind == "start":
            self.response.id = event.id  # type: ignore[union-attr]
            self.response.model = event.model  # type: ignore[union-attr]
            if event.usage is not None:  # type: ignore[union-attr]
                self.response.usage = event.usage  # type: ignore[union-attr]
        elif kind == "part_start":
            self._parts[event.index] = _copy(event.part)  # type: ignore[union-attr]
        elif kind == "part_delta":
            part = self._parts.get(event.index)  # type: ignore[union-attr]
            delta = event.delta  # type: ignore[union-attr]
            if isinstance(part, TextPart) and delta.kind == "text":
                part.text += delta.text
            elif isinstance(part, ThinkingPart) and delta.kind == "thinking":
                part.text += delta.text
            elif isinstance(part, ThinkingPart) and delta.kind == "signature":
                part.signature = (part.signature or "") + delta.signature
            elif isinstance(part, ToolCallPart) and delta.kind == "tool_arguments":
                part.arguments += delta.json
        elif kind == "finish":
            self.response.stop_reason = event.stop_reason  # type: ignore[union-attr]
            self.response.stop_sequence = event.stop_sequence  # type: ignore[union-attr]
            self.finished = True
        elif kind == "usage":
            self.response.usage = event.usage  # type: ignore[union-attr]
        elif kind == "error":
            self.error = event.error  # type: ignore[union-attr]

    def result(self) -> ChatResponse:
        self.response.parts = [self._parts[i] for i in sorted(self._parts)]
        return self.response


def _copy(part: Part) -> Part:
    if isinstance(part, TextPart):
        return TextPart(text=part.text, details=part.details)
    if isinstance(part, ThinkingPart):
        return ThinkingPart(
            text=part.text, signature=part.signature, redacted=part.redacted, origin=part.origin, details=part.details
        )
    if isinstance(part, ToolCallPart):
        return ToolCallPart(id=part.id, name=part.name, arguments=part.arguments, details=part.details)
    return part


def accumulate_sync(events: Iterable[StreamEvent]) -> ChatResponse:
    acc = Accumulator()
    for event in events:
        acc.add(event)
    return acc.result()


async def accumulate(events: AsyncIterator[StreamEvent]) -> ChatResponse:
    """Consume a stream; raises the stream's error if it failed."""
    acc = Accumulator()
    async for event in events:
        acc.add(event)
    if acc.error is not None:
        raise acc.error
    return acc.result()
