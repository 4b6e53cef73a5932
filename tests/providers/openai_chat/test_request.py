"""`encode_request` per profile, field by field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

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
from clearmaas.canonical.tool_ids import safe_tool_id
from clearmaas.errors import NotImplementedForModel
from clearmaas.providers.base import Deployment
from clearmaas.providers.openai_chat.request import encode_body, encode_request
from clearmaas.providers.profiles import DEEPSEEK, GENERIC, GROK, KIMI, MINIMAX, OPENAI, QWEN, Profile
from tests.providers.openai_chat.recordings import entry

GPT = entry("gpt-5-mini-2025-08-07", reasoning="effort", max_output_tokens=128_000)
GPT_4O = entry("gpt-4o-2024-08-06", max_output_tokens=16_384)
DEEPSEEK_V4 = entry("deepseek-v4-flash", provider="deepseek", reasoning="effort", max_output_tokens=8_192)
DEEPSEEK_REASONER = entry("deepseek-reasoner", provider="deepseek", reasoning="always")
DEEPSEEK_CHAT = entry("deepseek-chat", provider="deepseek")
GROK_MINI = entry("grok-3-mini", provider="grok", reasoning="effort")
GROK_4 = entry("grok-4-fast-reasoning", provider="grok", reasoning="always")
QWEN_PLUS = entry("qwen3.6-plus", provider="qwen", reasoning="toggle")
KIMI_K2 = entry("kimi-k2.6", provider="kimi", reasoning="toggle")
KIMI_THINKING = entry("kimi-k2-thinking", provider="kimi", reasoning="always")
MINIMAX_M2 = entry("MiniMax-M2.7", provider="minimax", reasoning="always")

WEATHER = ToolDefinition(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    strict=True,
)
CLOCK = ToolDefinition(name="get_time")


def _request(messages: list[Message] | None = None, **fields: Any) -> ChatRequest:
    fields.setdefault("origin", "anthropic_messages")
    return ChatRequest(model="x/y", messages=messages or [Message("user", [TextPart("Hi")])], **fields)


def _body(profile: Profile, model: Any = GPT_4O, **fields: Any) -> dict[str, Any]:
    return encode_body(_request(**fields), model=model, profile=profile)


def _tool_turns(thinking: str | None = "Need the weather.") -> list[Message]:
    assistant: list[Any] = [ThinkingPart(thinking)] if thinking else []
    assistant += [TextPart("Checking."), ToolCallPart(id="call_1", name="get_weather", arguments='{"city":"Paris"}')]
    return [
        Message("user", [TextPart("Weather in Paris?")]),
        Message("assistant", assistant),
        Message("user", [ToolResultPart("call_1", [TextPart("sunny")])]),
    ]


# --- transport shape -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"),
        ("https://api.deepseek.com", "https://api.deepseek.com/chat/completions"),
        ("https://api.x.ai/v1/", "https://api.x.ai/v1/chat/completions"),
        (
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
        ),
        ("https://api.moonshot.ai/v1", "https://api.moonshot.ai/v1/chat/completions"),
        ("https://api.minimax.io/v1", "https://api.minimax.io/v1/chat/completions"),
    ],
)
def test_url_joins_the_sdk_base_url(base_url: str, url: str) -> None:
    upstream = encode_request(
        _request(stream=True), model=GPT_4O, deployment=Deployment(base_url=base_url, api_key="sk-test"), profile=OPENAI
    )
    assert (upstream.method, upstream.url, upstream.stream) == ("POST", url, True)
    assert upstream.headers == {"authorization": "Bearer sk-test", "content-type": "application/json"}
    assert orjson.loads(upstream.body) == _body(OPENAI, stream=True)


def test_stream_always_asks_for_usage() -> None:
    body = _body(OPENAI, stream=True, include_usage=False)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "stream" not in _body(OPENAI) and "stream_options" not in _body(OPENAI)


# --- parameters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        (OPENAI, "max_completion_tokens"),
        (MINIMAX, "max_completion_tokens"),
        (KIMI, "max_completion_tokens"),
        (DEEPSEEK, "max_tokens"),
        (GROK, "max_tokens"),
        (QWEN, "max_tokens"),
        (GENERIC, "max_tokens"),
    ],
)
def test_max_tokens_field_per_profile(profile: Profile, field: str) -> None:
    body = _body(profile, max_tokens=1000)
    assert body[field] == 1000
    assert {"max_tokens", "max_completion_tokens"} - {field} & body.keys() == set()


def test_max_tokens_is_clamped_to_the_model() -> None:
    assert _body(OPENAI, max_tokens=50_000)["max_completion_tokens"] == 16_384


def test_sampling_parameters() -> None:
    body = _body(OPENAI, temperature=3.0, top_p=0.9, top_k=40, stop=["a", "b", "c", "d", "e"], user="u-1")
    assert (body["temperature"], body["top_p"], body["stop"], body["user"]) == (2.0, 0.9, ["a", "b", "c", "d"], "u-1")
    assert "top_k" not in body
    assert _body(OPENAI, temperature=-1.0)["temperature"] == 0.0
    assert _body(QWEN, top_k=40)["top_k"] == 40
    assert len(_body(DEEPSEEK, stop=[str(i) for i in range(20)])["stop"]) == 16


def test_models_without_sampling_drop_temperature_and_top_p() -> None:
    model = entry("o3", reasoning="effort", capabilities=frozenset({"no_temperature", "no_stop"}))
    body = _body(OPENAI, model, temperature=0.2, top_p=0.5, stop=["x"])
    assert not {"temperature", "top_p", "stop"} & body.keys()


def test_model_is_the_upstream_id() -> None:
    assert _body(DEEPSEEK, DEEPSEEK_CHAT)["model"] == "deepseek-chat"


# --- messages ----------------------------------------------------------------------------------------------


def test_system_and_mid_conversation_system_keep_their_places() -> None:
    messages = [
        Message("user", [TextPart("a")]),
        Message("assistant", [TextPart("b")]),
        Message("system", [TextPart("be brief")]),
        Message("user", [TextPart("c")]),
    ]
    body = _body(OPENAI, messages=messages, system=[TextPart("You are terse."), TextPart("Answer in French.")])
    assert body["messages"] == [
        {
            "role": "system",
            "content": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}],
        },
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "c"},
    ]
    # DeepSeek takes string content only: text parts are joined.
    assert _body(DEEPSEEK, messages=messages, system=[TextPart("x"), TextPart("y")])["messages"][0] == {
        "role": "system",
        "content": "x\ny",
    }


def test_user_parts() -> None:
    message = Message(
        "user",
        [
            TextPart("Look"),
            ImagePart(media_type="image/jpeg", data="QUJD", detail="low"),
            ImagePart(url="https://example.com/cat.png"),
            AudioPart(data="UklGRg==", format="wav"),
            DocumentPart(media_type="application/pdf", data="JVBERi0=", filename="a.pdf"),
            DocumentPart(text="plain notes"),
            ThinkingPart("never sent"),
            UnknownPart(origin="anthropic_messages", data={"type": "search_result"}),
        ],
        name="alice",
    )
    body = _body(OPENAI, messages=[message])
    assert body["messages"] == [
        {
            "role": "user",
            "name": "alice",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
                {"type": "text", "text": "plain notes"},
            ],
        }
    ]


def test_unknown_parts_pass_only_to_the_same_protocol() -> None:
    video = UnknownPart(origin="openai_chat", data={"type": "video_url", "video_url": {"url": "https://v"}})
    messages = [Message("user", [TextPart("see"), video])]
    same = _body(OPENAI, messages=messages, origin="openai_chat")["messages"][0]["content"]
    assert same[1] == {"type": "video_url", "video_url": {"url": "https://v"}}
    assert _body(OPENAI, messages=messages)["messages"][0]["content"] == "see"


def test_document_by_url_is_refused_and_openai_file_ids_are_kept() -> None:
    with pytest.raises(NotImplementedForModel) as caught:
        _body(OPENAI, messages=[Message("user", [DocumentPart(url="https://example.com/a.pdf")])])
    assert caught.value.code == "api_not_implemented" and caught.value.status == 400
    by_id = DocumentPart(filename="a.pdf", details={"openai": {"file_id": "file-abc"}})
    content = _body(OPENAI, messages=[Message("user", [by_id])])["messages"][0]["content"]
    assert content == [{"type": "file", "file": {"file_id": "file-abc", "filename": "a.pdf"}}]


def test_assistant_tool_calls_and_results() -> None:
    kimi_id = "functions.get_weather:0"
    messages = [
        Message("user", [TextPart("Weather?")]),
        Message(
            "assistant",
            [
                ThinkingPart("hidden", signature="sig", origin="anthropic"),
                ToolCallPart(id="call_1", name="get_weather", arguments=""),
                ToolCallPart(id=safe_tool_id(kimi_id), name="get_time", arguments='{"tz":"CET"}'),
            ],
        ),
        Message(
            "user",
            [
                ToolResultPart("call_1", [TextPart("sunny"), ImagePart(url="https://example.com/map.png")]),
                ToolResultPart(safe_tool_id(kimi_id), [TextPart("no clock")], is_error=True),
                TextPart("thanks"),
            ],
        ),
    ]
    assert _body(OPENAI, messages=messages)["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": kimi_id, "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": kimi_id, "content": "Error: no clock"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_thinking_never_leaks_into_content() -> None:
    messages = [Message("user", [TextPart("q")]), Message("assistant", [ThinkingPart("secret"), TextPart("answer")])]
    for profile in (OPENAI, GROK, QWEN, GENERIC):
        assistant = _body(profile, messages=messages)["messages"][1]
        assert assistant == {"role": "assistant", "content": "answer"}


# --- reasoning passback ------------------------------------------------------------------------------------


def test_deepseek_echoes_reasoning_content_on_tool_turns() -> None:
    body = _body(DEEPSEEK, DEEPSEEK_V4, messages=_tool_turns(), tools=[WEATHER])
    assistant = body["messages"][1]
    assert assistant["reasoning_content"] == "Need the weather."
    assert assistant["content"] == "Checking."


def test_deepseek_with_tools_echoes_every_assistant_turn_with_a_placeholder() -> None:
    messages = [
        *_tool_turns(thinking=None),
        Message("assistant", [TextPart("Sunny.")]),
        Message("user", [TextPart("ok")]),
    ]
    body = _body(DEEPSEEK, DEEPSEEK_V4, messages=messages, tools=[WEATHER])
    assert [m.get("reasoning_content") for m in body["messages"] if m["role"] == "assistant"] == ["", ""]


def test_deepseek_plain_chat_turns_do_not_echo() -> None:
    messages = [
        Message("user", [TextPart("q")]),
        Message("assistant", [ThinkingPart("t"), TextPart("a")]),
        Message("user", [TextPart("q2")]),
    ]
    assert "reasoning_content" not in _body(DEEPSEEK, DEEPSEEK_REASONER, messages=messages)["messages"][1]
    # A model that does not reason never gets the field.
    assert (
        "reasoning_content"
        not in _body(DEEPSEEK, DEEPSEEK_CHAT, messages=_tool_turns(), tools=[WEATHER])["messages"][1]
    )


def test_kimi_placeholder_is_not_empty() -> None:
    body = _body(KIMI, KIMI_K2, messages=_tool_turns(thinking=None), tools=[WEATHER])
    assert body["messages"][1]["reasoning_content"] == "."


def test_minimax_keeps_reasoning_as_reasoning_details() -> None:
    body = _body(MINIMAX, MINIMAX_M2, messages=_tool_turns(), tools=[WEATHER])
    assert body["messages"][1]["reasoning_details"] == [{"type": "reasoning.text", "text": "Need the weather."}]
    assert "reasoning_content" not in body["messages"][1]
    assert body["reasoning_split"] is True


# --- reasoning controls ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effort", "openai", "openai_xhigh", "deepseek", "grok"),
    [
        ("minimal", "minimal", "minimal", "low", "low"),
        ("low", "low", "low", "low", "low"),
        ("medium", "medium", "medium", "high", "high"),
        ("high", "high", "high", "high", "high"),
        ("xhigh", "high", "xhigh", "max", "high"),
        ("max", "high", "xhigh", "max", "high"),
    ],
)
def test_effort_mapping(effort: str, openai: str, openai_xhigh: str, deepseek: str, grok: str) -> None:
    # Efforts as the -minimal/-low/-medium/-high/-max model-name suffixes give them (advanced__reasoning.md).
    reasoning = ReasoningConfig(effort=effort)  # type: ignore[arg-type]
    assert _body(OPENAI, GPT, reasoning=reasoning)["reasoning_effort"] == openai
    xhigh_model = entry("gpt-5.2", reasoning="effort", capabilities=frozenset({"effort_xhigh"}))
    assert _body(OPENAI, xhigh_model, reasoning=reasoning)["reasoning_effort"] == openai_xhigh
    deepseek_body = _body(DEEPSEEK, DEEPSEEK_V4, reasoning=reasoning)
    assert deepseek_body["thinking"] == {"type": "enabled"} and deepseek_body["reasoning_effort"] == deepseek
    assert _body(GROK, GROK_MINI, reasoning=reasoning)["reasoning_effort"] == grok


def test_reasoning_is_a_no_op_where_it_does_not_apply() -> None:
    high = ReasoningConfig(effort="high")
    for profile, model in ((GROK, GROK_4), (DEEPSEEK, DEEPSEEK_REASONER), (OPENAI, GPT_4O), (DEEPSEEK, DEEPSEEK_CHAT)):
        body = _body(profile, model, reasoning=high)
        assert not {"reasoning_effort", "thinking", "enable_thinking"} & body.keys()


def test_turning_thinking_off() -> None:
    off = ReasoningConfig(enabled=False)
    assert _body(DEEPSEEK, DEEPSEEK_V4, reasoning=off)["thinking"] == {"type": "disabled"}
    assert "reasoning_effort" not in _body(DEEPSEEK, DEEPSEEK_V4, reasoning=off)
    assert _body(QWEN, QWEN_PLUS, reasoning=off)["enable_thinking"] is False
    assert _body(KIMI, KIMI_K2, reasoning=off)["thinking"] == {"type": "disabled"}
    none_model = entry("gpt-5.1", reasoning="effort", capabilities=frozenset({"effort_none"}))
    assert (
        _body(OPENAI, none_model, reasoning=ReasoningConfig(effort="none", enabled=False))["reasoning_effort"] == "none"
    )
    assert "reasoning_effort" not in _body(OPENAI, GPT, reasoning=off)  # gpt-5 cannot switch it off


def test_a_thinking_off_alias_always_switches_thinking_off() -> None:
    alias = entry("deepseek-flash", provider="deepseek", capabilities=frozenset({"thinking_off"}))
    for reasoning in (None, ReasoningConfig(effort="high")):
        body = _body(DEEPSEEK, alias, reasoning=reasoning)
        assert body["thinking"] == {"type": "disabled"}
        assert "reasoning_effort" not in body
    assert "thinking" not in _body(GROK, entry("grok-x", provider="grok", capabilities=frozenset({"thinking_off"})))


def test_budgets_and_toggles() -> None:
    qwen = _body(QWEN, QWEN_PLUS, reasoning=ReasoningConfig(budget_tokens=4000))
    assert (qwen["enable_thinking"], qwen["thinking_budget"]) == (True, 4000)
    assert "reasoning_effort" not in qwen
    # An Anthropic client's budget becomes an effort for effort-style providers.
    assert _body(OPENAI, GPT, reasoning=ReasoningConfig(budget_tokens=1024))["reasoning_effort"] == "low"
    assert _body(OPENAI, GPT, reasoning=ReasoningConfig(budget_tokens=2048))["reasoning_effort"] == "medium"
    assert _body(OPENAI, GPT, reasoning=ReasoningConfig(budget_tokens=31_999))["reasoning_effort"] == "high"
    assert _body(OPENAI, GPT, reasoning=ReasoningConfig(adaptive=True))["reasoning_effort"] == "high"
    assert _body(KIMI, KIMI_K2, reasoning=ReasoningConfig(effort="high"))["thinking"] == {"type": "enabled"}
    assert "reasoning_effort" not in _body(KIMI, KIMI_K2, reasoning=ReasoningConfig(effort="high"))


def test_minimax_always_asks_for_split_reasoning() -> None:
    assert _body(MINIMAX, MINIMAX_M2)["reasoning_split"] is True
    assert "reasoning_split" not in _body(OPENAI, GPT)


# --- tools -------------------------------------------------------------------------------------------------


def test_tools_and_tool_choice_for_openai() -> None:
    body = _body(
        OPENAI, tools=[WEATHER, CLOCK], tool_choice=ToolChoice("tool", "get_weather"), parallel_tool_calls=False
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER.parameters,
                "description": "Weather for a city",
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert _body(OPENAI, tools=[WEATHER], tool_choice=ToolChoice("required"))["tool_choice"] == "required"
    assert _body(OPENAI, tools=[WEATHER], tool_choice=ToolChoice("none"))["tool_choice"] == "none"
    assert not {"tools", "tool_choice"} & _body(OPENAI, tool_choice=ToolChoice("auto")).keys()


def test_profiles_strip_what_they_cannot_take() -> None:
    fields = {"tools": [WEATHER], "tool_choice": ToolChoice("required"), "parallel_tool_calls": True}
    deepseek = _body(DEEPSEEK, **fields)
    assert deepseek["tool_choice"] == "required" and "parallel_tool_calls" not in deepseek
    assert "strict" not in deepseek["tools"][0]["function"]
    minimax = _body(MINIMAX, MINIMAX_M2, **fields)
    assert not {"tool_choice", "parallel_tool_calls"} & minimax.keys()
    assert "strict" not in minimax["tools"][0]["function"]
    # MiniMax cannot be told "none", so it is not shown the tools at all.
    assert "tools" not in _body(MINIMAX, MINIMAX_M2, tools=[WEATHER], tool_choice=ToolChoice("none"))


def test_qwen_required_falls_back() -> None:
    assert _body(QWEN, tools=[WEATHER], tool_choice=ToolChoice("required"))["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    assert _body(QWEN, tools=[WEATHER, CLOCK], tool_choice=ToolChoice("required"))["tool_choice"] == "auto"


def test_kimi_forced_tool_turns_thinking_off_or_falls_back() -> None:
    forced = {"tools": [WEATHER], "tool_choice": ToolChoice("tool", "get_weather")}
    toggle = _body(KIMI, KIMI_K2, **forced)
    assert toggle["thinking"] == {"type": "disabled"}
    assert toggle["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    always = _body(KIMI, KIMI_THINKING, **forced)
    assert always["tool_choice"] == "auto" and "thinking" not in always
    assert _body(KIMI, KIMI_K2, tools=[WEATHER], tool_choice=ToolChoice("auto"))["tool_choice"] == "auto"


def test_native_tools_and_extra_only_for_the_same_protocol() -> None:
    native = [{"type": "custom", "custom": {"name": "grep"}}]
    extra = {"seed": 7, "logprobs": True, "store": True, "model": "not-this"}
    same = _body(OPENAI, tools=[CLOCK], native_tools=native, extra=extra, origin="openai_chat")
    assert same["tools"][1] == native[0]
    assert (same["seed"], same["logprobs"], same["store"], same["model"]) == (7, True, True, "gpt-4o-2024-08-06")
    other = _body(OPENAI, tools=[CLOCK], native_tools=native, extra=extra)
    assert len(other["tools"]) == 1 and not {"seed", "logprobs", "store"} & other.keys()
    deepseek = _body(DEEPSEEK, extra=extra, origin="openai_chat")
    assert deepseek["seed"] == 7 and "store" not in deepseek


# --- structured output -------------------------------------------------------------------------------------


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_json_schema_native() -> None:
    fmt = ResponseFormat(type="json_schema", schema=SCHEMA, name="person", strict=True)
    for profile in (OPENAI, GROK, QWEN, GENERIC):
        assert _body(profile, response_format=fmt)["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": SCHEMA, "strict": True},
        }
    assert _body(OPENAI, response_format=ResponseFormat(type="json_object"))["response_format"] == {
        "type": "json_object"
    }
    assert "response_format" not in _body(OPENAI, response_format=ResponseFormat(type="text"))


@pytest.mark.parametrize("profile", [DEEPSEEK, KIMI])
def test_json_schema_downgrades_to_json_object_with_the_schema_as_instruction(profile: Profile) -> None:
    fmt = ResponseFormat(type="json_schema", schema=SCHEMA, name="person")
    body = _body(profile, response_format=fmt, system=[TextPart("Be exact.")])
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": "Be exact."}
    assert body["messages"][1]["role"] == "system"
    assert "JSON Schema" in body["messages"][1]["content"]
    assert orjson.dumps(SCHEMA).decode() in body["messages"][1]["content"]


def test_minimax_refuses_response_format() -> None:
    for kind in ("json_object", "json_schema"):
        with pytest.raises(NotImplementedForModel, match="response_format"):
            _body(MINIMAX, MINIMAX_M2, response_format=ResponseFormat(type=kind, schema=SCHEMA))  # type: ignore[arg-type]


def test_qwen_thinking_is_streamed_upstream_even_for_a_non_streaming_client() -> None:
    from clearmaas.canonical import ChatRequest, Message, ReasoningConfig, TextPart
    from clearmaas.catalogue.entry import ModelEntry
    from clearmaas.providers.base import Deployment
    from clearmaas.providers.openai_chat.request import encode_request
    from clearmaas.providers.profiles import QWEN

    import orjson

    model = ModelEntry(id="qwen/qwen3-max", provider="qwen", upstream="qwen3-max", context_length=1000,
                       max_output_tokens=100, reasoning="toggle")
    request = ChatRequest(model="qwen/qwen3-max", origin="openai_chat",
                          messages=[Message(role="user", parts=[TextPart("hi")])],
                          reasoning=ReasoningConfig(effort="high"))
    upstream = encode_request(request, model=model, deployment=Deployment("http://x/v1", "k"), profile=QWEN)
    body = orjson.loads(upstream.body)
    assert upstream.stream is True and body["stream"] is True and body["enable_thinking"] is True
    assert body["stream_options"] == {"include_usage": True}
    plain = encode_request(ChatRequest(model="qwen/qwen3-max", origin="openai_chat",
                                       messages=[Message(role="user", parts=[TextPart("hi")])]),
                           model=model, deployment=Deployment("http://x/v1", "k"), profile=QWEN)
    assert plain.stream is False
