"""decode_request: every message, part, tool and parameter form, and every validation error with its param."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearmaas.canonical import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningConfig,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolChoice,
    ToolDefinition,
    ToolResultPart,
    UnknownPart,
)
from clearmaas.errors import InvalidRequest
from clearmaas.surfaces.openai_chat import SURFACE, decode_request

USER = {"role": "user", "content": "hi"}


def decode(**fields: Any) -> ChatRequest:
    body: dict[str, Any] = {"model": "openai/gpt-4o-mini", "messages": [USER]}
    body.update(fields)
    return decode_request(body, {})


def test_minimal_request_has_defaults() -> None:
    request = decode()
    assert request.origin == "openai_chat"
    assert request.model == "openai/gpt-4o-mini"
    assert request.messages == [Message(role="user", parts=[TextPart(text="hi")])]
    assert request.system == [] and request.tools == [] and request.native_tools == []
    assert request.tool_choice is None and request.max_tokens is None and request.temperature is None
    assert request.stream is False and request.include_usage is False
    assert request.reasoning is None and request.response_format is None and request.user is None
    assert request.extra == {}


def test_surface_object_delegates_to_the_module() -> None:
    assert SURFACE.protocol == "openai_chat"
    assert SURFACE.decode_request({"model": "m", "messages": [USER]}, {}).model == "m"


def test_leading_system_and_developer_become_the_system_prompt_later_ones_stay_in_place() -> None:
    request = decode(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            USER,
            {"role": "developer", "content": "now be verbose", "name": "ops"},
            {"role": "system", "content": ""},  # nothing to say: no empty turn
            {"role": "assistant", "content": "ok"},
        ]
    )
    assert request.system == [TextPart("be brief"), TextPart("a"), TextPart("b")]
    assert [m.role for m in request.messages] == ["user", "system", "assistant"]
    assert request.messages[1] == Message(role="system", parts=[TextPart("now be verbose")], name="ops")


def test_user_parts_of_every_kind() -> None:
    content = [
        {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "b.pdf"}},
        {"type": "file", "file": {"file_id": "file-abc"}},
        {"type": "input_video", "input_video": {"url": "https://example.com/v.mp4"}},
    ]
    parts = decode(messages=[{"role": "user", "content": content, "name": "ann"}]).messages[0].parts
    assert parts == [
        TextPart("look", details={"anthropic": {"cache_control": {"type": "ephemeral"}}}),
        ImagePart(url="https://example.com/cat.jpg", detail="low"),
        ImagePart(media_type="image/png", data="iVBORw0KGgo="),
        AudioPart(data="UklGRg==", format="wav"),
        DocumentPart(media_type="application/pdf", data="JVBERi0=", filename="a.pdf"),
        DocumentPart(media_type="application/pdf", data="JVBERi0=", filename="b.pdf"),
        DocumentPart(details={"openai": {"file_id": "file-abc"}}),
        UnknownPart(origin="openai_chat", data=content[-1]),
    ]


def test_assistant_turn_with_reasoning_text_and_tool_calls() -> None:
    calls: list[dict[str, Any]] = [
        {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "function": {"name": "now", "arguments": {"tz": "UTC"}}},
        {"id": "call_3", "type": "custom", "custom": {"name": "patch", "input": "diff"}},
    ]
    message = {"role": "assistant", "reasoning_content": "think first", "content": "calling", "tool_calls": calls}
    parts = decode(messages=[USER, message]).messages[1].parts
    assert parts == [
        ThinkingPart(text="think first"),
        TextPart("calling"),
        ToolCallPart(id="call_1", name="get", arguments='{"city": "Paris"}'),  # as given, spacing included
        ToolCallPart(id="call_2", name="now", arguments='{"tz":"UTC"}'),
        UnknownPart(origin="openai_chat", data=calls[2]),
    ]
    thinking = parts[0]
    assert isinstance(thinking, ThinkingPart) and thinking.origin is None and thinking.signature is None


def test_assistant_empty_content_beside_tool_calls_and_refusal_parts() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    empty = decode(messages=[USER, {"role": "assistant", "content": "", "tool_calls": [call]}]).messages[1]
    assert empty.parts == [ToolCallPart(id="c", name="f", arguments="")]
    refused = decode(
        messages=[USER, {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}, {"type": "text", "text": "!"}]}]
    ).messages[1]
    assert refused.parts == [TextPart("no"), TextPart("!")]
    legacy_refusal = decode(messages=[USER, {"role": "assistant", "content": None, "refusal": "cannot"}]).messages[1]
    assert legacy_refusal.parts == [TextPart("cannot")]


def test_consecutive_tool_messages_form_one_user_turn_and_a_following_user_message_joins_it() -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    request = decode(
        messages=[
            USER,
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "1"}, {"type": "text", "text": "2"}]},
            {"role": "user", "content": "thanks"},
            {"role": "tool", "tool_call_id": "x", "content": ""},
        ]
    )
    assert [m.role for m in request.messages] == ["user", "assistant", "user", "user"]
    assert request.messages[2].parts == [
        ToolResultPart(tool_call_id="a", content=[TextPart("sunny")]),
        ToolResultPart(tool_call_id="b", content=[TextPart("1"), TextPart("2")]),
        TextPart("thanks"),
    ]
    # After the merged user text, a new tool message starts a new turn; "" is an empty result.
    assert request.messages[3].parts == [ToolResultPart(tool_call_id="x", content=[])]


def test_tools_function_defaults_and_native_tools_verbatim() -> None:
    web = {"type": "web_search", "search_context_size": "low"}
    custom = {"type": "custom", "custom": {"name": "patch"}}
    request = decode(
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "strict": True,
                },
            },
            {"type": "function", "function": {"name": "ping"}},
            web,
            custom,
        ]
    )
    assert request.tools == [
        ToolDefinition(
            name="get_weather",
            description="Weather",
            parameters={"type": "object", "properties": {"city": {"type": "string"}}},
            strict=True,
        ),
        ToolDefinition(name="ping", parameters={"type": "object", "properties": {}}),
    ]
    assert request.native_tools == [web, custom]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("none", ToolChoice("none")),
        ("auto", ToolChoice("auto")),
        ("required", ToolChoice("required")),
        ({"type": "function", "function": {"name": "f"}}, ToolChoice("tool", "f")),
        ({"type": "custom", "custom": {"name": "patch"}}, ToolChoice("tool", "patch")),
    ],
)
def test_tool_choice_forms(raw: object, expected: ToolChoice) -> None:
    assert decode(tool_choice=raw).tool_choice == expected


def test_sampling_and_output_parameters() -> None:
    request = decode(
        parallel_tool_calls=False,
        max_tokens=100,
        max_completion_tokens=200,
        temperature=1,
        top_p=0.5,
        stop="END",
        stream=True,
        stream_options={"include_usage": True},
        reasoning_effort="high",
        safety_identifier="safe-1",
        user="legacy-user",
    )
    assert request.parallel_tool_calls is False
    assert request.max_tokens == 200  # max_completion_tokens wins over the deprecated max_tokens
    assert request.temperature == 1.0 and isinstance(request.temperature, float)
    assert request.top_p == 0.5
    assert request.stop == ["END"]
    assert request.stream is True and request.include_usage is True
    assert request.reasoning == ReasoningConfig(effort="high")
    assert request.user == "safe-1"
    assert request.extra == {}


def test_single_parameter_forms() -> None:
    assert decode(max_tokens=7).max_tokens == 7
    assert decode(stop=["a", "b"]).stop == ["a", "b"]
    assert decode(user="u").user == "u"
    assert decode(reasoning_effort="none").reasoning == ReasoningConfig(effort="none", enabled=False)
    assert decode(stream_options={}).include_usage is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "text"}, ResponseFormat("text")),
        ({"type": "json_object"}, ResponseFormat("json_object")),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "person", "strict": True, "description": "d", "schema": {"type": "object"}},
            },
            ResponseFormat("json_schema", schema={"type": "object"}, name="person", strict=True, description="d"),
        ),
    ],
)
def test_response_format_forms(raw: object, expected: ResponseFormat) -> None:
    assert decode(response_format=raw).response_format == expected


def test_unmodelled_fields_go_to_extra_routing_fields_and_nulls_are_dropped() -> None:
    request = decode(
        seed=7,
        logprobs=True,
        metadata={"k": "v"},
        web_search_options={"search_context_size": "low"},
        prompt_cache_key="pk",
        models=["a", "b"],
        route="fallback",
        temperature=None,
        service_tier=None,
        n=1,
    )
    assert request.extra == {
        "seed": 7,
        "logprobs": True,
        "metadata": {"k": "v"},
        "web_search_options": {"search_context_size": "low"},
        "prompt_cache_key": "pk",
    }
    assert request.temperature is None


def test_decoding_does_not_mutate_the_body() -> None:
    body = {"model": "m", "messages": [USER, {"role": "tool", "tool_call_id": "a", "content": "x"}], "models": ["a"]}
    snapshot = copy.deepcopy(body)
    decode_request(body, {})
    assert body == snapshot


def _message(content: object) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


BAD = [
    ({"model": None}, "model"),
    ({"model": 3}, "model"),
    ({"model": "  "}, "model"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": None}, "messages"),
    ({"messages": [USER, "x"]}, "messages[1]"),
    ({"messages": [USER, USER, {"role": "robot", "content": "x"}]}, "messages[2].role"),
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    (_message(5), "messages[0].content"),
    (_message([]), "messages[0].content"),
    (_message(["text"]), "messages[0].content[0]"),
    (_message([{"text": "x"}]), "messages[0].content[0].type"),
    (_message([{"type": "text", "text": 1}]), "messages[0].content[0].text"),
    (_message([{"type": "image_url"}]), "messages[0].content[0].image_url"),
    (_message([{"type": "image_url", "image_url": {"url": "ftp://x"}}]), "messages[0].content[0].image_url.url"),
    (_message([{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]), "messages[0].content[0].image_url.url"),
    (_message([{"type": "image_url", "image_url": {"url": "https://x", "detail": 1}}]), "messages[0].content[0].image_url.detail"),
    (_message([{"type": "input_audio", "input_audio": {"format": "wav"}}]), "messages[0].content[0].input_audio.data"),
    (_message([{"type": "input_audio", "input_audio": {"data": "x"}}]), "messages[0].content[0].input_audio.format"),
    (_message([{"type": "input_audio"}]), "messages[0].content[0].input_audio"),
    (_message([{"type": "file", "file": {}}]), "messages[0].content[0].file"),
    (_message([{"type": "file", "file": {"file_id": 3}}]), "messages[0].content[0].file.file_id"),
    ({"messages": [{"role": "user", "content": "x", "name": 1}]}, "messages[0].name"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}]}, "messages[0].content[0].type"),
    ({"messages": [USER, {"role": "assistant", "content": [{"type": "image_url"}]}]}, "messages[1].content[0].type"),
    ({"messages": [USER, {"role": "assistant", "reasoning_content": 1}]}, "messages[1].reasoning_content"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": {}}]}, "messages[1].tool_calls"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": [{"type": "function"}]}]}, "messages[1].tool_calls[0].id"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c"}]}]}, "messages[1].tool_calls[0].function"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}]}, "messages[1].tool_calls[0].function.name"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 1}}]}]}, "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": 1}]}]}, "messages[1].tool_calls[0].type"),
    ({"messages": [USER, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]}, "messages[1].function_call"),
    ({"messages": [USER, {"role": "tool", "content": "x"}]}, "messages[1].tool_call_id"),
    ({"messages": [USER, {"role": "tool", "tool_call_id": "a"}]}, "messages[1].content"),
    ({"messages": [USER, {"role": "tool", "tool_call_id": "a", "content": [{"type": "input_audio"}]}]}, "messages[1].content[0].type"),
    ({"tools": {}}, "tools"),
    ({"tools": ["f"]}, "tools[0]"),
    ({"tools": [{"type": 3}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": 1}}]}, "tools[0].function.description"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]}, "tools[0].function.strict"),
    ({"tool_choice": "any"}, "tool_choice"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.function.name"),
    ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}}, "tool_choice"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"max_tokens": "100"}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"stop": 3}, "stop"),
    ({"stop": ["a", 1]}, "stop"),
    ({"stream": "true"}, "stream"),
    ({"stream_options": True}, "stream_options"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": []}}}, "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": 1}}}, "response_format.json_schema.name"),
    ({"user": 5}, "user"),
    ({"safety_identifier": []}, "safety_identifier"),
    ({"n": 2}, "n"),
    ({"n": "1"}, "n"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
]


@pytest.mark.parametrize(("fields", "param"), BAD, ids=[param for _, param in BAD])
def test_invalid_fields_raise_invalid_request_naming_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode(**fields)
    assert caught.value.param == param
    assert caught.value.status == 400 and caught.value.code == "bad_request_body"
    assert f"`{param}`" in caught.value.message


def test_non_object_body_is_invalid() -> None:
    with pytest.raises(InvalidRequest):
        decode_request([], {})  # type: ignore[arg-type]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.sampled_from(
        ["", "x", "text", "user", "assistant", "tool", "system", "function", "image_url", "data:a;base64,", "https://x"]
    ),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["role", "content", "type", "text", "image_url", "url", "tool_calls", "id", "function", "name",
             "arguments", "tool_call_id", "file", "file_data", "input_audio", "data", "format", "parameters"]
        ),
        children,
        max_size=4,
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(_json, max_size=4),
    tools=_json,
    tool_choice=_json,
    response_format=_json,
    stop=_json,
)
def test_arbitrary_bodies_decode_or_raise_invalid_request_only(
    messages: list[object], tools: object, tool_choice: object, response_format: object, stop: object
) -> None:
    body = {"model": "m", "messages": messages, "tools": tools, "tool_choice": tool_choice,
            "response_format": response_format, "stop": stop}
    try:
        request = decode_request(body, {})
    except InvalidRequest as error:
        assert error.param and f"`{error.param}`" in error.message  # every rejection names the offending field
    else:
        assert request.origin == "openai_chat"
        kinds = {"text", "image", "document", "audio", "thinking", "tool_call", "tool_result", "unknown"}
        assert all(part.kind in kinds for message in request.messages for part in message.parts)
        assert all(m.role in ("system", "user", "assistant") for m in request.messages)
