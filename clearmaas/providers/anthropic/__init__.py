"""The Anthropic Messages provider: canonical requests to `POST /v1/messages` and back, plus the
same-format fast path for clients that already speak Anthropic Messages.

Modules: `request` (body, URL, headers) with `content` (system and messages) and `reasoning` (thinking),
`response` (whole responses, usage, stop reasons), `stream` (SSE events), `errors`, `passthrough`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from clearmaas.canonical import ChatRequest, ChatResponse, StreamEvent, Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import UpstreamHTTPError
from clearmaas.providers.anthropic.errors import FAMILY, map_error
from clearmaas.providers.anthropic.passthrough import passthrough_event, passthrough_request, passthrough_usage
from clearmaas.providers.anthropic.request import encode_request
from clearmaas.providers.anthropic.response import PROTOCOL, decode_response, map_usage
from clearmaas.providers.anthropic.stream import decode_stream
from clearmaas.providers.base import Deployment, PassthroughStream, UpstreamRequest
from clearmaas.transport.sse import SSEEvent

__all__ = [
    "AnthropicAdapter",
    "decode_response",
    "decode_stream",
    "encode_request",
    "map_error",
    "map_usage",
    "passthrough_event",
    "passthrough_request",
    "passthrough_usage",
]


class AnthropicAdapter:
    """The `ProviderAdapter` for Anthropic: a thin binding of this package's pure functions."""

    __slots__ = ()

    kind = "anthropic"
    family = FAMILY
    native_protocol: str | None = PROTOCOL

    def encode_request(self, request: ChatRequest, *, model: ModelEntry, deployment: Deployment) -> UpstreamRequest:
        return encode_request(request, model=model, deployment=deployment)

    def decode_response(self, body: bytes) -> ChatResponse:
        return decode_response(body)

    def decode_stream(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[StreamEvent]:
        return decode_stream(events)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
        return map_error(status, headers, body)

    def passthrough_request(
        self, body: dict[str, Any], *, model: ModelEntry, deployment: Deployment, headers: Mapping[str, str]
    ) -> UpstreamRequest:
        return passthrough_request(body, model=model, deployment=deployment, headers=headers)

    def passthrough_usage(self, body: bytes) -> Usage:
        return passthrough_usage(body)

    def passthrough_event(self, event: SSEEvent, state: PassthroughStream, *, client_wants_usage: bool) -> bool:
        return passthrough_event(event, state, client_wants_usage=client_wants_usage)
