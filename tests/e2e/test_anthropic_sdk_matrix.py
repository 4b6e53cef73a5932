"""The official `anthropic` SDK against the real gateway's `/v1/messages`, for each chat provider: plain and
streamed answers (the SDK's stream helper), streamed tool calls, thinking, usage in Anthropic's convention, and a
full tool loop — checking both what the client gets and what the upstream received."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import pytest

from tests.e2e.cases import (
    ANSWER_TOKENS,
    ANTHROPIC_TOOLS,
    CASE_IDS,
    CASES,
    REASONING_CASES,
    REASONING_TOKENS,
    TOOL_ARGS,
    Case,
    input_tokens,
    upstream_requests,
)
from tests.e2e.harness import FakeUpstreamProcess, GatewayProcess
from tests.fakes.google import thought_signature
from tests.fakes.scenarios import ANSWER_TEXT, REASONING_TEXT, TOOL_CALL_TOKENS

SYSTEM = "You are terse."
PROMPT = "Say hello please"
PLAIN_INPUT = input_tokens(SYSTEM, PROMPT)
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
matrix = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
reasoning_matrix = pytest.mark.parametrize("case", REASONING_CASES, ids=[c.provider for c in REASONING_CASES])


def user(text: str = PROMPT) -> list[Any]:
    return [{"role": "user", "content": text}]


def only_request(fake: FakeUpstreamProcess, case: Case) -> dict[str, Any]:
    found = upstream_requests(fake.requests(), case)
    assert len(found) == 1, found
    return found[0]


def assert_usage(usage: Any, *, input_tokens: int, output_tokens: int) -> None:
    # Anthropic's input_tokens excludes cache reads and writes; the fake reports no cache.
    assert (usage.input_tokens, usage.output_tokens) == (input_tokens, output_tokens)
    assert usage.cache_read_input_tokens == 0
    assert usage.cache_creation_input_tokens == 0


@matrix
def test_plain_answer(ant: anthropic.Anthropic, fake: FakeUpstreamProcess, gw: GatewayProcess, case: Case) -> None:
    message = ant.messages.create(model=case.model, max_tokens=1024, system=SYSTEM, messages=user())

    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", ANSWER_TEXT)]
    assert message.stop_reason == "end_turn"
    assert message.role == "assistant" and message.id.startswith("msg_")
    assert_usage(message.usage, input_tokens=PLAIN_INPUT, output_tokens=ANSWER_TOKENS)
    received = only_request(fake, case)
    assert case.auth_value(received["headers"]) == case.key
    assert gw.api_key not in json.dumps(received)
    if case.fake == "google":
        assert f"/models/{case.upstream}:generateContent" in received["path"]
    else:
        assert received["body"]["model"] == case.upstream


@matrix
def test_stream_helper_accumulates_answer_and_usage(
    ant: anthropic.Anthropic, fake: FakeUpstreamProcess, case: Case
) -> None:
    with ant.messages.stream(model=case.model, max_tokens=1024, system=SYSTEM, messages=user()) as stream:
        events = list(stream)
        final = stream.get_final_message()

    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens > 0  # Claude Code sizes its context from this
    if case.fake == "anthropic":
        assert start.message.usage.input_tokens == PLAIN_INPUT
    texts = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert len(texts) > 1 and "".join(texts) == ANSWER_TEXT
    assert [e.type for e in events][-1] == "message_stop"
    assert [(b.type, getattr(b, "text", None)) for b in final.content] == [("text", ANSWER_TEXT)]
    assert final.stop_reason == "end_turn"
    assert_usage(final.usage, input_tokens=PLAIN_INPUT, output_tokens=ANSWER_TOKENS)
    received = only_request(fake, case)
    if case.fake == "google":
        assert received["path"].endswith(":streamGenerateContent")
    else:
        assert received["body"]["stream"] is True
    if case.fake not in ("anthropic", "google"):
        assert received["body"]["stream_options"] == {"include_usage": True}


@matrix
def test_streamed_tool_call(ant: anthropic.Anthropic, fake: FakeUpstreamProcess, case: Case) -> None:
    prompt = "[scenario:tool] What is the weather in Paris?"
    with ant.messages.stream(model=case.model, max_tokens=1024, system=SYSTEM, messages=user(prompt),
                             tools=ANTHROPIC_TOOLS) as stream:
        fragments = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()

    assert final.stop_reason == "tool_use"
    calls = [b for b in final.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert (calls[0].name, calls[0].input) == ("get_weather", TOOL_ARGS)
    assert ANTHROPIC_ID.match(calls[0].id)
    assert all(b.type == "tool_use" or (b.type == "text" and b.text) for b in final.content)
    if case.fake != "google":  # Gemini sends whole arguments in one part
        assert len([f for f in fragments if f]) > 1, "arguments should stream in fragments"
    assert_usage(final.usage, input_tokens=input_tokens(SYSTEM, prompt), output_tokens=TOOL_CALL_TOKENS)
    body = only_request(fake, case)["body"]
    if case.fake == "anthropic":
        assert body["tools"] == ANTHROPIC_TOOLS
    elif case.fake == "google":
        names = [d["name"] for t in body["tools"] for d in t.get("functionDeclarations", [])]
        assert names == ["get_weather"]
    else:
        assert body["tools"] == [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather in a city", "parameters": ANTHROPIC_TOOLS[0]["input_schema"]}}]


@reasoning_matrix
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_thinking(ant: anthropic.Anthropic, fake: FakeUpstreamProcess, case: Case, stream: bool) -> None:
    assert case.reasoning_model is not None
    prompt = "[scenario:reasoning] Say hello please"
    params: dict[str, Any] = {"model": case.reasoning_model, "max_tokens": 8000, "system": SYSTEM,
                              "messages": user(prompt), "thinking": {"type": "enabled", "budget_tokens": 4096}}
    if stream:
        with ant.messages.stream(**params) as events:
            message = events.get_final_message()
    else:
        message = ant.messages.create(**params)

    kinds = [b.type for b in message.content]
    if case.reasoning_text:
        assert kinds == ["thinking", "text"]
        thinking = message.content[0]
        assert thinking.type == "thinking" and thinking.thinking == REASONING_TEXT
    else:
        assert kinds == ["text"]  # OpenAI keeps its reasoning hidden
    text = message.content[-1]
    assert text.type == "text" and text.text == ANSWER_TEXT
    assert_usage(message.usage, input_tokens=input_tokens(SYSTEM, prompt),
                 output_tokens=ANSWER_TOKENS + REASONING_TOKENS)
    body = only_request(fake, case)["body"]
    if case.fake == "anthropic":
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    elif case.fake == "openai":
        assert body["reasoning_effort"] == "high"


@matrix
def test_tool_loop(ant: anthropic.Anthropic, fake: FakeUpstreamProcess, case: Case) -> None:
    """Call a tool, send its result back, get the answer: ids (Kimi's `functions.x:0` too) round-trip."""
    prompt = "[scenario:tool] Weather in Paris?"
    messages: list[Any] = user(prompt)
    first = ant.messages.create(model=case.model, max_tokens=1024, system=SYSTEM, messages=messages,
                                tools=ANTHROPIC_TOOLS)
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1 and calls[0].input == TOOL_ARGS
    assert ANTHROPIC_ID.match(calls[0].id)
    only_request(fake, case)

    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": "18 degrees and sunny"}]})
    fake.clear()
    second = ant.messages.create(model=case.model, max_tokens=1024, system=SYSTEM, messages=messages,
                                 tools=ANTHROPIC_TOOLS)

    assert [(b.type, getattr(b, "text", None)) for b in second.content] == [("text", ANSWER_TEXT)]
    assert second.stop_reason == "end_turn"
    result_text = "" if case.fake == "google" else "18 degrees and sunny"  # the fake's Gemini counts text parts
    assert_usage(second.usage, input_tokens=input_tokens(SYSTEM, prompt, result_text), output_tokens=ANSWER_TOKENS)
    body = only_request(fake, case)["body"]
    if case.fake == "anthropic":
        assert body["messages"][1]["content"][-1]["id"] == calls[0].id
        assert body["messages"][2]["content"][0]["tool_use_id"] == calls[0].id
    elif case.fake == "google":
        call_part = next(p for p in body["contents"][1]["parts"] if "functionCall" in p)
        assert call_part["functionCall"] == {"name": "get_weather", "args": TOOL_ARGS}
        assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
    else:
        # The upstream gets back exactly the id it issued: Kimi's `functions.get_weather:0` is not a legal
        # Anthropic id, so the client saw an encoded one; the other providers' ids are legal and kept.
        issued = "functions.get_weather:0" if case.fake == "kimi" else calls[0].id
        assistant, tool = body["messages"][2], body["messages"][3]
        assert assistant["tool_calls"][0]["id"] == issued
        assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == TOOL_ARGS
        assert tool == {"role": "tool", "tool_call_id": issued, "content": "18 degrees and sunny"}
        if case.fake == "kimi":
            assert calls[0].id != issued


def test_deepseek_thinking_is_echoed_as_reasoning_content(ant: anthropic.Anthropic, fake: FakeUpstreamProcess) -> None:
    """DeepSeek requires the reasoning of a tool-calling turn back (api-docs.deepseek.com thinking mode); a
    thinking block replayed by an Anthropic client becomes that `reasoning_content`."""
    prompt = "[scenario:reasoning] [scenario:tool] Weather in Paris?"
    thinking = {"type": "enabled", "budget_tokens": 2048}
    messages: list[Any] = user(prompt)
    first = ant.messages.create(model="deepseek/deepseek-reasoner", max_tokens=4096, messages=messages,
                                tools=ANTHROPIC_TOOLS, thinking=thinking)
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    call = first.content[1]
    assert call.type == "tool_use"
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]})
    fake.clear()

    second = ant.messages.create(model="deepseek/deepseek-reasoner", max_tokens=4096, messages=messages,
                                 tools=ANTHROPIC_TOOLS, thinking=thinking)

    assert second.content[-1].type == "text" and second.content[-1].text == ANSWER_TEXT
    assistant = fake.last()["body"]["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["reasoning_content"] == REASONING_TEXT
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"


def test_anthropic_fast_path_forwards_protocol_headers(ant: anthropic.Anthropic, fake: FakeUpstreamProcess) -> None:
    message = ant.messages.create(
        model="anthropic/claude-sonnet-4.6", max_tokens=64, messages=user(),
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14,context-management-2025-06-27"},
    )

    assert message.content[0].type == "text" and message.content[0].text == ANSWER_TEXT
    headers = fake.last()["headers"]
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-management-2025-06-27"
    assert headers["anthropic-version"] == ant.default_headers["anthropic-version"]
    assert headers["x-api-key"] == "sk-ant-fake-0000" or headers.get("authorization") == "Bearer sk-ant-fake-0000"



def test_switching_to_claude_after_another_models_thinking(ant: anthropic.Anthropic, fake: FakeUpstreamProcess) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    messages: list[Any] = user("[scenario:reasoning] Say hello please")
    first = ant.messages.create(model="deepseek/deepseek-reasoner", max_tokens=4096, messages=messages,
                                thinking=thinking)
    assert [b.type for b in first.content] == ["thinking", "text"]
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": "And again?"})
    fake.clear()

    second = ant.messages.create(model="anthropic/claude-sonnet-4.6", max_tokens=4096, messages=messages,
                                 thinking=thinking)

    assert second.content[-1].type == "text" and second.content[-1].text == ANSWER_TEXT
    sent = fake.last()["body"]["messages"][1]["content"]
    assert all(block["type"] != "thinking" for block in sent)


def test_gemini_thought_signature_round_trips(ant: anthropic.Anthropic, fake: FakeUpstreamProcess) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    messages: list[Any] = user("[scenario:reasoning] [scenario:tool] Weather in Paris?")
    first = ant.messages.create(model="google/gemini-2.5-flash", max_tokens=4096, messages=messages,
                                tools=ANTHROPIC_TOOLS, thinking=thinking)
    call = next(b for b in first.content if b.type == "tool_use")
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]})
    fake.clear()
    ant.messages.create(model="google/gemini-2.5-flash", max_tokens=4096, messages=messages, tools=ANTHROPIC_TOOLS,
                        thinking=thinking)

    model_turn = fake.last()["body"]["contents"][1]
    call_part = next(p for p in model_turn["parts"] if "functionCall" in p)
    assert call_part.get("thoughtSignature") == thought_signature(REASONING_TEXT)


TWO_TOOLS: list[Any] = [*ANTHROPIC_TOOLS, {"name": "get_time", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}}}]


@matrix
def test_streamed_parallel_tool_calls(ant: anthropic.Anthropic, fake: FakeUpstreamProcess, case: Case) -> None:
    prompt = "[scenario:parallel_tools] Weather and time in two cities?"
    with ant.messages.stream(model=case.model, max_tokens=1024, messages=user(prompt), tools=TWO_TOOLS) as stream:
        final = stream.get_final_message()

    calls = [b for b in final.content if b.type == "tool_use"]
    assert [(c.name, c.input) for c in calls] == [("get_weather", TOOL_ARGS), ("get_time", {"city": "London"})]
    assert len({c.id for c in calls}) == 2 and all(ANTHROPIC_ID.match(c.id) for c in calls)
    assert final.stop_reason == "tool_use"


@matrix
def test_max_tokens_cuts_the_answer(ant: anthropic.Anthropic, fake: FakeUpstreamProcess, case: Case) -> None:
    message = ant.messages.create(model=case.model, max_tokens=3, messages=user())

    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Hello from the")]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
