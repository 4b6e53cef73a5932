"""Encode the hub's `ChatResponse` as an Anthropic `message`, exactly as the Anthropic SDK parses it.

Also holds the per-block conversions `stream.py` shares (message ids, tool ids, tool input). Parts the
protocol cannot carry in a response (images, tool results, other protocols' unknown blocks) are left out.
No I/O.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from clearmaas.canonical import ChatRequest, ChatResponse, Part, TextPart, ThinkingPart, ToolCallPart, UnknownPart
from clearmaas.canonical.tool_ids import safe_tool_id
from clearmaas.surfaces.anthropic_messages.wire import (
    PROTOCOL,
    WireContentBlock,
    WireMessage,
    tag_signature,
    wire_stop_reason,
    wire_usage,
)

__all__ = ["RAW_ARGUMENTS_KEY", "content_block", "encode_response", "message_id", "tool_input"]

# Where tool arguments that are not a JSON object end up (see `tool_input`).
RAW_ARGUMENTS_KEY = "_raw_arguments"


def encode_response(response: ChatResponse, request: ChatRequest) -> dict[str, Any]:
    """The body of a non-streamed `POST /v1/messages` answer (a `WireMessage`)."""
    content: list[WireContentBlock] = []
    for part in response.parts:
        block = content_block(part)
        if block is not None:
            content.append(block)
    message: WireMessage = {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model or request.model,
        "content": content,
        "stop_reason": wire_stop_reason(response.stop_reason),
        "stop_sequence": response.stop_sequence,
        "usage": wire_usage(response.usage),
    }
    return dict(message)


def content_block(part: Part) -> WireContentBlock | None:
    """A part as a complete response content block; None when the protocol has no place for it."""
    if isinstance(part, TextPart):
        # Clients echo blocks back, and Anthropic rejects empty text blocks (protocols.md §0.7).
        if not part.text:
            return None
        citations = ((part.details or {}).get("anthropic") or {}).get("citations")
        if citations:
            return {"type": "text", "text": part.text, "citations": citations}
        return {"type": "text", "text": part.text}
    if isinstance(part, ThinkingPart):
        if part.redacted is not None:
            return {"type": "redacted_thinking", "data": tag_signature(part.redacted, part.origin)}
        return {
            "type": "thinking",
            "thinking": part.text,
            "signature": tag_signature(part.signature or "", part.origin),
        }
    if isinstance(part, ToolCallPart):
        return {"type": "tool_use", "id": safe_tool_id(part.id), "name": part.name, "input": tool_input(part.arguments)}
    if isinstance(part, UnknownPart) and part.origin == PROTOCOL:
        return dict(part.data)
    return None


def tool_input(arguments: str) -> dict[str, object]:
    """A tool call's `input` object from its JSON arguments text.

    Empty arguments (a tool called without any) and `null` are `{}`. Anthropic's `input` must be an object,
    so arguments that are invalid JSON or not an object (a model's broken output) are kept whole as
    `{"_raw_arguments": "<text>"}`: the client's tool then fails its own validation and the model sees what
    it wrote, instead of the gateway failing the whole response.
    """
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS_KEY: arguments}
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {RAW_ARGUMENTS_KEY: arguments}


def message_id(response_id: str) -> str:
    """Anthropic message ids start `msg_`; other providers' ids keep their text after the prefix."""
    if response_id.startswith("msg_"):
        return response_id
    return "msg_" + (response_id or uuid.uuid4().hex)
