"""Anthropic Messages wire shapes as the client sees them, and the small encodings that live on the wire
(stop reasons, usage, foreign thinking signatures).

Nothing here converts whole requests or responses: `decode.py`, `encode.py` and `stream.py` do.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from clearmaas.canonical import StopReason, Usage

__all__ = [
    "MODELLED_FIELDS",
    "PROTOCOL",
    "WireContentBlock",
    "WireError",
    "WireErrorBody",
    "WireMessage",
    "WireOutputTokensDetails",
    "WireRedactedThinkingBlock",
    "WireServerToolUsage",
    "WireTextBlock",
    "WireThinkingBlock",
    "WireToolUseBlock",
    "WireUsage",
    "tag_signature",
    "untag_signature",
    "wire_stop_reason",
    "wire_usage",
]

PROTOCOL = "anthropic_messages"

# Top-level request fields the hub models; every other field rides verbatim in `ChatRequest.extra`, for
# Anthropic-protocol upstreams only. `output_config` is modelled (effort, format) and kept there too, so an
# Anthropic upstream gets the client's own object, keys the hub does not model included.
MODELLED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
    }
)


class WireServerToolUsage(TypedDict):
    web_search_requests: int
    web_fetch_requests: int


class WireOutputTokensDetails(TypedDict):
    thinking_tokens: int


class WireUsage(TypedDict):
    """`usage` of a message (and, all fields present, of a `message_delta`)."""

    input_tokens: int  # excludes cache reads and writes, as the hub's Usage does
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int
    server_tool_use: NotRequired[WireServerToolUsage]
    output_tokens_details: NotRequired[WireOutputTokensDetails]


class WireTextBlock(TypedDict):
    type: Literal["text"]
    text: str
    citations: NotRequired[list[Any]]


class WireThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class WireRedactedThinkingBlock(TypedDict):
    type: Literal["redacted_thinking"]
    data: str


class WireToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


# Blocks we do not model (server_tool_use, web_search_tool_result, ...) pass through as plain dicts.
WireContentBlock = WireTextBlock | WireThinkingBlock | WireRedactedThinkingBlock | WireToolUseBlock | dict[str, Any]


class WireMessage(TypedDict):
    """A non-streamed response, and (empty, with `stop_reason` null) the `message` of `message_start`."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[WireContentBlock]
    stop_reason: str | None
    stop_sequence: str | None
    usage: WireUsage


class WireErrorBody(TypedDict):
    type: str  # ClearMaas's error type (clearmaas_api_error, upstream_error, claude_error, ...)
    code: str | None
    message: str


class WireError(TypedDict):
    type: Literal["error"]
    error: WireErrorBody
    request_id: NotRequired[str | None]


# The hub speaks Anthropic's vocabulary already; only the content filter has another name here.
_STOP_REASONS: dict[str, str] = {"content_filter": "refusal"}


def wire_stop_reason(stop_reason: StopReason | str) -> str:
    return _STOP_REASONS.get(stop_reason, stop_reason)


def wire_usage(usage: Usage) -> WireUsage:
    """Anthropic's usage object; the hub's disjoint buckets are Anthropic's own convention."""
    wire: WireUsage = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": usage.output_tokens,
    }
    searches = usage.server_tool_calls.get("web_search", 0)
    fetches = usage.server_tool_calls.get("web_fetch", 0)
    if searches or fetches:
        # Both counts are required by the SDK's ServerToolUsage model.
        wire["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": fetches}
    if usage.reasoning_tokens:
        wire["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return wire


# A thinking signature from another provider (a Gemini thought signature, OpenAI encrypted reasoning) is
# valid only there. Anthropic clients echo thinking blocks back verbatim, so the origin rides inside the
# signature and comes back with it; ':' never occurs in Anthropic's base64 signatures.
_SIGNATURE_TAG = "clearmaas:"


def tag_signature(signature: str, origin: str | None) -> str:
    """The signature as sent to the client: Anthropic's own unchanged, anyone else's tagged with its origin."""
    if origin is None or origin == "anthropic" or not signature:
        return signature
    return f"{_SIGNATURE_TAG}{origin}:{signature}"


def untag_signature(signature: str) -> tuple[str, str]:
    """(signature, origin) of a signature a client sent back."""
    if signature.startswith(_SIGNATURE_TAG):
        origin, sep, rest = signature[len(_SIGNATURE_TAG) :].partition(":")
        if sep and origin:
            return rest, origin
    return signature, "anthropic"
