"""The Anthropic fast path: minimal request edits and usage read off untouched responses and streams."""

from __future__ import annotations

import orjson

from clearmaas.canonical import Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import UpstreamHTTPError
from clearmaas.providers.anthropic import passthrough_event, passthrough_request, passthrough_usage
from clearmaas.providers.base import Deployment, PassthroughStream
from clearmaas.transport.sse import SSEParser

from .recordings import body, sse, sse_bytes


def test_request_changes_only_the_model_and_auth(sonnet: ModelEntry, deployment: Deployment) -> None:
    client_body = {
        "model": "anthropic/claude-sonnet-4.5",
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "You are Claude Code", "cache_control": {"type": "ephemeral", "scope": "global"}}
        ],
        "messages": [{"role": "user", "content": "hi"}],
        "context_management": {"edits": []},
        "stream": True,
    }
    upstream = passthrough_request(
        client_body,
        model=sonnet,
        deployment=deployment,
        headers={
            "Anthropic-Version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,prompt-caching-scope-2026-01-05",
            "x-api-key": "sk-clearmaas-client-key",
            "authorization": "Bearer sk-clearmaas-client-key",
            "user-agent": "claude-cli/2.0 (external, cli)",
        },
    )
    assert upstream.url == "https://api.anthropic.example/v1/messages"
    assert upstream.stream is True
    assert upstream.headers == {
        "x-api-key": "sk-ant-test-key",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,prompt-caching-scope-2026-01-05",
        "content-type": "application/json",
    }
    sent = orjson.loads(upstream.body)
    assert sent == {**client_body, "model": "claude-sonnet-4-5-20250929"}
    assert list(sent) == list(client_body)  # key order kept
    assert client_body["model"] == "anthropic/claude-sonnet-4.5"  # the caller's dict is not modified


def test_default_version_and_non_streaming(sonnet: ModelEntry, deployment: Deployment) -> None:
    upstream = passthrough_request(
        {"model": "x", "max_tokens": 5, "messages": []}, model=sonnet, deployment=deployment, headers={}
    )
    assert upstream.headers["anthropic-version"] == "2023-06-01"
    assert "anthropic-beta" not in upstream.headers
    assert upstream.stream is False


def test_usage_of_whole_responses() -> None:
    assert passthrough_usage(body("anthropic-text.json")) == Usage(input_tokens=12, output_tokens=29)
    assert passthrough_usage(body("anthropic-web-search-tool.1.json")) == Usage(
        input_tokens=27118, output_tokens=600, server_tool_calls={"web_search": 2}
    )
    assert passthrough_usage(body("anthropic-claude-opus-5-reasoning-high.1.json")).reasoning_tokens == 139
    assert passthrough_usage(b"not json") == Usage()
    assert passthrough_usage(b"[]") == Usage()


def _run(data: bytes) -> tuple[PassthroughStream, list[bool]]:
    state = PassthroughStream()
    parser = SSEParser()
    forwarded = [passthrough_event(event, state, client_wants_usage=False) for event in parser.feed(data)]
    return state, forwarded


def test_stream_usage_is_read_and_every_event_forwarded() -> None:
    state, forwarded = _run(sse_bytes("anthropic-web-search-tool.1.chunks.txt"))
    assert all(forwarded) and state.events == len(forwarded)
    assert state.usage == Usage(input_tokens=15665, output_tokens=795, server_tool_calls={"web_search": 1})
    assert state.error is None
    state, _ = _run(sse_bytes("anthropic-clear-thinking.1.chunks.txt"))
    assert state.usage == Usage(input_tokens=69, output_tokens=53)


def test_stream_usage_merges_when_message_delta_omits_input() -> None:
    start = {
        "type": "message_start",
        "message": {"id": "m", "usage": {"input_tokens": 50, "cache_read_input_tokens": 900, "output_tokens": 1}},
    }
    data = (
        sse(start).raw
        + sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 77}}).raw
    )
    state, _ = _run(data)
    assert state.usage == Usage(input_tokens=50, cache_read_tokens=900, output_tokens=77)


def test_stream_error_is_recorded_and_still_forwarded() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    state, forwarded = _run(sse(error).raw)
    assert forwarded == [True]
    assert isinstance(state.error, UpstreamHTTPError)
    assert state.error.upstream_status == 529 and state.error.retryable


def test_usage_is_found_without_event_names() -> None:
    state = PassthroughStream()
    event = sse({"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}})
    event.event = None
    assert passthrough_event(event, state, client_wants_usage=True) is True
    assert state.usage == Usage(input_tokens=9, output_tokens=1)


def test_fast_path_drops_thinking_anthropic_did_not_sign() -> None:
    from clearmaas.providers.anthropic.passthrough import without_foreign_thinking

    own = {"type": "thinking", "thinking": "a", "signature": "EqQBCkgIARABGAIiQ..."}
    unsigned = {"type": "thinking", "thinking": "b", "signature": ""}
    tagged = {"type": "thinking", "thinking": "c", "signature": "clearmaas:google:xyz"}
    text = {"type": "text", "text": "hi"}
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [unsigned, text]},
        {"role": "assistant", "content": [tagged]},
        {"role": "assistant", "content": [own, text]},
    ]
    assert without_foreign_thinking(messages) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [text]},
        {"role": "assistant", "content": [own, text]},
    ]
    untouched = [{"role": "assistant", "content": [own]}]
    assert without_foreign_thinking(untouched) is untouched
