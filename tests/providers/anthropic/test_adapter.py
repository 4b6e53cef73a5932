"""The Anthropic adapter as the relay sees it: its identity, the registry entry and the contract's methods."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

from clearmaas.canonical import TextPart, accumulate
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.anthropic import AnthropicAdapter
from clearmaas.providers.base import Deployment, ProviderAdapter
from clearmaas.providers.registry import ADAPTERS
from clearmaas.transport.sse import iter_sse

from .recordings import body, sse_bytes


def test_identity_and_registry() -> None:
    adapter = ADAPTERS["anthropic"]()
    assert isinstance(adapter, AnthropicAdapter)
    assert (adapter.kind, adapter.family, adapter.native_protocol) == ("anthropic", "claude", "anthropic_messages")


def test_methods_match_the_contract() -> None:
    adapter: ProviderAdapter = AnthropicAdapter()
    for name, member in inspect.getmembers(ProviderAdapter, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(adapter, name)
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(member).parameters)[1:], name


async def test_adapter_round_trip_through_its_methods(sonnet: ModelEntry, deployment: Deployment) -> None:
    adapter = AnthropicAdapter()
    assert adapter.decode_response(body("anthropic-text.json")).usage.output_tokens == 29

    async def chunks() -> AsyncIterator[bytes]:
        yield sse_bytes("anthropic-text.chunks.txt")

    response = await accumulate(adapter.decode_stream(iter_sse(chunks())))
    assert response.parts[0] == TextPart(
        text="Hello! I'm doing well, thank you for asking. How are you doing today? "
        "Is there anything I can help you with?"
    )
    assert adapter.map_error(529, {}, b"").retryable
    assert adapter.passthrough_usage(body("anthropic-text.json")).input_tokens == 12
    upstream = adapter.passthrough_request(
        {"model": "m", "messages": []}, model=sonnet, deployment=deployment, headers={}
    )
    assert upstream.url.endswith("/v1/messages")
