"""The one stream assembler: turns a provider's deltas, keyed by the provider's own block key, into
canonical part events with hub indices. Every provider's `decode_stream` uses it instead of its own
state machine.

Parts are sequential, as every SDK expects: opening a part closes the one open before it. A provider
that interleaves tool-call fragments (OpenAI allows it, keyed by `tool_calls[].index`) still has every
fragment routed to its own call: a fragment for a call already closed is emitted as a late `PartDelta`
with that call's index, never given to "the latest" call.
"""

from __future__ import annotations

from collections.abc import Hashable

from clearmaas.canonical.events import (
    PartDelta,
    PartEnd,
    PartStart,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgumentsDelta,
)
from clearmaas.canonical.messages import Part, TextPart, ThinkingPart, ToolCallPart

__all__ = ["StreamAssembler"]


class StreamAssembler:
    """Assigns hub indices to provider blocks and emits part start/delta/end events."""

    __slots__ = ("_indices", "_kinds", "_open", "_next", "tool_calls")

    def __init__(self) -> None:
        self._indices: dict[Hashable, int] = {}  # provider key -> hub index
        self._kinds: dict[Hashable, str] = {}
        self._open: Hashable | None = None
        self._next = 0
        self.tool_calls = 0

    def start(self, key: Hashable, part: Part) -> list[StreamEvent]:
        """Open a new part under `key` (a key reused later starts a fresh part)."""
        events = self._close_open()
        index = self._next
        self._next += 1
        self._indices[key] = index
        self._kinds[key] = part.kind
        self._open = key
        if part.kind == "tool_call":
            self.tool_calls += 1
        events.append(PartStart(index, part))
        return events

    def whole(self, key: Hashable, part: Part) -> list[StreamEvent]:
        """A part that arrives complete (redacted thinking, an unknown block)."""
        events = self.start(key, part)
        events.extend(self.end(key))
        return events

    def text(self, key: Hashable, text: str) -> list[StreamEvent]:
        if not text:
            return []
        events = self._ensure(key, "text")
        events.append(PartDelta(self._indices[key], TextDelta(text)))
        return events

    def thinking(self, key: Hashable, text: str) -> list[StreamEvent]:
        if not text:
            return []
        events = self._ensure(key, "thinking")
        events.append(PartDelta(self._indices[key], ThinkingDelta(text)))
        return events

    def signature(self, key: Hashable, signature: str) -> list[StreamEvent]:
        if not signature:
            return []
        events = self._ensure(key, "thinking")
        events.append(PartDelta(self._indices[key], SignatureDelta(signature)))
        return events

    def tool_call(self, key: Hashable, *, id: str, name: str) -> list[StreamEvent]:
        return self.start(key, ToolCallPart(id=id, name=name, arguments=""))

    def tool_arguments(self, key: Hashable, fragment: str) -> list[StreamEvent]:
        """Route an arguments fragment to the call opened under `key`, open or not."""
        if not fragment or key not in self._indices:
            return []
        return [PartDelta(self._indices[key], ToolArgumentsDelta(fragment))]

    def is_open(self, key: Hashable) -> bool:
        return self._open == key

    def knows(self, key: Hashable) -> bool:
        return key in self._indices

    def end(self, key: Hashable) -> list[StreamEvent]:
        if self._open != key:
            return []
        self._open = None
        return [PartEnd(self._indices[key])]

    def end_all(self) -> list[StreamEvent]:
        return self._close_open()

    def _ensure(self, key: Hashable, kind: str) -> list[StreamEvent]:
        if self._open == key and self._kinds.get(key) == kind:
            return []
        part: Part = TextPart(text="") if kind == "text" else ThinkingPart(text="")
        return self.start(key, part)

    def _close_open(self) -> list[StreamEvent]:
        if self._open is None:
            return []
        index = self._indices[self._open]
        self._open = None
        return [PartEnd(index)]
