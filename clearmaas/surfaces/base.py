"""The contract every inbound surface fulfils: the mirror image of a provider adapter.

`decode_request` turns a client body into a `ChatRequest`; `encode_response`, `encode_stream` and
`encode_error` turn canonical results back into the client's wire format. None of them does I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from clearmaas.canonical import ChatRequest, ChatResponse, StreamEvent
from clearmaas.errors import GatewayError

__all__ = ["EncodedError", "StreamContext", "Surface"]


@dataclass(slots=True)
class StreamContext:
    """What a stream encoder needs besides the events."""

    request: ChatRequest
    input_tokens_estimate: int = 0  # for protocols that announce input tokens before the provider has
    created: int = 0


@dataclass(slots=True)
class EncodedError:
    status: int
    headers: dict[str, str]
    body: bytes


class Surface(Protocol):
    protocol: str  # "openai_chat", "anthropic_messages", ...

    def decode_request(self, body: dict[str, Any], headers: Mapping[str, str]) -> ChatRequest: ...

    def encode_response(self, response: ChatResponse, request: ChatRequest) -> dict[str, Any]: ...

    def encode_stream(self, events: AsyncIterator[StreamEvent], context: StreamContext) -> AsyncIterator[bytes]: ...

    def encode_error(self, error: GatewayError) -> EncodedError: ...

    def encode_stream_error(self, error: GatewayError) -> bytes: ...
