"""Decode a whole Anthropic Messages response: content blocks to parts, stop reasons, usage.

Shared with `stream.py` (usage and stop reasons) and `passthrough.py` (usage); it must not build requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from clearmaas.canonical import ChatResponse, Part, StopReason, TextPart, ThinkingPart, ToolCallPart, UnknownPart, Usage
from clearmaas.errors import UpstreamProtocolError

__all__ = [
    "ORIGIN",
    "PROTOCOL",
    "decode_block",
    "decode_response",
    "map_stop_reason",
    "map_usage",
    "merge_usage",
]

ORIGIN = "anthropic"  # ThinkingPart.origin: the provider whose signatures these are
PROTOCOL = "anthropic_messages"  # UnknownPart.origin and ChatRequest.origin of the same wire protocol

# Anthropic stop_reason -> hub StopReason (protocols.md §6.1). `refusal` comes from streaming classifiers;
# `model_context_window_exceeded` means the output was cut short, as `max_tokens` does.
_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "pause_turn": "pause_turn",
    "refusal": "content_filter",
    "model_context_window_exceeded": "max_tokens",
}

_REQUESTS_SUFFIX = "_requests"


def decode_response(body: bytes) -> ChatResponse:
    """A non-streaming Messages response body as a `ChatResponse`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError("The upstream response is not valid JSON.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise UpstreamProtocolError("The upstream response is not an Anthropic message.")
    parts = [part for block in data["content"] if isinstance(block, dict) and (part := decode_block(block)) is not None]
    has_tool_calls = any(isinstance(part, ToolCallPart) for part in parts)
    stop_sequence = data.get("stop_sequence")
    return ChatResponse(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        parts=parts,
        stop_reason=map_stop_reason(data.get("stop_reason"), has_tool_calls=has_tool_calls),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        usage=map_usage(data.get("usage")),
    )


def decode_block(block: dict[str, Any]) -> Part | None:
    """One response content block as a part; None for an empty text block (never worth replaying)."""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str) or not text:
            return None
        citations = block.get("citations")
        # Citations ride in details so an Anthropic-bound replay or an Anthropic client gets them back.
        details = {ORIGIN: {"citations": citations}} if citations else None
        return TextPart(text=text, details=details)
    if kind == "thinking":
        return ThinkingPart(
            text=str(block.get("thinking") or ""), signature=block.get("signature") or None, origin=ORIGIN
        )
    if kind == "redacted_thinking":
        return ThinkingPart(text="", redacted=str(block.get("data") or ""), origin=ORIGIN)
    if kind == "tool_use":
        tool_input = block.get("input")
        return ToolCallPart(
            id=str(block.get("id") or ""),
            name=str(block.get("name") or ""),
            arguments=orjson.dumps(tool_input if tool_input is not None else {}).decode(),
        )
    # server_tool_use, web_search_tool_result and every block type added later: kept verbatim.
    return UnknownPart(origin=PROTOCOL, data=block)


def map_stop_reason(reason: object, *, has_tool_calls: bool = False) -> StopReason:
    if isinstance(reason, str) and reason in _STOP_REASONS:
        return _STOP_REASONS[reason]
    return "tool_use" if has_tool_calls else "end_turn"


def map_usage(wire: object) -> Usage:
    """Anthropic `usage` as hub usage. Anthropic's `input_tokens` already excludes cache reads and writes,
    which is the hub's convention, so no bucket is subtracted."""
    return merge_usage(Usage(), wire)


def merge_usage(previous: Usage, wire: object) -> Usage:
    """`previous` updated with the fields `wire` carries: a stream's `message_delta` usage is cumulative but
    may omit the input and cache counts that only `message_start` gave."""
    if not isinstance(wire, Mapping):
        return Usage(
            input_tokens=previous.input_tokens,
            cache_read_tokens=previous.cache_read_tokens,
            cache_write_tokens=previous.cache_write_tokens,
            output_tokens=previous.output_tokens,
            reasoning_tokens=previous.reasoning_tokens,
            server_tool_calls=dict(previous.server_tool_calls),
        )
    details = wire.get("output_tokens_details")
    return Usage(
        input_tokens=_count(wire, "input_tokens", previous.input_tokens),
        cache_read_tokens=_count(wire, "cache_read_input_tokens", previous.cache_read_tokens),
        cache_write_tokens=_count(wire, "cache_creation_input_tokens", previous.cache_write_tokens),
        output_tokens=_count(wire, "output_tokens", previous.output_tokens),
        # Newer responses report thinking inside output_tokens; older ones do not report it at all.
        reasoning_tokens=(
            _count(details, "thinking_tokens", previous.reasoning_tokens)
            if isinstance(details, Mapping)
            else previous.reasoning_tokens
        ),
        server_tool_calls=_server_tool_calls(wire.get("server_tool_use"), previous.server_tool_calls),
    )


def _count(wire: Mapping[str, Any], key: str, default: int) -> int:
    value = wire.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    return default


def _server_tool_calls(wire: object, previous: dict[str, int]) -> dict[str, int]:
    """`{"web_search_requests": 2, "web_fetch_requests": 0}` -> `{"web_search": 2}` (billable calls only)."""
    if not isinstance(wire, Mapping):
        return dict(previous)
    calls: dict[str, int] = {}
    for key, value in wire.items():
        if key.endswith(_REQUESTS_SUFFIX) and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            calls[key[: -len(_REQUESTS_SUFFIX)]] = value
    return calls
