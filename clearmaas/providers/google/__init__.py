"""The Google Gemini adapter (`generateContent` / `streamGenerateContent?alt=sse` on the Gemini API).

The translators are pure functions in this package's modules; `GoogleAdapter` bundles them behind the
`ProviderAdapter` contract. Design notes: request.py (contents, tools), thinking.py (thinkingLevel vs
thinkingBudget), response.py (finish reasons, usage), stream.py, passthrough.py (the stream flag).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from clearmaas.canonical import ChatRequest, ChatResponse, StreamEvent, Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import UpstreamHTTPError
from clearmaas.providers.base import Deployment, PassthroughStream, UpstreamRequest
from clearmaas.providers.google.errors import map_error
from clearmaas.providers.google.passthrough import (
    STREAM_HEADER,
    passthrough_event,
    passthrough_request,
    passthrough_usage,
)
from clearmaas.providers.google.request import encode_request
from clearmaas.providers.google.response import decode_response, map_usage
from clearmaas.providers.google.stream import decode_stream
from clearmaas.transport.sse import SSEEvent

__all__ = [
    "STREAM_HEADER",
    "GoogleAdapter",
    "decode_response",
    "decode_stream",
    "encode_request",
    "map_error",
    "map_usage",
    "passthrough_event",
    "passthrough_request",
    "passthrough_usage",
]


class GoogleAdapter:
    """Speaks the Gemini API for the relay."""

    kind = "google"
    family = "gemini"
    native_protocol: str | None = "gemini"

    def encode_request(self, request: ChatRequest, *, model: ModelEntry, deployment: Deployment) -> UpstreamRequest:
        return encode_request(request, model=model, deployment=deployment)

    def decode_response(self, body: bytes) -> ChatResponse:
        return decode_response(body)

    def decode_stream(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[StreamEvent]:
        return decode_stream(events)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
        return map_error(status, headers, body)

    def passthrough_request(
        self,
        body: dict[str, Any],
        *,
        model: ModelEntry,
        deployment: Deployment,
        headers: Mapping[str, str],
        stream: bool = False,
    ) -> UpstreamRequest:
        return passthrough_request(body, model=model, deployment=deployment, headers=headers, stream=stream)

    def passthrough_usage(self, body: bytes) -> Usage:
        return passthrough_usage(body)

    def passthrough_event(self, event: SSEEvent, state: PassthroughStream, *, client_wants_usage: bool) -> bool:
        return passthrough_event(event, state, client_wants_usage=client_wants_usage)
