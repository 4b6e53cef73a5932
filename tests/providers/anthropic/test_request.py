"""Request-level encoding for Anthropic: URL, headers, tools, tool_choice, sampling, extras."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from clearmaas.canonical import (
    ChatRequest,
    Message,
    ReasoningConfig,
    ResponseFormat,
    TextPart,
    ToolChoice,
    ToolDefinition,
)
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import InvalidRequest, NotImplementedForModel
from clearmaas.providers.anthropic import encode_request
from clearmaas.providers.base import Deployment

WEATHER = ToolDefinition(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def chat(model: ModelEntry, **fields: Any) -> ChatRequest:
    fields.setdefault("origin", "openai_chat")
    fields.setdefault("messages", [Message(role="user", parts=[TextPart("hi")])])
    return ChatRequest(model=model.id, **fields)


def encode(model: ModelEntry, **fields: Any) -> dict[str, Any]:
    deployment = Deployment(base_url="https://api.anthropic.example", api_key="sk-ant-test")
    body: dict[str, Any] = orjson.loads(encode_request(chat(model, **fields), model=model, deployment=deployment).body)
    return body


def test_url_headers_and_model(sonnet: ModelEntry, deployment: Deployment) -> None:
    request = chat(
        sonnet,
        stream=True,
        forward_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},  # not from an Anthropic client
    )
    upstream = encode_request(request, model=sonnet, deployment=deployment)
    assert upstream.method == "POST"
    assert upstream.url == "https://api.anthropic.example/v1/messages"
    assert upstream.headers == {
        "x-api-key": "sk-ant-test-key",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    assert upstream.stream is True
    body = orjson.loads(upstream.body)
    assert body["model"] == "claude-sonnet-4-5-20250929"
    assert body["stream"] is True
    assert body["max_tokens"] == 64_000  # the model's limit when the client names none
    assert "stream" not in encode(sonnet)


def test_anthropic_clients_headers_are_forwarded_but_never_auth(sonnet: ModelEntry, deployment: Deployment) -> None:
    request = chat(
        sonnet,
        origin="anthropic_messages",
        forward_headers={
            "Anthropic-Beta": "claude-code-20250219,context-management-2025-06-27",
            "anthropic-version": "2023-06-01",
            "x-api-key": "sk-client-must-not-win",
            "authorization": "Bearer sk-client",
        },
    )
    headers = encode_request(request, model=sonnet, deployment=deployment).headers
    assert headers == {
        "x-api-key": "sk-ant-test-key",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,context-management-2025-06-27",
        "content-type": "application/json",
    }


def test_tools_and_native_tools(sonnet: ModelEntry) -> None:
    bare = ToolDefinition(name="ping", parameters={"properties": {}})
    cached = ToolDefinition(name="big", details={"anthropic": {"cache_control": {"type": "ephemeral"}}})
    server = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    body = encode(sonnet, tools=[WEATHER, bare, cached], native_tools=[server])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        {"name": "ping", "input_schema": {"properties": {}, "type": "object"}},
        {"name": "big", "input_schema": {"type": "object", "properties": {}}, "cache_control": {"type": "ephemeral"}},
    ]
    from_anthropic = encode(sonnet, origin="anthropic_messages", tools=[WEATHER], native_tools=[server])
    assert from_anthropic["tools"][1] == server
    assert "tools" not in encode(sonnet, native_tools=[server])


def test_a_non_object_tool_schema_is_a_client_error(sonnet: ModelEntry) -> None:
    with pytest.raises(InvalidRequest):
        encode(sonnet, tools=[ToolDefinition(name="f", parameters={"type": "string"})])


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        (ToolChoice("auto"), None, {"type": "auto"}),
        (ToolChoice("required"), None, {"type": "any"}),
        (ToolChoice("tool", "get_weather"), None, {"type": "tool", "name": "get_weather"}),
        (ToolChoice("none"), None, {"type": "none"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice("required"), False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            ToolChoice("tool", "get_weather"),
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        (ToolChoice("auto"), True, {"type": "auto"}),
    ],
)
def test_tool_choice(sonnet: ModelEntry, choice: ToolChoice | None, parallel: bool | None, expected: Any) -> None:
    body = encode(sonnet, tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel)
    assert body.get("tool_choice") == expected


def test_no_tool_choice_without_tools(sonnet: ModelEntry) -> None:
    assert "tool_choice" not in encode(sonnet, tool_choice=ToolChoice("required"), parallel_tool_calls=False)


def test_sampling_parameters(sonnet: ModelEntry) -> None:
    body = encode(sonnet, max_tokens=300, temperature=1.7, top_k=40, stop=["END"], user="user-42")
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1.0  # OpenAI's 0-2 clamped to Anthropic's 0-1
    assert body["top_k"] == 40
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert encode(sonnet, temperature=-0.3)["temperature"] == 0.0
    # Current models refuse temperature together with top_p; temperature wins.
    both = encode(sonnet, temperature=0.2, top_p=0.9)
    assert both["temperature"] == 0.2 and "top_p" not in both
    assert encode(sonnet, top_p=0.9)["top_p"] == 0.9
    plain = encode(sonnet)
    assert not {"temperature", "top_p", "top_k", "stop_sequences", "metadata", "thinking"} & plain.keys()


def test_model_capabilities_remove_sampling(sonnet: ModelEntry) -> None:
    no_temperature = replace(sonnet, capabilities=frozenset({"no_temperature"}))
    body = encode(no_temperature, temperature=0.5, top_p=0.8)
    assert "temperature" not in body and body["top_p"] == 0.8
    no_sampling = replace(sonnet, capabilities=frozenset({"no_sampling"}))
    body = encode(no_sampling, temperature=0.5, top_p=0.8, top_k=5)
    assert not {"temperature", "top_p", "top_k"} & body.keys()


def test_response_format_is_not_implemented(sonnet: ModelEntry) -> None:
    schema = ResponseFormat(type="json_schema", schema={"type": "object"}, name="person")
    with pytest.raises(NotImplementedForModel) as caught:
        encode(sonnet, response_format=schema)
    assert caught.value.status == 400
    assert caught.value.code == "api_not_implemented"
    assert caught.value.message == "Anthropic has no response_format; use tool_use"
    with pytest.raises(NotImplementedForModel):
        encode(sonnet, response_format=ResponseFormat(type="json_object"))
    # Even from an Anthropic client, unless its own output_config carries the format.
    with pytest.raises(NotImplementedForModel):
        encode(sonnet, origin="anthropic_messages", response_format=schema)
    assert "output_config" not in encode(sonnet, response_format=ResponseFormat(type="text"))


def test_anthropic_output_config_is_forwarded_verbatim(sonnet: ModelEntry, opus: ModelEntry) -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    output_format = {"type": "json_schema", "schema": schema}
    fields: dict[str, Any] = {
        "origin": "anthropic_messages",
        "response_format": ResponseFormat(type="json_schema", schema=schema),
        "extra": {"output_config": {"format": output_format}},
    }
    assert encode(sonnet, **fields)["output_config"] == {"format": output_format}
    # The effort computed for adaptive thinking joins the client's format instead of replacing it.
    body = encode(opus, reasoning=ReasoningConfig(effort="high"), **fields)
    assert body["output_config"] == {"effort": "high", "format": output_format}
    assert body["thinking"] == {"type": "adaptive"}


def test_extras_only_reach_anthropic_from_anthropic_clients(sonnet: ModelEntry) -> None:
    extra = {
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "service_tier": "auto",
        "metadata": {"user_id": "user_abc_session_1"},
        "model": "claude-something-else",
        "stream": True,
    }
    body = encode(sonnet, origin="anthropic_messages", extra=extra)
    assert body["context_management"] == extra["context_management"]
    assert body["service_tier"] == "auto"
    assert body["metadata"] == {"user_id": "user_abc_session_1"}
    assert body["model"] == "claude-sonnet-4-5-20250929"  # the gateway's fields are not the client's to set
    assert "stream" not in body
    foreign = encode(sonnet, origin="openai_chat", extra={"seed": 7, "logit_bias": {"1": 2}})
    assert not {"seed", "logit_bias"} & foreign.keys()
