"""Decoding Anthropic Messages requests: every block and parameter form, a Claude Code request with nothing
rejected, field-naming validation errors, and a fuzz check that only `InvalidRequest` ever escapes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from clearmaas.canonical import (
    DocumentPart,
    ImagePart,
    ReasoningConfig,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    UnknownPart,
)
from clearmaas.errors import InvalidRequest
from clearmaas.surfaces.anthropic_messages import decode_request


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": list(messages), **fields}


def user(*content: Any) -> dict[str, Any]:
    """A user turn: one string is string content, anything else a list of blocks."""
    return {"role": "user", "content": content[0] if content and isinstance(content[0], str) else list(content)}


def assistant(*content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(content)}


def test_minimal_request() -> None:
    request = decode_request(body({"role": "user", "content": "Hello"}), {})
    assert request.origin == "anthropic_messages" and request.model == "claude-sonnet-4-5"
    assert request.max_tokens == 1024 and request.include_usage is True and request.stream is False
    assert [(m.role, m.parts) for m in request.messages] == [("user", [TextPart(text="Hello")])]
    assert (request.system, request.tools, request.extra, request.reasoning) == ([], [], {}, None)


def test_text_blocks_keep_cache_control_and_empty_text_is_dropped() -> None:
    request = decode_request(
        body(
            user(
                {"type": "text", "text": ""},
                {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ),
            {"role": "assistant", "content": ""},
        ),
        {},
    )
    assert request.messages[0].parts == [
        TextPart(text="Hi", details={"anthropic": {"cache_control": {"type": "ephemeral", "ttl": "1h"}}})
    ]
    assert request.messages[1].parts == []


def test_images_and_documents() -> None:
    file_image = {"type": "image", "source": {"type": "file", "file_id": "file_011"}}
    content_document = {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "x"}]}}
    request = decode_request(
        body(
            user(
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}},
                file_image,
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
                    "title": "Report",
                    "citations": {"enabled": True},
                },
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
                {"type": "document", "source": {"type": "url", "url": "https://doc.test/a.pdf"}},
                content_document,
            )
        ),
        {},
    )
    assert request.messages[0].parts == [
        ImagePart(media_type="image/png", data="iVBORw0K"),
        ImagePart(url="https://img.test/a.jpg"),
        UnknownPart(origin="anthropic_messages", data=file_image),
        DocumentPart(
            media_type="application/pdf",
            data="JVBERi0x",
            title="Report",
            details={"anthropic": {"citations": {"enabled": True}}},
        ),
        DocumentPart(media_type="text/plain", text="plain words"),
        DocumentPart(url="https://doc.test/a.pdf"),
        UnknownPart(origin="anthropic_messages", data=content_document),
    ]


def test_thinking_and_redacted_thinking_are_anthropic_signed() -> None:
    request = decode_request(
        body(
            user("q"),
            assistant(
                {"type": "thinking", "thinking": "Let me think", "signature": "Er4BCkYI"},
                {"type": "thinking", "thinking": "unsigned", "signature": ""},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "thinking", "thinking": "from gemini", "signature": "clearmaas:google:CiQB"},
            ),
        ),
        {},
    )
    assert request.messages[1].parts == [
        ThinkingPart(text="Let me think", signature="Er4BCkYI", origin="anthropic"),
        ThinkingPart(text="unsigned", signature=None, origin="anthropic"),
        ThinkingPart(text="", redacted="EmwKAhgB", origin="anthropic"),
        ThinkingPart(text="from gemini", signature="CiQB", origin="google"),
    ]


def test_tool_use_and_tool_results() -> None:
    search_result = {"type": "search_result", "source": "https://s.test", "title": "t", "content": []}
    request = decode_request(
        body(
            user("weather?"),
            assistant(
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris", "days": [1, 2]},
                    "caller": {"type": "direct"},
                },
                {"type": "tool_use", "id": "cmx_ZnVuY3Rpb25zLkJhc2g6MA", "name": "Bash", "input": {}},
            ),
            user(
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "cmx_ZnVuY3Rpb25zLkJhc2g6MA",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "exit 1"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                        search_result,
                    ],
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "tool_result", "tool_use_id": "toolu_02"},
            ),
        ),
        {},
    )
    assert request.messages[1].parts == [
        ToolCallPart(
            id="toolu_01",
            name="get_weather",
            arguments='{"city":"Paris","days":[1,2]}',
            details={"anthropic": {"caller": {"type": "direct"}}},
        ),
        ToolCallPart(id="functions.Bash:0", name="Bash", arguments="{}"),  # Kimi's id, restored
    ]
    first, second, third = request.messages[2].parts
    assert first == ToolResultPart(tool_call_id="toolu_01", content=[TextPart(text="18C")])
    assert isinstance(second, ToolResultPart)
    assert second.tool_call_id == "functions.Bash:0" and second.is_error is True
    assert second.content == [TextPart(text="exit 1"), ImagePart(media_type="image/png", data="AAA")]
    assert second.details is not None
    assert second.details["anthropic"]["cache_control"] == {"type": "ephemeral"}
    assert second.details["anthropic"]["content"][2] == search_result  # the original, for Anthropic upstreams
    assert third == ToolResultPart(tool_call_id="toolu_02", content=[])


def test_unknown_blocks_pass_through_verbatim() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "brand_new_block_2027", "payload": {"a": 1}},
    ]
    request = decode_request(body(user("q"), assistant(*blocks)), {})
    assert request.messages[1].parts == [UnknownPart(origin="anthropic_messages", data=b) for b in blocks]


def test_big_integers_in_tool_input_do_not_break_decoding() -> None:
    request = decode_request(body(assistant({"type": "tool_use", "id": "t", "name": "n", "input": {"n": 2**70}})), {})
    part = request.messages[0].parts[0]
    assert isinstance(part, ToolCallPart) and part.arguments == '{"n":1180591620717411303424}'


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, ToolChoice(mode="auto"), None),
        ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice(mode="required"), False),
        ({"type": "tool", "name": "get_weather"}, ToolChoice(mode="tool", name="get_weather"), None),
        ({"type": "none"}, ToolChoice(mode="none"), None),
        ({"type": "auto", "disable_parallel_tool_use": False}, ToolChoice(mode="auto"), None),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: ToolChoice, parallel: bool | None) -> None:
    request = decode_request(body(user("q"), tool_choice=choice), {})
    assert (request.tool_choice, request.parallel_tool_calls) == (expected, parallel)


def test_custom_and_server_tools() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    request = decode_request(
        body(
            user("q"),
            tools=[
                {"name": "get_weather", "description": "Weather", "input_schema": schema},
                {
                    "type": "custom",
                    "name": "Bash",
                    "input_schema": {"type": "object"},
                    "strict": True,
                    "cache_control": {"type": "ephemeral"},
                    "defer_loading": True,
                },
                web_search,
            ],
        ),
        {},
    )
    weather, bash = request.tools
    assert (weather.name, weather.description, weather.parameters, weather.details) == (
        "get_weather",
        "Weather",
        schema,
        None,
    )
    assert (bash.name, bash.strict, bash.details) == (
        "Bash",
        True,
        {"anthropic": {"cache_control": {"type": "ephemeral"}, "defer_loading": True}},
    )
    assert request.native_tools == [web_search]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, ReasoningConfig(budget_tokens=2048)),
        ({"thinking": {"type": "disabled"}}, ReasoningConfig(enabled=False)),
        ({"thinking": {"type": "adaptive"}}, ReasoningConfig(adaptive=True)),
        (
            {"thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "max"}},
            ReasoningConfig(adaptive=True, effort="max", include_thoughts=False),
        ),
        ({"output_config": {"effort": "low"}}, ReasoningConfig(effort="low")),
    ],
)
def test_thinking_and_effort(fields: dict[str, Any], expected: ReasoningConfig) -> None:
    assert decode_request(body(user("q"), **fields), {}).reasoning == expected


def test_output_config_is_modelled_and_kept_whole_for_anthropic() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    output_config = {"format": {"type": "json_schema", "schema": schema}, "effort": "medium", "future_knob": 1}
    request = decode_request(body(user("q"), output_config=output_config), {})
    assert request.response_format == ResponseFormat(type="json_schema", schema=schema)
    assert request.reasoning == ReasoningConfig(effort="medium")
    assert request.extra == {"output_config": output_config}


def test_beta_output_format_rides_in_extra_only() -> None:
    output_format = {"type": "json_schema", "schema": {"type": "object"}}
    request = decode_request(body(user("q"), output_format=output_format), {})
    assert (request.response_format, request.extra) == (None, {"output_format": output_format})


def test_sampling_parameters_metadata_and_nulls() -> None:
    request = decode_request(
        body(
            user("q"),
            stream=True,
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop_sequences=["###", "END"],
            metadata={"user_id": "user_1"},
            tools=None,
            system=None,
            tool_choice=None,
        ),
        {},
    )
    assert (request.stream, request.temperature, request.top_p, request.top_k) == (True, 0.2, 0.9, 40)
    assert (request.stop, request.user, request.include_usage) == (["###", "END"], "user_1", True)


def test_headers_forward_only_the_protocol_ones() -> None:
    headers = Headers(
        raw=[
            (b"anthropic-version", b"2023-06-01"),
            (b"anthropic-beta", b"claude-code-20250219,interleaved-thinking-2025-05-14"),
            (b"anthropic-beta", b"effort-2025-11-24"),
            (b"x-api-key", b"sk-clearmaas-secret"),
            (b"user-agent", b"claude-cli/2.0.0 (external, cli)"),
        ]
    )
    request = decode_request(body(user("q")), headers)
    assert request.forward_headers == {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,effort-2025-11-24",
    }
    assert decode_request(body(user("q")), {"Anthropic-Beta": "x"}).forward_headers == {"anthropic-beta": "x"}


CLAUDE_CODE_TOOLS = [
    "Task", "Bash", "Glob", "Grep", "LS", "ExitPlanMode", "Read", "Edit",
    "MultiEdit", "Write", "NotebookEdit", "WebFetch", "TodoWrite", "WebSearch", "BashOutput", "KillShell",
]  # fmt: skip


def claude_code_request() -> dict[str, Any]:
    """Shaped like a captured Claude Code request (protocols.md §8.2): every field it sends, new betas included."""
    tools: list[dict[str, Any]] = [
        {
            "name": name,
            "description": f"The {name} tool.",
            "input_schema": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"arg": {"type": "string", "description": "An argument."}},
                "required": ["arg"],
                "additionalProperties": False,
            },
        }
        for name in CLAUDE_CODE_TOOLS
    ]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "temperature": 1,
        "system": [
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": {"type": "ephemeral", "scope": "global"},
            },
            {
                "type": "text",
                "text": "You are an interactive CLI tool.\n<env>\nWorking directory: /repo\n</env>",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        ],
        "messages": [
            user(
                {"type": "text", "text": "<system-reminder>Be brief.</system-reminder>"},
                {"type": "text", "text": "Fix the failing test", "cache_control": {"type": "ephemeral"}},
            ),
            assistant(
                {"type": "thinking", "thinking": "Read the test first.", "signature": "EqQBCkgIAxAB"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01Read", "name": "Read", "input": {"arg": "tests/test_a.py"}},
            ),
            user(
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01Read",
                    "content": [{"type": "text", "text": "def test_a(): assert 1 == 2"}],
                    "cache_control": {"type": "ephemeral"},
                }
            ),
        ],
        "tools": [*tools, {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
        "metadata": {"user_id": "user_2f1a_account_8c1e0b7d_session_5b2f9e64"},
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "cache_control": {"type": "ephemeral"},
    }


def test_claude_code_request_is_accepted_whole() -> None:
    raw = claude_code_request()
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
        "prompt-caching-scope-2026-01-05,effort-2025-11-24",
        "authorization": "Bearer sk-clearmaas-secret",
        "x-app": "cli",
    }
    request = decode_request(copy.deepcopy(raw), headers)
    assert raw == claude_code_request()  # the body is not modified
    assert [t.name for t in request.tools] == CLAUDE_CODE_TOOLS
    assert request.tools[-1].details == {"anthropic": {"cache_control": {"type": "ephemeral"}}}
    assert request.native_tools == [raw["tools"][-1]]
    assert [part.details for part in request.system] == [
        {"anthropic": {"cache_control": {"type": "ephemeral", "scope": "global"}}},
        {"anthropic": {"cache_control": {"type": "ephemeral", "ttl": "1h"}}},
    ]
    assert request.user == "user_2f1a_account_8c1e0b7d_session_5b2f9e64"
    assert request.reasoning == ReasoningConfig(budget_tokens=31999, effort="high")
    assert request.extra == {
        "output_config": {"effort": "high"},
        "context_management": raw["context_management"],
        "cache_control": {"type": "ephemeral"},
    }
    assert set(request.forward_headers) == {"anthropic-version", "anthropic-beta"}
    assert [part.kind for m in request.messages for part in m.parts] == [
        "text", "text", "thinking", "text", "tool_call", "tool_result",
    ]  # fmt: skip
    assert (request.stream, request.max_tokens, request.temperature) == (True, 32000, 1)


@pytest.mark.parametrize(
    ("mutate", "param"),
    [
        (lambda b: b.pop("max_tokens"), "max_tokens"),
        (lambda b: b.update(max_tokens="100"), "max_tokens"),
        (lambda b: b.update(max_tokens=True), "max_tokens"),
        (lambda b: b.update(max_tokens=-1), "max_tokens"),
        (lambda b: b.pop("model"), "model"),
        (lambda b: b.pop("messages"), "messages"),
        (lambda b: b.update(messages="hi"), "messages"),
        (lambda b: b["messages"].__setitem__(0, "hi"), "messages[0]"),
        (lambda b: b["messages"][0].update(role="system"), "messages[0].role"),
        (lambda b: b["messages"][0].pop("content"), "messages[0].content"),
        (lambda b: b["messages"][0].update(content=5), "messages[0].content"),
        (lambda b: b["messages"][1]["content"][0].pop("type"), "messages[1].content[0].type"),
        (lambda b: b["messages"][1]["content"].__setitem__(0, "x"), "messages[1].content[0]"),
        (lambda b: b["messages"][1]["content"][1].pop("text"), "messages[1].content[1].text"),
        (lambda b: b["messages"][1]["content"][2].update(input="{}"), "messages[1].content[2].input"),
        (lambda b: b["messages"][1]["content"][2].pop("id"), "messages[1].content[2].id"),
        (lambda b: b["messages"][1]["content"][0].pop("thinking"), "messages[1].content[0].thinking"),
        (lambda b: b["messages"][1]["content"][0].update(signature=5), "messages[1].content[0].signature"),
        (lambda b: b["messages"][2]["content"][0].pop("tool_use_id"), "messages[2].content[0].tool_use_id"),
        (lambda b: b["messages"][2]["content"][0].update(content=5), "messages[2].content[0].content"),
        (lambda b: b["messages"][2]["content"][0].update(is_error="yes"), "messages[2].content[0].is_error"),
        (
            lambda b: b["messages"][2]["content"][0]["content"][0].update(type=None),
            "messages[2].content[0].content[0].type",
        ),
        (
            lambda b: b["messages"][0]["content"].append({"type": "image"}),
            "messages[0].content[2].source",
        ),
        (
            lambda b: b["messages"][0]["content"].append({"type": "image", "source": {"type": "base64"}}),
            "messages[0].content[2].source.media_type",
        ),
        (lambda b: b.update(system=5), "system"),
        (lambda b: b["system"][0].update(type="image"), "system[0].type"),
        (lambda b: b.update(tools={}), "tools"),
        (lambda b: b["tools"][0].pop("input_schema"), "tools[0].input_schema"),
        (lambda b: b["tools"][1].pop("name"), "tools[1].name"),
        (lambda b: b["tools"][1].update(type=5), "tools[1].type"),
        (lambda b: b.update(tool_choice="auto"), "tool_choice"),
        (lambda b: b.update(tool_choice={"type": "auto2"}), "tool_choice.type"),
        (lambda b: b.update(tool_choice={"type": ["auto"]}), "tool_choice.type"),
        (lambda b: b.update(tool_choice={"type": "tool"}), "tool_choice.name"),
        (lambda b: b.update(thinking={"type": "enabled"}), "thinking.budget_tokens"),
        (lambda b: b.update(thinking={"type": "on"}), "thinking.type"),
        (lambda b: b.update(output_config=5), "output_config"),
        (lambda b: b.update(output_config={"effort": "extreme"}), "output_config.effort"),
        (lambda b: b.update(output_config={"effort": ["high"]}), "output_config.effort"),
        (lambda b: b.update(output_config={"format": {"type": "regex"}}), "output_config.format.type"),
        (lambda b: b.update(output_config={"format": {"type": "json_schema"}}), "output_config.format.schema"),
        (lambda b: b.update(temperature="hot"), "temperature"),
        (lambda b: b.update(top_k=1.5), "top_k"),
        (lambda b: b.update(stop_sequences="###"), "stop_sequences"),
        (lambda b: b.update(stop_sequences=["a", 1]), "stop_sequences[1]"),
        (lambda b: b.update(metadata={"user_id": 5}), "metadata.user_id"),
        (lambda b: b.update(stream="yes"), "stream"),
    ],
)
def test_validation_errors_name_the_field(mutate: Any, param: str) -> None:
    raw = claude_code_request()
    mutate(raw)
    with pytest.raises(InvalidRequest) as raised:
        decode_request(raw, {})
    error = raised.value
    assert (error.param, error.status, error.code) == (param, 400, "bad_request_body")
    assert error.message.startswith(f"{param}: ")


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(InvalidRequest):
        decode_request([1, 2], {})  # type: ignore[arg-type]


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_keys = st.sampled_from(["type", "text", "source", "input", "id", "name", "content", "data", "url", "media_type"])
_anything = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys | st.text(max_size=3), inner, max_size=4),
)
_block_types = st.sampled_from(
    ["text", "image", "document", "thinking", "redacted_thinking", "tool_use", "tool_result", "server_tool_use"]
)
_block_fields = ["text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking", "data"]
_block = st.fixed_dictionaries({"type": _block_types}, optional=dict.fromkeys([*_block_fields, "signature"], _anything))
_content = st.text(max_size=5) | st.lists(_block | _block.map(lambda b: {**b, "content": [b]}) | _anything, max_size=4)
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": _content})
_bodies = st.fixed_dictionaries(
    # Mostly valid at the top, so that the fuzzing reaches the blocks and parameters below.
    {"model": st.just("m"), "max_tokens": st.just(100), "messages": st.lists(_message, max_size=3)},
    optional={
        "system": st.text(max_size=3) | st.lists(_block | _anything, max_size=2) | _anything,
        "tools": st.lists(
            st.fixed_dictionaries({}, optional=dict.fromkeys(["type", "name", "input_schema", "strict"], _anything))
        )
        | _anything,
        "tool_choice": st.fixed_dictionaries({}, optional=dict.fromkeys(["type", "name"], _anything)) | _anything,
        "thinking": st.fixed_dictionaries({}, optional=dict.fromkeys(["type", "budget_tokens", "display"], _anything)),
        "output_config": st.fixed_dictionaries({}, optional=dict.fromkeys(["effort", "format"], _anything)) | _anything,
        "metadata": _anything,
        "stop_sequences": _anything,
        "temperature": _anything,
        "stream": _anything,
    },
)
_broken_top = st.fixed_dictionaries(
    {}, optional={"model": _anything, "max_tokens": _anything, "messages": st.lists(_message | _anything) | _anything}
)


@settings(max_examples=400, deadline=None)
@given(raw=_bodies | _broken_top)
def test_only_invalid_request_ever_escapes(raw: dict[str, Any]) -> None:
    try:
        request = decode_request(raw, {})
    except InvalidRequest as error:
        assert error.param is None or error.message.startswith(error.param)
    else:
        assert request.max_tokens is not None and isinstance(request.model, str)
