from __future__ import annotations

import inspect

from clearmaas.canonical import ChatRequest, Message, TextPart, accumulate
from clearmaas.providers.base import ProviderAdapter
from clearmaas.providers.google import GoogleAdapter
from clearmaas.transport.sse import iter_sse

from .recordings import DEPLOYMENT, body, chunk_lines, gemini, sse_bytes


def test_identity() -> None:
    adapter: ProviderAdapter = GoogleAdapter()
    assert (adapter.kind, adapter.family, adapter.native_protocol) == ("google", "gemini", "gemini")


def test_every_contract_method_is_implemented_with_its_keywords() -> None:
    for name, member in inspect.getmembers(ProviderAdapter, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = inspect.signature(getattr(GoogleAdapter, name))
        theirs = inspect.signature(member)
        assert list(theirs.parameters) == [p for p in ours.parameters if p != "stream"], name


async def test_adapter_round_trip_through_its_methods() -> None:
    adapter = GoogleAdapter()
    request = ChatRequest(
        model="google/gemini-3-pro-preview",
        messages=[Message(role="user", parts=[TextPart(text="hi")])],
        origin="openai_chat",
        stream=True,
    )
    wire = adapter.encode_request(request, model=gemini("gemini-3-pro-preview"), deployment=DEPLOYMENT)
    assert wire.stream and wire.url.endswith(":streamGenerateContent?alt=sse")
    streamed = await accumulate(adapter.decode_stream(iter_sse(sse_bytes(chunk_lines("google-text.chunks.txt")))))
    whole = adapter.decode_response(body("google-text.json"))
    assert streamed.stop_reason == whole.stop_reason == "end_turn"
    assert adapter.map_error(429, {}, body("google-429-retry-info.json")).retry_after == 35
