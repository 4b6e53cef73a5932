"""The fake upstream driven by each provider's official SDK (openai for the OpenAI-compatible six, anthropic,
google-genai): plain, streamed, tool, reasoning and 429 answers parse exactly as the SDKs expect."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from google.genai.client import AsyncClient

from tests.fakes import ANSWER_TEXT, FAKE_KEYS, REASONING_TEXT, FakeUpstream
from tests.fakes.anthropic import thinking_signature

OPENAI_LIKE = ("openai", "deepseek", "grok", "qwen", "kimi", "minimax")
REASONING_FIELD = ("deepseek", "grok", "qwen", "kimi")
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOLS: list[Any] = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}},
                           {"type": "function", "function": {"name": "get_time", "parameters": SCHEMA}}]
ANTHROPIC_TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}]
MODEL = "claude-fake-1"  # not in the SDK's deprecation table, which would warn (and warnings are errors)


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


def openai_client(fake: FakeUpstream, provider: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_urls()[provider], api_key=FAKE_KEYS[provider], max_retries=0)


def anthropic_client(fake: FakeUpstream) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=fake.base_urls()["anthropic"], api_key=FAKE_KEYS["anthropic"],
                                    max_retries=0)


@contextlib.asynccontextmanager
async def gemini_client(fake: FakeUpstream) -> AsyncIterator[AsyncClient]:
    # An explicit httpx client keeps google-genai off its aiohttp path, whose ClientSession subclass warns.
    async with httpx2.AsyncClient() as http:
        options = genai_types.HttpOptions(base_url=fake.base_urls()["google"], httpx_async_client=http,
                                          retry_options=genai_types.HttpRetryOptions(attempts=1))
        client = genai.Client(api_key=FAKE_KEYS["google"], http_options=options)
        try:
            yield client.aio
        finally:
            await client.aio.aclose()
            client.close()


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


# --- OpenAI-compatible providers through the openai SDK -----------------------------------------------------------

@pytest.mark.parametrize("provider", OPENAI_LIKE)
async def test_openai_sdk_plain_answer(fake: FakeUpstream, provider: str) -> None:
    async with openai_client(fake, provider) as client:
        completion = await client.chat.completions.create(model="m", messages=user("Say hello please"))
    assert completion.choices[0].message.content == ANSWER_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 3 + 10
    assert fake.requests[-1]["headers"]["authorization"] == f"Bearer {FAKE_KEYS[provider]}"


@pytest.mark.parametrize("provider", OPENAI_LIKE)
async def test_openai_sdk_stream_accumulates_text_and_usage(fake: FakeUpstream, provider: str) -> None:
    async with openai_client(fake, provider) as client:
        stream = await client.chat.completions.create(model="m", messages=user("Say hello please"), stream=True,
                                                      stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER_TEXT
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    if provider == "kimi":  # Kimi puts streamed usage inside choices[0], where the SDK keeps it as an extra
        extra = chunks[-1].choices[0].model_extra or {}
        assert extra["usage"]["completion_tokens"] == 11
    else:
        usage = next(c.usage for c in chunks if c.usage is not None)
        assert (usage.prompt_tokens, usage.completion_tokens) == (13, 11)


@pytest.mark.parametrize("provider", OPENAI_LIKE)
async def test_openai_sdk_streamed_tool_calls_assemble(fake: FakeUpstream, provider: str) -> None:
    async with openai_client(fake, provider) as client:
        async with client.chat.completions.stream(model="m", messages=user("weather? [scenario:tool]"),
                                                  tools=OPENAI_TOOLS) as stream:
            async for _ in stream:
                pass
            completion = await stream.get_final_completion()
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
            ("get_weather", {"city": "Paris"})]
        if provider == "kimi":
            assert calls[0].id == "functions.get_weather:0"
        parallel = await client.chat.completions.create(model="m", messages=user("both [scenario:parallel_tools]"),
                                                        tools=OPENAI_TOOLS)
    both = [c for c in parallel.choices[0].message.tool_calls or [] if c.type == "function"]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in both] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"city": "London"})]
    assert len({c.id for c in both}) == 2


@pytest.mark.parametrize("provider", OPENAI_LIKE)
async def test_openai_sdk_reasoning_in_each_providers_form(fake: FakeUpstream, provider: str) -> None:
    async with openai_client(fake, provider) as client:
        completion = await client.chat.completions.create(model="m", messages=user("hi [scenario:reasoning]"))
        stream = await client.chat.completions.create(model="m", messages=user("hi [scenario:reasoning]"),
                                                      stream=True)
        deltas = [c.choices[0].delta for c in [chunk async for chunk in stream] if c.choices]
    message = completion.choices[0].message
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 14
    streamed_reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    streamed_text = "".join(d.content or "" for d in deltas)
    if provider in REASONING_FIELD:
        assert (message.model_extra or {})["reasoning_content"] == REASONING_TEXT
        assert (streamed_reasoning, streamed_text) == (REASONING_TEXT, ANSWER_TEXT)
    elif provider == "minimax":
        tagged = f"<think>\n{REASONING_TEXT}\n</think>\n\n{ANSWER_TEXT}"
        assert message.content == streamed_text == tagged
    else:  # OpenAI never returns reasoning text over Chat Completions, only its token count
        assert message.content == streamed_text == ANSWER_TEXT and streamed_reasoning == ""


async def test_openai_sdk_minimax_reasoning_split_moves_thinking_out_of_content(fake: FakeUpstream) -> None:
    async with openai_client(fake, "minimax") as client:
        completion = await client.chat.completions.create(model="MiniMax-M2", messages=user("hi [scenario:reasoning]"),
                                                          extra_body={"reasoning_split": True})
    message = completion.choices[0].message
    assert message.content == ANSWER_TEXT
    assert (message.model_extra or {})["reasoning_details"][0]["text"] == REASONING_TEXT


@pytest.mark.parametrize("provider", OPENAI_LIKE)
async def test_openai_sdk_sees_rate_limit_and_retry_after(fake: FakeUpstream, provider: str) -> None:
    async with openai_client(fake, provider) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="m", messages=user("hi [fault:429]"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert len(fake.requests) == 1  # max_retries=0: the SDK did not retry


@pytest.mark.parametrize("provider", OPENAI_LIKE)
async def test_openai_sdk_raises_on_the_in_band_stream_error(fake: FakeUpstream, provider: str) -> None:
    async with openai_client(fake, provider) as client:
        stream = await client.chat.completions.create(model="m", messages=user("hi [fault:stream_error]"),
                                                      stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


# --- Anthropic through the anthropic SDK ---------------------------------------------------------------------------

async def test_anthropic_sdk_plain_and_streamed(fake: FakeUpstream) -> None:
    async with anthropic_client(fake) as client:
        message = await client.messages.create(model=MODEL, max_tokens=64, messages=user("Say hello"))
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=user("Say hello")) as s:
            streamed_text = "".join([t async for t in s.text_stream])
            final = await s.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == ANSWER_TEXT
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 12, 11)
    assert streamed_text == ANSWER_TEXT
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 11)


async def test_anthropic_sdk_streamed_tool_use(fake: FakeUpstream) -> None:
    async with anthropic_client(fake) as client, client.messages.stream(
            model=MODEL, max_tokens=64, tools=ANTHROPIC_TOOLS,
            messages=user("weather? [scenario:parallel_tools]")) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"}),
                                                 ("get_weather", {"city": "London"})]
    assert all(u.id.startswith("toolu_01") for u in uses)
    assert final.usage.output_tokens == 20


async def test_anthropic_sdk_thinking_round_trips_with_its_signature(fake: FakeUpstream) -> None:
    async with anthropic_client(fake) as client:
        async with client.messages.stream(model=MODEL, max_tokens=256,
                                          thinking={"type": "enabled", "budget_tokens": 1024},
                                          messages=user("hi [scenario:reasoning]")) as stream:
            final = await stream.get_final_message()
        thinking, text = final.content
        assert thinking.type == "thinking" and text.type == "text"
        assert thinking.thinking == REASONING_TEXT and thinking.signature == thinking_signature(REASONING_TEXT)
        assert final.usage.output_tokens == 25
        follow_up = [*user("hi"), {"role": "assistant", "content": final.content}, *user("and now?")]
        again = await client.messages.create(model=MODEL, max_tokens=64, messages=follow_up)
    assert again.content[0].type == "text" and again.content[0].text == ANSWER_TEXT


async def test_anthropic_sdk_sees_rate_limit_and_overload(fake: FakeUpstream) -> None:
    async with anthropic_client(fake) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model=MODEL, max_tokens=64, messages=user("hi [fault:429]"))
        assert caught.value.response.headers["retry-after"] == "7"
        with pytest.raises(anthropic.APIStatusError) as overloaded:
            async with client.messages.stream(model=MODEL, max_tokens=64,
                                              messages=user("hi [fault:stream_error]")) as stream:
                await stream.get_final_message()
    assert "overloaded_error" in str(overloaded.value)
    assert len(fake.requests) == 2


# --- Gemini through google-genai -----------------------------------------------------------------------------------

async def test_genai_sdk_plain_and_streamed(fake: FakeUpstream) -> None:
    async with gemini_client(fake) as client:
        response = await client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
        chunks = [c async for c in await client.models.generate_content_stream(model="gemini-2.5-flash",
                                                                                    contents="Say hello")]
    assert response.text == ANSWER_TEXT
    usage = response.usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (12, 11)
    assert "".join(c.text or "" for c in chunks) == ANSWER_TEXT
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert fake.requests[-1]["query"] == {"alt": "sse"}


async def test_genai_sdk_function_calls(fake: FakeUpstream) -> None:
    tool = genai_types.Tool(function_declarations=[
        genai_types.FunctionDeclaration(name="get_weather", parameters_json_schema=SCHEMA)])
    config = genai_types.GenerateContentConfig(tools=[tool])
    async with gemini_client(fake) as client:
        response = await client.models.generate_content(model="gemini-2.5-flash", config=config,
                                                            contents="weather? [scenario:parallel_tools]")
        stream = await client.models.generate_content_stream(model="gemini-2.5-flash", config=config,
                                                                 contents="weather? [scenario:tool]")
        streamed = [call for c in [c async for c in stream] for call in c.function_calls or []]
    calls = response.function_calls or []
    assert [(c.name, c.args, c.id) for c in calls] == [("get_weather", {"city": "Paris"}, None),
                                                       ("get_weather", {"city": "London"}, None)]
    assert [(c.name, c.args) for c in streamed] == [("get_weather", {"city": "Paris"})]


async def test_genai_sdk_thoughts_and_signatures(fake: FakeUpstream) -> None:
    config = genai_types.GenerateContentConfig(thinking_config=genai_types.ThinkingConfig(include_thoughts=True))
    async with gemini_client(fake) as client:
        response = await client.models.generate_content(model="gemini-2.5-pro", config=config,
                                                            contents="hi [scenario:reasoning]")
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    thought, answer = response.candidates[0].content.parts
    assert (thought.thought, thought.text) == (True, REASONING_TEXT)
    assert answer.text == ANSWER_TEXT and answer.thought_signature
    assert response.usage_metadata is not None and response.usage_metadata.thoughts_token_count == 14


async def test_genai_sdk_sees_rate_limit_and_stream_errors(fake: FakeUpstream) -> None:
    async with gemini_client(fake) as client:
        with pytest.raises(genai_errors.ClientError) as caught:
            await client.models.generate_content(model="gemini-2.5-flash", contents="hi [fault:429]")
        with pytest.raises(genai_errors.APIError) as in_band:
            async for _ in await client.models.generate_content_stream(model="gemini-2.5-flash",
                                                                           contents="hi [fault:stream_error]"):
                pass
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    details = caught.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details
    assert in_band.value.code == 503
    assert len(fake.requests) == 2  # attempts=1: no retries
