"""The official `openai` SDK against the real gateway, for each of the eight chat providers and the custom
upstream: plain and streamed answers, streamed tool calls, reasoning, usage, and a full tool loop — checking
both what the client gets and what the upstream received."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.e2e.cases import (
    ANSWER_TOKENS,
    CASE_IDS,
    CASES,
    OPENAI_TOOLS,
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
matrix = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
reasoning_matrix = pytest.mark.parametrize("case", REASONING_CASES, ids=[c.provider for c in REASONING_CASES])


def chat(prompt: str = PROMPT) -> list[Any]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def only_request(fake: FakeUpstreamProcess, case: Case) -> dict[str, Any]:
    found = upstream_requests(fake.requests(), case)
    assert len(found) == 1, found
    return found[0]


def assert_upstream_basics(received: dict[str, Any], case: Case, gw: GatewayProcess, *, model: str) -> None:
    """The upstream saw its own model id and its own key, never the client's ClearMaas key."""
    if case.fake == "google":
        assert f"/models/{model}:" in received["path"]
    else:
        assert received["body"]["model"] == model
    assert case.auth_value(received["headers"]) == case.key
    assert gw.api_key not in json.dumps(received)


def assert_openai_usage(usage: Any, *, prompt: int, completion: int, reasoning: int = 0) -> None:
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        prompt, completion, prompt + completion)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == reasoning


@matrix
def test_plain_answer(oai: openai.OpenAI, fake: FakeUpstreamProcess, gw: GatewayProcess, case: Case) -> None:
    completion = oai.chat.completions.create(model=case.model, messages=chat())

    choice = completion.choices[0]
    assert choice.message.content == ANSWER_TEXT
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    # The body's model is whatever the upstream returned (docs, routing: named routers).
    assert completion.model == case.upstream
    assert completion.id.startswith("chatcmpl-")
    assert_openai_usage(completion.usage, prompt=PLAIN_INPUT, completion=ANSWER_TOKENS)
    assert_upstream_basics(only_request(fake, case), case, gw, model=case.upstream)


@matrix
def test_stream_helper_accumulates_answer_and_usage(
    oai: openai.OpenAI, fake: FakeUpstreamProcess, gw: GatewayProcess, case: Case
) -> None:
    with oai.chat.completions.stream(
        model=case.model, messages=chat(), stream_options={"include_usage": True}
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()

    assert len(deltas) > 1, "the answer should arrive in several deltas"
    assert "".join(deltas) == ANSWER_TEXT
    assert final.choices[0].message.content == ANSWER_TEXT
    assert final.choices[0].finish_reason == "stop"
    assert_openai_usage(final.usage, prompt=PLAIN_INPUT, completion=ANSWER_TOKENS)
    received = only_request(fake, case)
    assert_upstream_basics(received, case, gw, model=case.upstream)
    if case.fake not in ("anthropic", "google"):
        assert received["body"]["stream"] is True


@matrix
def test_stream_without_include_usage_has_no_usage_chunk(
    oai: openai.OpenAI, fake: FakeUpstreamProcess, case: Case
) -> None:
    chunks = list(oai.chat.completions.create(model=case.model, messages=chat(), stream=True))

    assert chunks, "no chunk arrived"
    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    received = only_request(fake, case)
    if case.fake not in ("anthropic", "google"):
        # Billing needs the usage chunk whatever the client asked for.
        assert received["body"]["stream_options"] == {"include_usage": True}


@matrix
def test_streamed_tool_call(oai: openai.OpenAI, fake: FakeUpstreamProcess, case: Case) -> None:
    with oai.chat.completions.stream(
        model=case.model, messages=chat("[scenario:tool] What is the weather in Paris?"), tools=OPENAI_TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        argument_deltas = [e.arguments_delta for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_ARGS
    assert call.id
    if case.fake != "google":  # Gemini sends whole arguments in one part
        assert len(argument_deltas) > 1, "arguments should stream in fragments"
    prompt = input_tokens(SYSTEM, "[scenario:tool] What is the weather in Paris?")
    assert_openai_usage(final.usage, prompt=prompt, completion=TOOL_CALL_TOKENS)
    assert_tools_translated(only_request(fake, case), case)


def assert_tools_translated(received: dict[str, Any], case: Case) -> None:
    """The tool reached the upstream in the provider's own declaration shape."""
    body = received["body"]
    schema = OPENAI_TOOLS[0]["function"]["parameters"]
    if case.fake == "anthropic":
        assert body["tools"] == [{"name": "get_weather", "description": "Weather in a city", "input_schema": schema}]
    elif case.fake == "google":
        declarations = [d for t in body["tools"] for d in t.get("functionDeclarations", [])]
        assert [d["name"] for d in declarations] == ["get_weather"]
        declared = declarations[0].get("parameters") or declarations[0].get("parametersJsonSchema")
        assert declared["properties"]["city"]["type"].lower() == "string"
    else:
        assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
        assert body["tools"][0]["function"]["parameters"] == schema


@reasoning_matrix
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_reasoning(oai: openai.OpenAI, fake: FakeUpstreamProcess, case: Case, stream: bool) -> None:
    assert case.reasoning_model is not None
    messages = chat("[scenario:reasoning] Say hello please")
    if stream:
        with oai.chat.completions.stream(
            model=case.reasoning_model, messages=messages, reasoning_effort="high",
            stream_options={"include_usage": True},
        ) as events:
            final = events.get_final_completion()
    else:
        final = oai.chat.completions.create(model=case.reasoning_model, messages=messages, reasoning_effort="high")

    message = final.choices[0].message
    assert message.content == ANSWER_TEXT
    extra = message.model_extra or {}
    if case.reasoning_text:
        assert extra.get("reasoning_content") == REASONING_TEXT
    else:
        assert "reasoning_content" not in extra  # OpenAI keeps its reasoning hidden
    # Anthropic counts thinking inside output_tokens without a breakdown, so no reasoning figure exists.
    assert_openai_usage(final.usage, prompt=input_tokens(SYSTEM, "[scenario:reasoning] Say hello please"),
                        completion=ANSWER_TOKENS + REASONING_TOKENS,
                        reasoning=0 if case.fake == "anthropic" else REASONING_TOKENS)
    received = only_request(fake, case)
    if case.fake == "google":
        assert f"/models/{case.reasoning_upstream}:" in received["path"]
    else:
        assert received["body"]["model"] == case.reasoning_upstream


# What `reasoning_effort="high"` becomes upstream, per provider (advanced__reasoning.md, profiles.py).
EFFORT_MAPPING: list[tuple[str, str, dict[str, Any], tuple[str, ...]]] = [
    ("openai/o4-mini", "openai", {"reasoning_effort": "high"}, ()),
    ("anthropic/claude-sonnet-4.6", "anthropic", {"thinking": {"type": "enabled", "budget_tokens": 4096}}, ()),
    ("deepseek/deepseek-flash", "deepseek", {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}, ()),
    ("grok/grok-3-mini", "grok", {"reasoning_effort": "high"}, ()),
    # grok-4 reasons by design and rejects the field (docs.x.ai reasoning guide).
    ("grok/grok-4-fast-reasoning", "grok", {}, ("reasoning_effort",)),
    ("qwen/qwen3-max", "qwen", {"enable_thinking": True}, ()),
    ("kimi/kimi-k2.6", "kimi", {"thinking": {"type": "enabled"}}, ()),
    ("minimax/minimax-m2.7", "minimax", {"reasoning_split": True}, ()),
]


@pytest.mark.parametrize(("model", "provider", "expected", "absent"), EFFORT_MAPPING,
                         ids=[m[0] for m in EFFORT_MAPPING])
def test_reasoning_effort_mapped_per_provider(
    oai: openai.OpenAI, fake: FakeUpstreamProcess, model: str, provider: str, expected: dict[str, Any],
    absent: tuple[str, ...],
) -> None:
    completion = oai.chat.completions.create(model=model, messages=chat(), reasoning_effort="high")

    assert completion.choices[0].message.content == ANSWER_TEXT
    received = [r for r in fake.requests() if r["provider"] == provider]
    assert len(received) == 1
    body = received[0]["body"]
    assert {k: body.get(k) for k in expected} == expected
    for name in absent:
        assert name not in body
    assert "reasoning_effort" not in body or provider in ("openai", "deepseek", "grok")


def test_gemini_effort_becomes_thinking_config(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    oai.chat.completions.create(model="google/gemini-2.5-flash", messages=chat(), reasoning_effort="high")

    body = fake.last()["body"]
    config = body.get("generationConfig") or body.get("generation_config")
    thinking = config.get("thinkingConfig") or config.get("thinking_config")
    assert thinking.get("includeThoughts", thinking.get("include_thoughts")) is True
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    level = thinking.get("thinkingLevel", thinking.get("thinking_level"))
    assert (isinstance(budget, int) and budget > 0) or level is not None


def test_qwen_thinking_is_streamed_upstream_for_a_whole_answer(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    completion = oai.chat.completions.create(model="qwen/qwen3-max", messages=chat(), reasoning_effort="high")

    assert completion.choices[0].message.content == ANSWER_TEXT
    body = fake.last()["body"]
    assert body["enable_thinking"] is True and body["stream"] is True


def test_deepseek_chat_turns_thinking_off(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    """deepseek-chat is deepseek-flash with thinking off (catalogue capability `thinking_off`); the upstream
    thinks by default, so the switch must be sent."""
    oai.chat.completions.create(model="deepseek/deepseek-chat", messages=chat())

    body = fake.last()["body"]
    assert body["model"] == "deepseek-flash"
    assert body.get("thinking") == {"type": "disabled"}


@matrix
def test_tool_loop(oai: openai.OpenAI, fake: FakeUpstreamProcess, case: Case) -> None:
    """Call a tool, send its result back, get the answer: every provider, ids and names round-tripped."""
    reasoning = case.fake == "google"  # Gemini signs its calls only after thinking; the signature must come back
    prompt = "[scenario:reasoning] [scenario:tool] Weather in Paris?" if reasoning else "[scenario:tool] Weather?"
    messages: list[Any] = chat(prompt)
    extra: dict[str, Any] = {"reasoning_effort": "low"} if reasoning else {}
    first = oai.chat.completions.create(model=case.model, messages=messages, tools=OPENAI_TOOLS, **extra)
    calls = first.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert json.loads(call.function.arguments) == TOOL_ARGS

    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"})
    fake.clear()
    second = oai.chat.completions.create(model=case.model, messages=messages, tools=OPENAI_TOOLS, **extra)

    assert second.choices[0].message.content == ANSWER_TEXT
    assert second.choices[0].finish_reason == "stop"
    # The fake's Gemini dialect counts text parts only, not the functionResponse.
    result_text = "" if case.fake == "google" else "18 degrees and sunny"
    assert_openai_usage(second.usage, prompt=input_tokens(SYSTEM, prompt, result_text), completion=ANSWER_TOKENS)
    body = only_request(fake, case)["body"]
    if case.fake == "anthropic":
        tool_use = body["messages"][1]["content"][-1]
        result = body["messages"][2]["content"][0]
        assert (tool_use["type"], tool_use["name"], tool_use["input"]) == ("tool_use", "get_weather", TOOL_ARGS)
        assert result["type"] == "tool_result" and result["tool_use_id"] == tool_use["id"]
    elif case.fake == "google":
        model_turn, reply_turn = body["contents"][1], body["contents"][2]
        call_part = next(p for p in model_turn["parts"] if "functionCall" in p)
        assert call_part["functionCall"] == {"name": "get_weather", "args": TOOL_ARGS}
        response = reply_turn["parts"][0].get("functionResponse") or reply_turn["parts"][0]["function_response"]
        assert response["name"] == "get_weather"
    else:
        assistant = body["messages"][2]
        tool = body["messages"][3]
        upstream_id = assistant["tool_calls"][0]["id"]
        assert tool == {"role": "tool", "tool_call_id": upstream_id, "content": "18 degrees and sunny"}
        if case.fake == "kimi":
            assert upstream_id == "functions.get_weather:0"



def test_gemini_thought_signature_round_trips(oai: openai.OpenAI, fake: FakeUpstreamProcess) -> None:
    messages: list[Any] = chat("[scenario:reasoning] [scenario:tool] Weather in Paris?")
    first = oai.chat.completions.create(model="google/gemini-2.5-flash", messages=messages, tools=OPENAI_TOOLS,
                                        reasoning_effort="low")
    call = (first.choices[0].message.tool_calls or [])[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"})
    fake.clear()
    oai.chat.completions.create(model="google/gemini-2.5-flash", messages=messages, tools=OPENAI_TOOLS,
                                reasoning_effort="low")

    model_turn = fake.last()["body"]["contents"][1]
    call_part = next(p for p in model_turn["parts"] if "functionCall" in p)
    assert call_part.get("thoughtSignature") == thought_signature(REASONING_TEXT)


TWO_TOOLS: list[Any] = [*OPENAI_TOOLS, {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@matrix
def test_streamed_parallel_tool_calls(oai: openai.OpenAI, fake: FakeUpstreamProcess, case: Case) -> None:
    prompt = "[scenario:parallel_tools] Weather and time in two cities?"
    with oai.chat.completions.stream(model=case.model, messages=chat(prompt), tools=TWO_TOOLS) as stream:
        final = stream.get_final_completion()

    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls if c.type == "function"] == [
        ("get_weather", TOOL_ARGS), ("get_time", {"city": "London"})]
    assert len({c.id for c in calls}) == 2
    assert final.choices[0].finish_reason == "tool_calls"


@matrix
def test_max_tokens_cuts_the_answer(oai: openai.OpenAI, fake: FakeUpstreamProcess, case: Case) -> None:
    completion = oai.chat.completions.create(model=case.model, messages=chat(), max_completion_tokens=3)

    assert completion.choices[0].message.content == "Hello from the"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
