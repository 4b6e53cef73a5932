"""The same-format fast path, and the adapter as the relay sees it."""

from __future__ import annotations

import orjson
import pytest

from clearmaas.canonical import ChatRequest, Message, TextPart, Usage, accumulate
from clearmaas.providers.base import Deployment, PassthroughStream, ProviderAdapter
from clearmaas.providers.openai_chat import OpenAIChatAdapter
from clearmaas.providers.profiles import DEEPSEEK, GENERIC, MINIMAX, OPENAI, PROFILES
from clearmaas.transport.sse import SSEParser
from tests.providers.openai_chat.recordings import body, entry, recording_sse, sse

DEPLOYMENT = Deployment(base_url="https://api.openai.com/v1/", api_key="sk-upstream")
NANO = entry("gpt-4.1-nano-2025-04-14")


def test_request_edits_only_the_model_and_usage() -> None:
    client = {
        "model": "openai/gpt-4.1-nano",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_obfuscation": False},
        "seed": 3,
        "reasoning_effort": "low",
    }
    upstream = OpenAIChatAdapter(OPENAI).passthrough_request(
        client, model=NANO, deployment=DEPLOYMENT, headers={"authorization": "Bearer sk-clearmaas-client"}
    )
    assert upstream.url == "https://api.openai.com/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer sk-upstream"
    assert upstream.stream is True
    assert orjson.loads(upstream.body) == {
        **client,
        "model": "gpt-4.1-nano-2025-04-14",
        "stream_options": {"include_obfuscation": False, "include_usage": True},
    }
    assert client["model"] == "openai/gpt-4.1-nano"  # the caller's dict is not modified


def test_non_streaming_request_gets_no_stream_options() -> None:
    upstream = OpenAIChatAdapter(GENERIC).passthrough_request(
        {"model": "m", "messages": []}, model=NANO, deployment=DEPLOYMENT, headers={}
    )
    assert orjson.loads(upstream.body) == {"model": "gpt-4.1-nano-2025-04-14", "messages": []}
    assert upstream.stream is False


def test_usage_of_a_whole_response() -> None:
    adapter = OpenAIChatAdapter(OPENAI)
    assert adapter.passthrough_usage(body("openai-chat/openai-text.json")) == Usage(input_tokens=16, output_tokens=363)
    assert adapter.passthrough_usage(b"not json") == Usage()


@pytest.mark.parametrize("wants_usage", [True, False])
def test_stream_usage_is_read_and_hidden_unless_asked(wants_usage: bool) -> None:
    adapter = OpenAIChatAdapter(OPENAI)
    state = PassthroughStream()
    events = SSEParser().feed(recording_sse("openai-chat/openai-text.chunks.txt"))
    forwarded = [e for e in events if adapter.passthrough_event(e, state, client_wants_usage=wants_usage)]
    assert state.usage == Usage(input_tokens=16, output_tokens=300)
    assert state.events == len(events) and state.error is None
    hidden = [e for e in events if e not in forwarded]
    if wants_usage:
        assert hidden == []
    else:
        assert len(hidden) == 1 and orjson.loads(hidden[0].data)["choices"] == []
    assert forwarded[-1].data == "[DONE]"
    assert forwarded[0].raw == events[0].raw  # bytes are forwarded as the provider sent them


def test_usage_in_a_finish_chunk_is_forwarded() -> None:
    adapter = OpenAIChatAdapter(DEEPSEEK)
    state = PassthroughStream()
    events = SSEParser().feed(recording_sse("deepseek/deepseek-text.chunks.txt"))
    assert all(adapter.passthrough_event(e, state, client_wants_usage=False) for e in events)
    assert state.usage == Usage(input_tokens=13, output_tokens=400)


def test_in_band_error_is_recorded_and_forwarded() -> None:
    state = PassthroughStream()
    event = sse(
        {
            "error": {
                "message": "Rate limit reached. Please try again in 1.5s.",
                "type": "tokens",
                "code": "rate_limit_exceeded",
            }
        }
    )
    assert OpenAIChatAdapter(OPENAI).passthrough_event(event, state, client_wants_usage=False) is True
    assert state.error is not None
    assert (state.error.status, state.error.retry_after) == (429, 2)


def test_adapters_declare_the_fast_path_only_where_bytes_match() -> None:
    native = {kind: OpenAIChatAdapter(profile).native_protocol for kind, profile in PROFILES.items()}
    assert native == {
        "openai": "openai_chat",
        "deepseek": None,
        "grok": None,
        "qwen": None,
        "kimi": None,
        "minimax": None,
        "openai_compatible": "openai_chat",
    }
    adapter: ProviderAdapter = OpenAIChatAdapter(MINIMAX)
    assert (adapter.kind, adapter.family) == ("openai_chat", "openai")


async def test_adapter_methods_bind_the_profile() -> None:
    adapter = OpenAIChatAdapter(MINIMAX)
    request = ChatRequest(
        model="minimax/minimax-m2.7",
        messages=[Message("user", [TextPart("Hi")])],
        origin="anthropic_messages",
        stream=True,
    )
    upstream = adapter.encode_request(
        request,
        model=entry("MiniMax-M2.7", provider="minimax"),
        deployment=Deployment(base_url="https://api.minimax.io/v1", api_key="k"),
    )
    assert orjson.loads(upstream.body)["reasoning_split"] is True
    whole = orjson.dumps(
        {"id": "1", "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "<think>a</think>b"}}]}
    )
    assert [p.kind for p in adapter.decode_response(whole).parts] == ["thinking", "text"]

    async def upstream_events():  # type: ignore[no-untyped-def]
        yield sse({"id": "1", "model": "m", "choices": [{"index": 0, "delta": {"content": "<think>a</think>b"}}]})
        yield sse({"id": "1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})

    streamed = await accumulate(adapter.decode_stream(upstream_events()))
    assert [p.kind for p in streamed.parts] == ["thinking", "text"]
    assert adapter.map_error(429, {"retry-after": "4"}, b"{}").retry_after == 4
