"""A chat request as the hub sees it: what every surface decodes into and every provider encodes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from clearmaas.canonical.messages import Details, Message, TextPart

__all__ = [
    "ChatRequest",
    "Effort",
    "ReasoningConfig",
    "ResponseFormat",
    "ToolChoice",
    "ToolDefinition",
]

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


@dataclass(slots=True)
class ToolDefinition:
    """A client-side function tool. `parameters` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    details: Details | None = None


@dataclass(slots=True)
class ToolChoice:
    """`auto`, `required` (any tool), `none`, or `tool` (the one named)."""

    mode: Literal["auto", "required", "none", "tool"]
    name: str | None = None


@dataclass(slots=True)
class ReasoningConfig:
    """How much the model should think.

    `effort` is the portable knob; `budget_tokens` an explicit thinking budget; `enabled=False` turns thinking
    off; `adaptive` is Anthropic's budget-less mode. Providers map what they can (advanced__reasoning.md).
    """

    effort: Effort | None = None
    budget_tokens: int | None = None
    enabled: bool = True
    adaptive: bool = False
    include_thoughts: bool | None = None


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(slots=True)
class ChatRequest:
    """A chat request. `origin` names the surface protocol it was decoded from; `extra` holds the fields
    that surface did not model, forwarded only to providers speaking the same protocol."""

    model: str
    messages: list[Message]
    origin: str
    system: list[TextPart] = field(default_factory=list)
    tools: list[ToolDefinition] = field(default_factory=list)
    # Tools the hub does not model (server/built-in tools), kept verbatim for same-protocol providers.
    native_tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False  # the client asked for usage in the stream (OpenAI's stream_options)
    reasoning: ReasoningConfig | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Protocol headers from the client (e.g. anthropic-beta), forwarded only to same-protocol providers.
    forward_headers: dict[str, str] = field(default_factory=dict)
