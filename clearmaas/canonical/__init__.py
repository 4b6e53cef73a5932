"""The hub: requests, responses and stream events that every surface and provider translates to and from.

Nothing in this package knows a wire format.
"""

from clearmaas.canonical.accumulate import Accumulator, accumulate, accumulate_sync
from clearmaas.canonical.assembly import StreamAssembler
from clearmaas.canonical.events import (
    PartDelta,
    PartEnd,
    PartStart,
    SignatureDelta,
    StreamError,
    StreamEvent,
    StreamFinish,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolArgumentsDelta,
    UsageReport,
)
from clearmaas.canonical.messages import (
    AudioPart,
    Details,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from clearmaas.canonical.request import ChatRequest, ReasoningConfig, ResponseFormat, ToolChoice, ToolDefinition
from clearmaas.canonical.response import ChatResponse, StopReason
from clearmaas.canonical.usage import Usage

__all__ = [
    "Accumulator", "AudioPart", "ChatRequest", "ChatResponse", "Details", "DocumentPart", "ImagePart", "Message",
    "Part", "PartDelta", "PartEnd", "PartStart", "ReasoningConfig", "ResponseFormat", "SignatureDelta",
    "StopReason", "StreamAssembler", "StreamError", "StreamEvent", "StreamFinish", "StreamStart", "TextDelta",
    "TextPart", "ThinkingDelta", "ThinkingPart", "ToolArgumentsDelta", "ToolCallPart", "ToolChoice",
    "ToolDefinition", "ToolResultPart", "UnknownPart", "Usage", "UsageReport", "accumulate", "accumulate_sync",
]
