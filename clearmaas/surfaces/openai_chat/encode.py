"""Encode a canonical `ChatResponse` as a `chat.completion` object, exactly as the OpenAI SDK parses it.

Also owns the small maps the stream encoder shares: finish reasons, usage and chunk ids. No I/O here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from clearmaas.canonical import ChatRequest, ChatResponse, StopReason, Usage
from clearmaas.surfaces.openai_chat.wire import (
    ChatCompletion,
    FinishReason,
    PromptTokensDetails,
    ResponseMessage,
    ToolCall,
    WireUsage,
)

__all__ = ["completion_id", "encode_response", "finish_reason", "now", "wire_usage"]

_FINISH: dict[StopReason, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",  # the matched sequence is not reported (protocols.md §2.3)
    "pause_turn": "stop",  # no chat equivalent (protocols.md §6.1)
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(stop_reason: StopReason, *, has_tool_calls: bool) -> FinishReason:
    """OpenAI's finish reason; a plain stop with tool calls is `tool_calls`, as clients loop on it
    (Gemini and some OpenAI-compatible providers say `stop`, protocols.md §6.1)."""
    reason = _FINISH.get(stop_reason, "stop")
    if reason == "stop" and has_tool_calls:
        return "tool_calls"
    return reason


def wire_usage(usage: Usage) -> WireUsage:
    """OpenAI usage: `prompt_tokens` includes cached tokens, `completion_tokens` includes reasoning."""
    prompt_details: PromptTokensDetails = {"cached_tokens": usage.cache_read_tokens}
    if usage.cache_write_tokens:
        # Anthropic-style cache writes; the SDK's `PromptTokensDetails.cache_write_tokens` carries them.
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_id(upstream_id: str) -> str:
    """The upstream id when it already looks like OpenAI's, else prefixed (DeepSeek sends UUIDs, Anthropic
    `msg_…`); a fresh one when the upstream gave none."""
    if upstream_id.startswith("chatcmpl-"):
        return upstream_id
    return "chatcmpl-" + (upstream_id or uuid.uuid4().hex)


def now() -> int:
    return int(time.time())


def encode_response(response: ChatResponse, request: ChatRequest) -> dict[str, Any]:
    """The `chat.completion` body for a non-streaming client."""
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[ToolCall] = []
    for part in response.parts:
        if part.kind == "text":
            texts.append(part.text)
        elif part.kind == "thinking":
            reasoning.append(part.text)
        elif part.kind == "tool_call":
            tool_calls.append(
                {"id": part.id, "type": "function", "function": {"name": part.name, "arguments": part.arguments}}
            )
        # Other parts (images, unknown blocks) have no place in a chat message.
    content: str | None = "".join(texts)
    if not texts and tool_calls:
        content = None
    message: ResponseMessage = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if any(reasoning):
        # Non-standard, as DeepSeek/Qwen/Kimi return it; the SDK keeps unknown fields (protocols.md §6.7).
        message["reasoning_content"] = "".join(reasoning)
    body: ChatCompletion = {
        "id": completion_id(response.id),
        "object": "chat.completion",
        "created": response.created or now(),
        "model": response.model or request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(response.stop_reason, has_tool_calls=bool(tool_calls)),
            }
        ],
        "usage": wire_usage(response.usage),
    }
    return dict(body)
