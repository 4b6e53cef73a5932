"""A fast input-token estimate, for protocols that announce input tokens before the provider reports them
(Anthropic's message_start) and, later, for reserving credit before a call. Not a tokenizer: about four
characters a token plus a small per-message overhead, which errs a little high for English and code."""

from __future__ import annotations

import orjson

from clearmaas.canonical.messages import ImagePart, TextPart, ThinkingPart, ToolCallPart, ToolResultPart
from clearmaas.canonical.request import ChatRequest

__all__ = ["estimate_input_tokens"]

_IMAGE_TOKENS = 1000  # a typical 1-megapixel image at Anthropic's and OpenAI's rates


def estimate_input_tokens(request: ChatRequest) -> int:
    chars = sum(len(p.text) for p in request.system)
    tokens = 0
    for message in request.messages:
        tokens += 4
        for part in message.parts:
            if isinstance(part, TextPart):
                chars += len(part.text)
            elif isinstance(part, ThinkingPart):
                chars += len(part.text)
            elif isinstance(part, ToolCallPart):
                chars += len(part.name) + len(part.arguments)
            elif isinstance(part, ToolResultPart):
                chars += sum(len(c.text) for c in part.content if isinstance(c, TextPart))
                tokens += _IMAGE_TOKENS * sum(1 for c in part.content if isinstance(c, ImagePart))
            elif isinstance(part, ImagePart):
                tokens += _IMAGE_TOKENS
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "") + len(orjson.dumps(tool.parameters))
    return tokens + chars // 4 + 1
