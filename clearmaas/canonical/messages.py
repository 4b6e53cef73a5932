"""Conversation content: messages made of tagged parts.

Nothing here knows a wire format. Anything only one provider understands (a thinking signature, a Gemini
thought signature, an Anthropic cache_control) rides in `details`, a dict keyed by provider kind, and is
re-sent only to that provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

__all__ = [
    "AudioPart",
    "Details",
    "DocumentPart",
    "ImagePart",
    "Message",
    "Part",
    "Role",
    "TextPart",
    "ThinkingPart",
    "ToolCallPart",
    "ToolResultPart",
    "UnknownPart",
]

# Provider-kind -> opaque provider data, e.g. {"anthropic": {"cache_control": {...}}}.
Details = dict[str, dict[str, Any]]


@dataclass(slots=True)
class TextPart:
    text: str
    details: Details | None = None
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image given either inline (`data`, base64, with `media_type`) or by `url`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    detail: str | None = None  # OpenAI's low/high/auto; lost on other providers
    details: Details | None = None
    kind: Literal["image"] = "image"


@dataclass(slots=True)
class DocumentPart:
    """A file such as a PDF, inline (`data`, base64) or by `url`; plain-text documents use `text`."""

    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    text: str | None = None
    filename: str | None = None
    title: str | None = None
    details: Details | None = None
    kind: Literal["document"] = "document"


@dataclass(slots=True)
class AudioPart:
    data: str  # base64
    format: str  # "wav", "mp3", ...
    details: Details | None = None
    kind: Literal["audio"] = "audio"


@dataclass(slots=True)
class ThinkingPart:
    """Reasoning text. `signature` is only valid at the provider named by `origin` (and its model family)."""

    text: str
    signature: str | None = None
    redacted: str | None = None  # Anthropic redacted_thinking data: opaque, no text
    origin: str | None = None  # provider kind that produced the signature
    details: Details | None = None
    kind: Literal["thinking"] = "thinking"


@dataclass(slots=True)
class ToolCallPart:
    """A call the model made. `arguments` is JSON text, kept as the model wrote it."""

    id: str
    name: str
    arguments: str = ""
    details: Details | None = None
    kind: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class ToolResultPart:
    """The result of a tool call, sent back by the client in a user turn."""

    tool_call_id: str
    content: list[TextPart | ImagePart | DocumentPart] = field(default_factory=list)
    is_error: bool = False
    name: str | None = None  # the tool's name when the client's protocol carries it (Gemini needs it)
    details: Details | None = None
    kind: Literal["tool_result"] = "tool_result"


@dataclass(slots=True)
class UnknownPart:
    """A block the hub does not model, kept verbatim for providers that speak `origin`'s protocol."""

    origin: str  # protocol name, e.g. "anthropic_messages"
    data: dict[str, Any]
    kind: Literal["unknown"] = "unknown"


Part = Union[TextPart, ImagePart, DocumentPart, AudioPart, ThinkingPart, ToolCallPart, ToolResultPart, UnknownPart]

Role = Literal["system", "user", "assistant"]


@dataclass(slots=True)
class Message:
    """One turn. Tool results are `ToolResultPart`s in a user turn; a `system` turn is a mid-conversation
    instruction (the leading system prompt lives in `ChatRequest.system`)."""

    role: Role
    parts: list[Part]
    name: str | None = None
    details: Details | None = None
