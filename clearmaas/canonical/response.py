"""A complete (non-streamed) chat response as the hub sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from clearmaas.canonical.messages import Details, Part
from clearmaas.canonical.usage import Usage

__all__ = ["ChatResponse", "StopReason"]

# Anthropic's vocabulary, the richest; surfaces map it down (protocols.md §6.1).
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "content_filter", "pause_turn"]


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str  # as the upstream named it
    parts: list[Part]
    stop_reason: StopReason = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    created: int = 0
    details: Details | None = None
