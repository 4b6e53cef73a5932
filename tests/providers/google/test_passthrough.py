from __future__ import annotations

import orjson

from clearmaas.canonical import Usage
from clearmaas.providers.base import PassthroughStream
from clearmaas.providers.google import STREAM_HEADER, GoogleAdapter, passthrough_request, passthrough_usage
from clearmaas.transport.sse import SSEParser

from .recordings import DEPLOYMENT, body, chunk_lines, gemini

NATIVE_BODY = {
    "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    "tools": [{"googleSearch": {}}],
    "generationConfig": {"thinkingConfig": {"thinkingLevel": "low"}},
}


def test_body_is_forwarded_as_is_to_the_catalogue_model() -> None:
    wire = passthrough_request(NATIVE_BODY, model=gemini("gemini-3-pro-preview"), deployment=DEPLOYMENT, headers={})
    assert orjson.loads(wire.body) == NATIVE_BODY
    assert wire.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-3-pro-preview:generateContent"
    assert wire.headers == {"content-type": "application/json", "x-goog-api-key": "AIza-test-key"}
    assert not wire.stream


def test_stream_from_keyword_or_header() -> None:
    model = gemini("gemini-2.5-flash")
    by_keyword = passthrough_request(NATIVE_BODY, model=model, deployment=DEPLOYMENT, headers={}, stream=True)
    by_header = passthrough_request(
        NATIVE_BODY, model=model, deployment=DEPLOYMENT, headers={"X-ClearMaas-Stream": "1"}
    )
    for wire in (by_keyword, by_header):
        assert wire.stream and wire.url.endswith("/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert STREAM_HEADER == "x-clearmaas-stream"
    adapter = GoogleAdapter()
    assert adapter.passthrough_request(NATIVE_BODY, model=model, deployment=DEPLOYMENT, headers={}, stream=True).stream


def test_usage_of_a_whole_answer() -> None:
    assert passthrough_usage(body("google-tool-call.json")) == Usage(
        input_tokens=29, output_tokens=908, reasoning_tokens=893
    )
    assert passthrough_usage(b"not json") == Usage()


def _events(name: str) -> list[object]:
    parser = SSEParser()
    raw = b"".join(b"data: " + line.encode() + b"\r\n\r\n" for line in chunk_lines(name))
    return list(parser.feed(raw))


def test_stream_events_are_all_forwarded_and_usage_is_the_last_cumulative() -> None:
    adapter = GoogleAdapter()
    state = PassthroughStream()
    events = _events("google-stream-tool-call-arguments.chunks.txt")
    assert all(adapter.passthrough_event(e, state, client_wants_usage=False) for e in events)  # type: ignore[arg-type]
    assert state.events == 8
    assert state.usage == Usage(input_tokens=26, output_tokens=155, reasoning_tokens=132)
    assert state.error is None


def test_stream_error_is_recorded_and_still_forwarded() -> None:
    parser = SSEParser()
    [event] = parser.feed(b'data: {"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}\r\n\r\n')
    state = PassthroughStream()
    assert GoogleAdapter().passthrough_event(event, state, client_wants_usage=True)
    assert state.error is not None and state.error.status == 429


def test_web_searches_seen_earlier_are_kept() -> None:
    parser = SSEParser()
    first = {
        "candidates": [{"groundingMetadata": {"webSearchQueries": ["a", "b"]}}],
        "usageMetadata": {"promptTokenCount": 3},
    }
    last = {
        "candidates": [{"finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 9},
    }
    events = parser.feed(b"".join(b"data: " + orjson.dumps(x) + b"\r\n\r\n" for x in (first, last)))
    state = PassthroughStream()
    for event in events:
        GoogleAdapter().passthrough_event(event, state, client_wants_usage=False)
    assert state.usage == Usage(input_tokens=3, output_tokens=9, server_tool_calls={"web_search": 2})
