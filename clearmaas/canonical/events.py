"""Stream events: what every provider's `decode_stream` yields and every surface's `encode_stream` consumes.

A stream is `StreamStart`, then parts opened, extended and closed by index (indices count from 0 in the
order parts start; deltas of different parts may interleave), then `StreamFinish`; `UsageReport`s may come
anywhere and are cumulative (the last one wins). `StreamError` ends a stream that failed after it began. The
end of the iterator is the end of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union

from clearmaas.canonical.messages import Part
from clearmaas.canonical.response import StopReason
from clearmaas.canonical.usage import Usage

if TYPE_CHECKING:
    from clearmaas.errors import GatewayError

__all__ = [
    "Delta",
    "PartDelta",
    "PartEnd",
    "PartStart",
    "SignatureDelta",
    "StreamError",
    "StreamEvent",
    "StreamFinish",
    "StreamStart",
    "TextDelta",
    "ThinkingDelta",
    "ToolArgumentsDelta",
    "UsageReport",
]


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    usage: Usage | None = None  # what the provider reported up front (Anthropic: the input tokens)
    kind: Literal["start"] = "start"


@dataclass(slots=True)
class PartStart:
    """A part opens. Text and thinking start empty; a tool call starts with its id and name and empty
    arguments; whole parts (redacted thinking, unknown blocks) arrive complete here."""

    index: int
    part: Part
    kind: Literal["part_start"] = "part_start"


@dataclass(slots=True)
class TextDelta:
    text: str
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class ThinkingDelta:
    text: str
    kind: Literal["thinking"] = "thinking"


@dataclass(slots=True)
class SignatureDelta:
    signature: str
    kind: Literal["signature"] = "signature"


@dataclass(slots=True)
class ToolArgumentsDelta:
    json: str  # a fragment of the arguments' JSON text
    kind: Literal["tool_arguments"] = "tool_arguments"


Delta = Union[TextDelta, ThinkingDelta, SignatureDelta, ToolArgumentsDelta]


@dataclass(slots=True)
class PartDelta:
    index: int
    delta: Delta
    kind: Literal["part_delta"] = "part_delta"


@dataclass(slots=True)
class PartEnd:
    index: int
    kind: Literal["part_end"] = "part_end"


@dataclass(slots=True)
class StreamFinish:
    stop_reason: StopReason
    stop_sequence: str | None = None
    kind: Literal["finish"] = "finish"


@dataclass(slots=True)
class UsageReport:
    usage: Usage  # cumulative
    kind: Literal["usage"] = "usage"


@dataclass(slots=True)
class StreamError:
    error: GatewayError
    kind: Literal["error"] = "error"


StreamEvent = Union[StreamStart, PartStart, PartDelta, PartEnd, StreamFinish, UsageReport, StreamError]
