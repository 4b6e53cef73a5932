"""The OpenAI Chat Completions surface: `/v1/chat/completions` bodies in, canonical types through, chat
completions (or chunk streams) out. HTTP handling lives in `handlers.py`, not here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from clearmaas.canonical import ChatRequest, ChatResponse, StreamEvent
from clearmaas.errors import GatewayError
from clearmaas.surfaces.base import EncodedError, StreamContext, Surface
from clearmaas.surfaces.openai_chat.decode import decode_request
from clearmaas.surfaces.openai_chat.encode import encode_response
from clearmaas.surfaces.openai_chat.errors import encode_error, encode_stream_error
from clearmaas.surfaces.openai_chat.stream import encode_stream

__all__ = [
    "SURFACE",
    "OpenAIChatSurface",
    "decode_request",
    "encode_error",
    "encode_response",
    "encode_stream",
    "encode_stream_error",
]


class OpenAIChatSurface:
    """The `Surface` for OpenAI Chat Completions clients."""

    protocol = "openai_chat"

    def decode_request(self, body: dict[str, Any], headers: Mapping[str, str]) -> ChatRequest:
        return decode_request(body, headers)

    def encode_response(self, response: ChatResponse, request: ChatRequest) -> dict[str, Any]:
        return encode_response(response, request)

    def encode_stream(self, events: AsyncIterator[StreamEvent], context: StreamContext) -> AsyncIterator[bytes]:
        return encode_stream(events, context)

    def encode_error(self, error: GatewayError) -> EncodedError:
        return encode_error(error)

    def encode_stream_error(self, error: GatewayError) -> bytes:
        return encode_stream_error(error)


SURFACE: Surface = OpenAIChatSurface()
