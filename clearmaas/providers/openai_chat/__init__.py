"""The OpenAI Chat Completions adapter, shared by OpenAI and every OpenAI-compatible provider through a
`Profile` of quirk flags (`clearmaas/providers/profiles.py`).

The adapter is a thin binding of one profile to the pure functions of this package; it holds no state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from clearmaas.canonical import ChatRequest, ChatResponse, StreamEvent, Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import UpstreamHTTPError
from clearmaas.providers.base import Deployment, PassthroughStream, UpstreamRequest
from clearmaas.providers.openai_chat import passthrough
from clearmaas.providers.openai_chat.errors import map_error
from clearmaas.providers.openai_chat.request import encode_request
from clearmaas.providers.openai_chat.response import decode_response
from clearmaas.providers.openai_chat.stream import decode_stream
from clearmaas.providers.profiles import Profile
from clearmaas.transport.sse import SSEEvent

__all__ = ["OpenAIChatAdapter"]


class OpenAIChatAdapter:
    """A `ProviderAdapter` for one OpenAI-compatible provider, described by its profile."""

    kind = "openai_chat"
    family = "openai"

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        # Only byte-compatible providers take the fast path; the others need translation for their quirks.
        self.native_protocol: str | None = "openai_chat" if profile.native else None

    def encode_request(self, request: ChatRequest, *, model: ModelEntry, deployment: Deployment) -> UpstreamRequest:
        return encode_request(request, model=model, deployment=deployment, profile=self.profile)

    def decode_response(self, body: bytes) -> ChatResponse:
        return decode_response(body, profile=self.profile)

    def decode_stream(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[StreamEvent]:
        return decode_stream(events, profile=self.profile)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
        return map_error(status, headers, body, profile=self.profile)

    def passthrough_request(
        self, body: dict[str, Any], *, model: ModelEntry, deployment: Deployment, headers: Mapping[str, str]
    ) -> UpstreamRequest:
        return passthrough.passthrough_request(
            body, model=model, deployment=deployment, headers=headers, profile=self.profile
        )

    def passthrough_usage(self, body: bytes) -> Usage:
        return passthrough.passthrough_usage(body, profile=self.profile)

    def passthrough_event(self, event: SSEEvent, state: PassthroughStream, *, client_wants_usage: bool) -> bool:
        return passthrough.passthrough_event(
            event, state, client_wants_usage=client_wants_usage, profile=self.profile
        )

