"""Sanity tests of the fake upstream over raw HTTP: routing, auth, recording, framing against the recordings, usage
figures, every fault, fast mode and the subprocess entry point."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from tests.fakes import (
    ANSWER_TEXT,
    FAKE_KEYS,
    INVALID_REQUEST_MESSAGES,
    PROVIDERS,
    REASONING_TEXT,
    FakeUpstream,
    provider_base_urls,
)
from tests.fakes.anthropic import thinking_signature
from tests.fakes.errors import FIXTURES

OPENAI_LIKE = ("openai", "deepseek", "grok", "qwen", "kimi", "minimax")
TOOL_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
               "required": ["city"]}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


def native(provider: str, text: str, *, stream: bool = False, tools: bool = False,
           messages: list[dict[str, Any]] | None = None, **extra: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A request in the provider's own protocol: (path with query, headers, body)."""
    base = provider_base_urls("")[provider]
    if provider == "anthropic":
        body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": stream,
                                "messages": messages or [{"role": "user", "content": text}]}
        if tools:
            body["tools"] = [{"name": "get_weather", "input_schema": TOOL_SCHEMA}]
        headers = {"x-api-key": FAKE_KEYS[provider], "anthropic-version": "2023-06-01"}
        return base + "/v1/messages", headers, {**body, **extra}
    if provider == "google":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {"contents": messages or [{"role": "user", "parts": [{"text": text}]}]}
        if tools:
            body["tools"] = [{"functionDeclarations": [{"name": "get_weather", "parameters": TOOL_SCHEMA}]}]
        headers = {"x-goog-api-key": FAKE_KEYS[provider]}
        return f"{base}/v1beta/models/gemini-2.5-flash:{method}", headers, {**body, **extra}
    body = {"model": f"{provider}-model", "stream": stream, "messages": messages or [{"role": "user", "content": text}]}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": TOOL_SCHEMA}}]
    return base + "/chat/completions", {"authorization": f"Bearer {FAKE_KEYS[provider]}"}, {**body, **extra}


async def call(fake: FakeUpstream, provider: str, text: str, **kwargs: Any) -> tuple[int, CIMultiDict[str], bytes]:
    path, headers, body = native(provider, text, **kwargs)
    async with aiohttp.ClientSession() as session, session.post(fake.base_url + path, json=body,
                                                                 headers=headers) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


def frames(raw: bytes) -> list[bytes]:
    return [f for f in re.split(rb"\r?\n\r?\n", raw) if f]


def data_of(frame: bytes) -> Any:
    line = next(x for x in frame.splitlines() if x.startswith(b"data: "))
    payload = line[len(b"data: "):]
    return payload.decode() if payload == b"[DONE]" else orjson.loads(payload)


def answer_and_usage(provider: str, body: dict[str, Any]) -> tuple[str, int, int]:
    if provider == "anthropic":
        return body["content"][0]["text"], body["usage"]["input_tokens"], body["usage"]["output_tokens"]
    if provider == "google":
        meta = body["usageMetadata"]
        return body["candidates"][0]["content"]["parts"][0]["text"], meta["promptTokenCount"], meta[
            "candidatesTokenCount"]
    usage = body["usage"]
    return body["choices"][0]["message"]["content"], usage["prompt_tokens"], usage["completion_tokens"]


def recorded(name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def test_base_urls_are_shaped_like_the_real_ones() -> None:
    assert provider_base_urls("http://127.0.0.1:9/") == {
        "openai": "http://127.0.0.1:9/openai/v1", "anthropic": "http://127.0.0.1:9/anthropic",
        "google": "http://127.0.0.1:9/google", "deepseek": "http://127.0.0.1:9/deepseek",
        "grok": "http://127.0.0.1:9/grok/v1", "qwen": "http://127.0.0.1:9/qwen/compatible-mode/v1",
        "kimi": "http://127.0.0.1:9/kimi/v1", "minimax": "http://127.0.0.1:9/minimax/v1",
    }
    assert set(FAKE_KEYS) == set(PROVIDERS)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_plain_answer_and_usage_follow_the_documented_formula(fake: FakeUpstream, provider: str) -> None:
    status, _, raw = await call(fake, provider, "What is the capital of France?")
    text, input_tokens, output_tokens = answer_and_usage(provider, orjson.loads(raw))
    assert (status, text) == (200, ANSWER_TEXT)
    assert (input_tokens, output_tokens) == (6 + 10, 11)


AUTH_EXPECTED: dict[str, tuple[int, int, str]] = {  # wrong-key status, missing-key status, text in the body
    "openai": (401, 401, "invalid_api_key"), "anthropic": (401, 401, "authentication_error"),
    "google": (400, 403, "API_KEY_INVALID"), "deepseek": (401, 401, "Authentication Fails"),
    "grok": (400, 400, "Incorrect API key provided"), "qwen": (401, 401, "invalid_api_key"),
    "kimi": (401, 401, "invalid_authentication_error"), "minimax": (401, 401, "authorized_error"),
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_wrong_and_missing_keys_get_the_providers_real_rejection(fake: FakeUpstream, provider: str) -> None:
    wrong_status, missing_status, marker = AUTH_EXPECTED[provider]
    path, headers, body = native(provider, "hi")
    async with aiohttp.ClientSession() as session:
        wrong = {k: "not-the-key" if k in ("x-api-key", "x-goog-api-key") else "Bearer not-the-key"
                 for k in headers if k != "anthropic-version"} | {"anthropic-version": "2023-06-01"}
        async with session.post(fake.base_url + path, json=body, headers=wrong) as resp:
            assert resp.status == wrong_status
            text = await resp.text()
            assert marker in text
            if provider == "google":
                assert orjson.loads(text)["error"]["code"] == 400
        async with session.post(fake.base_url + path, json=body, headers={"anthropic-version": "2023-06-01"}) as resp:
            assert resp.status == missing_status


async def test_requests_are_recorded_listed_and_cleared(fake: FakeUpstream) -> None:
    await call(fake, "google", "hello there")
    await call(fake, "kimi", "hello again")
    assert [r["provider"] for r in fake.requests] == ["google", "kimi"]
    first = fake.requests[0]
    assert first["path"] == "/google/v1beta/models/gemini-2.5-flash:generateContent"
    assert first["headers"]["x-goog-api-key"] == FAKE_KEYS["google"]
    assert first["body"]["contents"][0]["parts"][0]["text"] == "hello there"
    async with aiohttp.ClientSession() as session:
        async with session.get(fake.base_url + "/__requests") as resp:
            listed = await resp.json()
        assert [r["path"] for r in listed] == [r["path"] for r in fake.requests]
        async with session.delete(fake.base_url + "/__requests") as resp:
            assert await resp.json() == {"cleared": 2}
    assert fake.requests == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_framing_is_each_providers_own(fake: FakeUpstream, provider: str) -> None:
    status, headers, raw = await call(fake, provider, "hi", stream=True)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    parts = frames(raw)
    if provider == "anthropic":
        for frame in parts:
            name = frame.split(b"\n")[0].removeprefix(b"event: ").decode()
            assert data_of(frame)["type"] == name
    elif provider == "google":
        assert raw.endswith(b"\r\n\r\n") and b"[DONE]" not in raw and b"event:" not in raw
    else:
        assert all(f.startswith(b"data: ") for f in parts) and b"event:" not in raw
        assert parts[-1] == b"data: [DONE]"


async def test_openai_stream_matches_the_recording_shape(fake: FakeUpstream) -> None:
    record = recorded("openai-chat/openai-text.chunks.txt")
    _, _, raw = await call(fake, "openai", "hi", stream=True, stream_options={"include_usage": True})
    chunks = [data_of(f) for f in frames(raw)][:-1]
    assert all(set(c) == set(record[0]) - {"obfuscation"} for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == record[0]["choices"][0]["delta"]
    assert chunks[-1]["choices"] == [] and set(chunks[-1]["usage"]) == set(record[-1]["usage"])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["usage"] is None
    _, _, without = await call(fake, "openai", "hi", stream=True)
    assert b'"usage"' not in without  # usage only when the client asks for it


async def test_deepseek_stream_matches_the_recording_shape(fake: FakeUpstream) -> None:
    record = recorded("deepseek/deepseek-reasoning.chunks.txt")
    _, _, raw = await call(fake, "deepseek", "hi [scenario:reasoning]", stream=True)
    chunks = [data_of(f) for f in frames(raw)][:-1]
    uuid.UUID(chunks[0]["id"])  # DeepSeek chunk ids are UUIDs
    assert [set(c) for c in chunks] == [set(r) for r in record[: len(chunks) - 1] + record[-1:]]
    assert chunks[0]["choices"][0]["delta"] == record[0]["choices"][0]["delta"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert set(chunks[-1]["usage"]) == set(record[-1]["usage"])
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 14}


async def test_grok_stream_matches_the_recording_shape(fake: FakeUpstream) -> None:
    record = recorded("xai/xai-text.chunks.txt")
    _, _, raw = await call(fake, "grok", "hi [scenario:reasoning]", stream=True, stream_options={"include_usage": True})
    chunks = [data_of(f) for f in frames(raw)][:-1]
    assert chunks[0]["choices"][0]["delta"] == {"reasoning_content": "The user", "role": "assistant"}
    assert set(chunks[1]["choices"][0]) == set(record[1]["choices"][0])  # no logprobs, no finish_reason yet
    assert set(chunks[-1]["usage"]) == set(record[-1]["usage"]) - {"cost_in_usd_ticks"}
    usage = chunks[-1]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] + 14


async def test_anthropic_stream_matches_the_recording_shape(fake: FakeUpstream) -> None:
    record = recorded("anthropic/anthropic-text.chunks.txt")
    _, _, raw = await call(fake, "anthropic", "hi", stream=True)
    events = [data_of(f) for f in frames(raw)]
    types = [e["type"] for e in events]
    assert types[:3] == [r["type"] for r in record[:3]] == ["message_start", "content_block_start", "ping"]
    assert types[-3:] == [r["type"] for r in record[-3:]]
    assert set(events[0]["message"]) == set(record[0]["message"])
    assert set(events[0]["message"]["usage"]) >= set(record[0]["message"]["usage"]) - {"inference_geo"}
    assert events[-2]["usage"] == {"input_tokens": 11, "cache_creation_input_tokens": 0,
                                   "cache_read_input_tokens": 0, "output_tokens": 11}
    thinking = recorded("anthropic/anthropic-clear-thinking.1.chunks.txt")
    _, _, raw = await call(fake, "anthropic", "hi [scenario:reasoning]", stream=True)
    events = [data_of(f) for f in frames(raw)]
    assert events[1]["content_block"] == thinking[1]["content_block"]
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert deltas[-1] == "signature_delta" and set(deltas[:-1]) == {"thinking_delta"}


async def test_gemini_stream_matches_the_recording_shape(fake: FakeUpstream) -> None:
    record = recorded("google/google-tool-call.chunks.txt")
    _, _, raw = await call(fake, "google", "hi [scenario:tool]", stream=True, tools=True)
    chunks = [data_of(f) for f in frames(raw)]
    assert [set(c) for c in chunks] == [set(r) for r in record]
    call_part = chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call_part == {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}}  # no id, whole args
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [10, 10]


async def test_gemini_without_alt_sse_streams_a_json_array(fake: FakeUpstream) -> None:
    path, headers, body = native("google", "hi", stream=True)
    async with aiohttp.ClientSession() as session, session.post(
            fake.base_url + path.replace("?alt=sse", ""), json=body, headers=headers) as resp:
        chunks = orjson.loads(await resp.read())
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == ANSWER_TEXT
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [2, 4, 6, 8, 10, 11]


RATE_LIMIT_MARKERS = {
    "openai": "rate_limit_exceeded", "anthropic": "rate_limit_error", "google": "RESOURCE_EXHAUSTED",
    "deepseek": "Rate Limit Reached", "grok": "Some resource has been exhausted", "qwen": "limit_requests",
    "kimi": "rate_limit_reached_error", "minimax": "(1002)",
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fault_429_has_retry_after_and_the_real_body(fake: FakeUpstream, provider: str) -> None:
    status, headers, raw = await call(fake, provider, "hi [fault:429]")
    assert (status, headers["retry-after"]) == (429, "7")
    assert RATE_LIMIT_MARKERS[provider] in raw.decode()
    if provider == "google":
        details = orjson.loads(raw)["error"]["details"]
        assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("code", [500, 503])
async def test_server_faults_use_the_status_and_the_providers_envelope(fake: FakeUpstream, provider: str,
                                                                       code: int) -> None:
    status, _, raw = await call(fake, provider, f"hi [fault:{code}]", stream=True)
    body = orjson.loads(raw)
    assert status == code and "error" in body
    assert body.get("type") == "error" if provider in ("anthropic", "minimax") else "type" not in body


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fault_400_carries_a_recognisable_message(fake: FakeUpstream, provider: str) -> None:
    status, _, raw = await call(fake, provider, "hi [fault:400]")
    assert status == 400 and INVALID_REQUEST_MESSAGES[provider] in raw.decode()


async def test_fault_timeout_holds_back_the_headers(fake: FakeUpstream) -> None:
    started = time.monotonic()
    status, _, _ = await call(fake, "openai", "hi [fault:timeout:0.3]")
    assert status == 200 and time.monotonic() - started >= 0.3
    path, headers, body = native("anthropic", "hi [fault:timeout]")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(fake.base_url + path, json=body, headers=headers)
    started = time.monotonic()
    await fake.stop()  # the abandoned 30-second handler must not hold the shutdown
    assert time.monotonic() - started < 3


async def test_fault_reset_closes_without_any_response(fake: FakeUpstream) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(fake, "deepseek", "hi [fault:reset]")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fault_drop_aborts_a_stream_after_three_frames(fake: FakeUpstream, provider: str) -> None:
    path, headers, body = native(provider, "hi [fault:drop]", stream=True)
    received = b""
    async with aiohttp.ClientSession() as session, session.post(fake.base_url + path, json=body,
                                                                 headers=headers) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            async for piece in resp.content.iter_any():
                received += piece
    assert resp.status == 200 and len(frames(received)) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fault_stream_error_ends_with_the_in_band_error(fake: FakeUpstream, provider: str) -> None:
    status, _, raw = await call(fake, provider, "hi [fault:stream_error]", stream=True)
    parts = frames(raw)
    assert status == 200 and len(parts) == 4 and b"[DONE]" not in raw and b"message_stop" not in raw
    error = data_of(parts[-1])
    if provider == "anthropic":
        assert parts[-1].startswith(b"event: error\n")
        assert error["error"]["type"] == "overloaded_error"
    else:
        assert "error" in error


async def test_fault_minimax_200_error_is_a_base_resp_envelope(fake: FakeUpstream) -> None:
    status, _, raw = await call(fake, "minimax", "hi [fault:minimax_200_error]")
    body = orjson.loads(raw)
    assert status == 200 and body["choices"] is None
    assert body["base_resp"] == {"status_code": 1002, "status_msg": "rate limit exceeded(RPM)"}
    status, _, raw = await call(fake, "minimax", "hi [fault:minimax_200_error:1008]", stream=True)
    assert status == 200 and data_of(frames(raw)[0])["base_resp"]["status_code"] == 1008


async def test_slow_scenario_spaces_chunks_50ms_apart(fake: FakeUpstream) -> None:
    path, headers, body = native("kimi", "hi [scenario:slow]", stream=True)
    arrivals: list[float] = []
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.post(fake.base_url + path, json=body,
                                                                 headers=headers) as resp:
        async for _ in resp.content:  # one line at a time
            arrivals.append(time.monotonic() - started)
    data_lines = arrivals[::2]
    assert data_lines[0] < 0.2  # the first chunk is not held back
    assert data_lines[-1] - data_lines[0] >= 0.05 * (len(data_lines) - 1) * 0.9


async def test_a_client_leaving_mid_stream_marks_the_request_cancelled(fake: FakeUpstream) -> None:
    path, headers, body = native("deepseek", "hi [scenario:slow:100]", stream=True)
    async with aiohttp.ClientSession() as session:
        async with session.post(fake.base_url + path, json=body, headers=headers) as resp:
            await resp.content.readline()
            resp.close()  # hang up after the first line
        for _ in range(40):
            if fake.requests[-1].get("cancelled"):
                break
            await asyncio.sleep(0.05)
        assert fake.requests[-1]["cancelled"] is True
        _, _, raw = await call(fake, "deepseek", "hi", stream=True)
    assert "cancelled" not in fake.requests[-1] and raw.endswith(b"data: [DONE]\n\n")


async def test_markers_come_from_the_last_message_so_a_tool_result_gets_an_answer(fake: FakeUpstream) -> None:
    _, _, raw = await call(fake, "openai", "weather in Paris? [scenario:tool]", tools=True)
    first = orjson.loads(raw)["choices"][0]["message"]
    assert first["content"] is None and first["tool_calls"][0]["function"]["arguments"] == (
        '{"city":"Paris","unit":"celsius"}')
    history = [{"role": "user", "content": "weather in Paris? [scenario:tool]"}, first,
               {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "sunny"}]
    _, _, raw = await call(fake, "openai", "", tools=True, messages=history)
    second = orjson.loads(raw)
    assert second["choices"][0]["message"]["content"] == ANSWER_TEXT
    assert second["usage"]["prompt_tokens"] == 5 + 10  # 4 words of user text (marker included) + "sunny"


async def test_kimi_tool_ids_count_every_call_in_the_conversation(fake: FakeUpstream) -> None:
    prior = {"role": "assistant", "content": "", "tool_calls": [
        {"id": f"functions.get_weather:{i}", "type": "function",
         "function": {"name": "get_weather", "arguments": "{}"}} for i in range(2)]}
    history = [{"role": "user", "content": "hi"}, prior,
               *({"role": "tool", "tool_call_id": f"functions.get_weather:{i}", "content": "ok"} for i in range(2)),
               {"role": "user", "content": "again [scenario:parallel_tools]"}]
    _, _, raw = await call(fake, "kimi", "", tools=True, messages=history)
    ids = [c["id"] for c in orjson.loads(raw)["choices"][0]["message"]["tool_calls"]]
    assert ids == ["functions.get_weather:2", "functions.get_weather:3"]


async def test_qwen_later_tool_fragments_carry_an_empty_id(fake: FakeUpstream) -> None:
    _, _, raw = await call(fake, "qwen", "hi [scenario:tool]", stream=True, tools=True)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in map(data_of, frames(raw)[:-1])
             if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["arguments"] == '{"city'
    assert len(calls) > 2 and all(c["id"] == "" and "name" not in c["function"] for c in calls[1:])


async def test_minimax_think_tags_split_across_chunks_unless_reasoning_split(fake: FakeUpstream) -> None:
    _, _, raw = await call(fake, "minimax", "hi [scenario:reasoning]", stream=True)
    contents = [c["choices"][0]["delta"].get("content") or "" for c in map(data_of, frames(raw)[:-1])]
    joined = "".join(contents)
    assert joined.startswith("<think>\nThe user") and "</think>\n\nHello from" in joined
    assert not any("<think>" in c or "</think>" in c for c in contents)  # never whole inside one chunk
    _, _, raw = await call(fake, "minimax", "hi [scenario:reasoning]", stream=True, reasoning_split=True)
    deltas = [c["choices"][0]["delta"] for c in map(data_of, frames(raw)[:-1])]
    details = [d["reasoning_details"][0] for d in deltas if "reasoning_details" in d]
    assert "".join(d["text"] for d in details) == REASONING_TEXT
    assert details[0]["format"] == "MiniMax-response-v1"
    assert "<think>" not in "".join(d.get("content", "") for d in deltas)


async def test_max_tokens_cuts_the_answer_with_the_length_reason(fake: FakeUpstream) -> None:
    _, _, raw = await call(fake, "anthropic", "hi", max_tokens=1)
    body = orjson.loads(raw)
    assert (body["stop_reason"], body["content"], body["usage"]["output_tokens"]) == (
        "max_tokens", [{"type": "text", "text": "Hello"}], 1)
    _, _, raw = await call(fake, "deepseek", "hi", max_tokens=3)
    choice = orjson.loads(raw)["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == ("length", "Hello from the")


async def test_anthropic_rejects_altered_thinking_signatures_and_a_missing_version(fake: FakeUpstream) -> None:
    thinking = "The user greets me, so a short and friendly answer is the right reply."
    def turn(signature: str) -> list[dict[str, Any]]:
        block = {"type": "thinking", "thinking": thinking, "signature": signature}
        return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [block, {"type": "text",
                                                                                              "text": "Hello"}]},
                {"role": "user", "content": "more"}]
    status, _, _ = await call(fake, "anthropic", "", messages=turn(thinking_signature(thinking)))
    assert status == 200
    status, _, raw = await call(fake, "anthropic", "", messages=turn(thinking_signature(thinking) + "x"))
    assert status == 400 and "Invalid `signature` in `thinking` block" in raw.decode()
    path, _, body = native("anthropic", "hi")
    async with aiohttp.ClientSession() as session, session.post(
            fake.base_url + path, json=body, headers={"x-api-key": FAKE_KEYS["anthropic"]}) as resp:
        assert resp.status == 400 and "anthropic-version" in await resp.text()


async def test_gemini_shows_thought_parts_only_when_asked(fake: FakeUpstream) -> None:
    _, _, raw = await call(fake, "google", "hi [scenario:reasoning]")
    body = orjson.loads(raw)
    assert [set(p) for p in body["candidates"][0]["content"]["parts"]] == [{"text", "thoughtSignature"}]
    assert body["usageMetadata"]["thoughtsTokenCount"] == 14
    _, _, raw = await call(fake, "google", "hi [scenario:reasoning]",
                           generationConfig={"thinkingConfig": {"includeThoughts": True}})
    parts = orjson.loads(raw)["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[1]["text"] == ANSWER_TEXT


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fast_header_answers_precomputed_bytes_without_recording(fake: FakeUpstream, provider: str) -> None:
    path, headers, body = native(provider, "hi [fault:500]", stream=True)
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(fake.base_url + path, json=body, headers={**headers, "x-fake-fast": "1"}) as resp:
                raw = await resp.read()
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        assert b"ok" in raw
        async with session.post(fake.base_url + path, json=body, headers={"x-fake-fast": "1"}) as resp:
            assert resp.status in (400, 401, 403)  # still authenticates
    assert fake.requests == [] and fake.fast_hits == 3


async def test_fast_server_serves_every_request_fast() -> None:
    async with FakeUpstream(fast=True) as fake:
        status, _, raw = await call(fake, "openai", "hi [fault:429]", stream=False)
        assert status == 200 and orjson.loads(raw)["choices"][0]["message"]["content"] == "ok"
        assert fake.fast_hits == 1 and fake.requests == []


def test_subprocess_prints_ready_and_serves() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.upstream", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"READY \d+\n", line)
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{line.split()[1]}/__health", timeout=5) as resp:
            assert orjson.loads(resp.read()) == {"status": "ok"}
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_in_thread_serves_synchronous_clients() -> None:
    import urllib.request

    with FakeUpstream.in_thread() as fake:
        path, headers, body = native("qwen", "hi")
        request = urllib.request.Request(fake.base_url + path, data=orjson.dumps(body), headers=headers)
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert orjson.loads(resp.read())["choices"][0]["message"]["content"] == ANSWER_TEXT
        assert len(fake.requests) == 1
