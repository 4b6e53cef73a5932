"""The contract every provider adapter fulfils, and the request/deployment types they share.

An adapter is a set of pure functions over canonical types (no I/O: `transport/` does it):
`encode_request`, `decode_response`, `decode_stream`, `map_error`, plus the same-format fast path
(`passthrough_request`, `passthrough_usage`, `PassthroughStream`) for a client that already speaks the
provider's protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from clearmaas.canonical import ChatRequest, ChatResponse, StreamEvent, Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import GatewayError, UpstreamHTTPError
from clearmaas.transport.sse import SSEEvent

__all__ = ["Deployment", "PassthroughStream", "ProviderAdapter", "UpstreamRequest"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One way to reach a provider: a base URL (as the provider's official SDK means it) and a key."""

    base_url: str
    api_key: str
    name: str = "default"
    weight: int = 1


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool = False


@dataclass(slots=True)
class PassthroughStream:
    """Inspects a same-format stream event by event as it is forwarded.

    `forward` says whether the client gets the event (the gateway may ask for usage the client did not
    ask for, and must then hide it); `usage` and `error` are read as the events pass.
    """

    usage: Usage = field(default_factory=Usage)
    error: GatewayError | None = None
    events: int = 0
    # Characters of generated text, reasoning and tool arguments seen so far: the basis of an output estimate
    # when a stream ends before the provider reported its usage (OpenAI-style streams report it last).
    output_chars: int = 0


class ProviderAdapter(Protocol):
    """What the relay needs from a provider module."""

    kind: str  # adapter name: "openai_chat", "anthropic", "google"
    family: str  # error family for the client: "openai", "claude", "gemini"
    native_protocol: str | None  # the surface protocol it speaks byte for byte, enabling the fast path

    def encode_request(self, request: ChatRequest, *, model: ModelEntry, deployment: Deployment) -> UpstreamRequest: ...

    def decode_response(self, body: bytes) -> ChatResponse: ...

    def decode_stream(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[StreamEvent]: ...

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError: ...

    def passthrough_request(
        self, body: dict[str, Any], *, model: ModelEntry, deployment: Deployment, headers: Mapping[str, str]
    ) -> UpstreamRequest: ...

    def passthrough_usage(self, body: bytes) -> Usage: ...

    def passthrough_event(self, event: SSEEvent, state: PassthroughStream, *, client_wants_usage: bool) -> bool:
        """Update `state` from one upstream event; return whether to forward it to the client."""
        ...
