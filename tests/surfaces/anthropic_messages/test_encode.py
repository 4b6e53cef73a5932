"""Encoding non-streamed responses, validated with the Anthropic SDK's own `Message` model, and round trips of
real recorded Anthropic responses echoed back by a client."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Message as SDKMessage

from clearmaas.canonical import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    UnknownPart,
    Usage,
)
from clearmaas.canonical.response import StopReason
from clearmaas.surfaces.anthropic_messages import SURFACE, decode_request, encode_response
from clearmaas.surfaces.base import Surface

FIXTURES = Path(__file__).parents[2] / "fixtures" / "anthropic"
REQUEST = ChatRequest(model="anthropic/claude-sonnet-4.6", messages=[], origin="anthropic_messages", max_tokens=100)


def encode(*parts: Any, **fields: Any) -> dict[str, Any]:
    response = ChatResponse(id=fields.pop("id", "msg_01"), model=fields.pop("model", "claude-x"), parts=list(parts))
    for name, value in fields.items():
        setattr(response, name, value)
    message = encode_response(response, REQUEST)
    SDKMessage.model_validate(message)  # every encoding must be what the SDK parses
    return message


def test_surface_object_fulfils_the_contract() -> None:
    surface: Surface = SURFACE
    assert surface.protocol == "anthropic_messages"
    assert surface.encode_response is encode_response


def test_a_message_with_every_block_kind() -> None:
    server_tool_use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}}
    message = encode(
        ThinkingPart(text="Let me see", signature="Er4BCkYI", origin="anthropic"),
        ThinkingPart(text="", redacted="EmwKAhgB", origin="anthropic"),
        TextPart(text="Answer"),
        ToolCallPart(id="toolu_01", name="get_weather", arguments='{"city": "Paris"}'),
        UnknownPart(origin="anthropic_messages", data=server_tool_use),
        stop_reason="tool_use",
        usage=Usage(input_tokens=10, cache_read_tokens=90, cache_write_tokens=5, output_tokens=20),
    )
    assert message == {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Let me see", "signature": "Er4BCkYI"},
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": "Answer"},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            server_tool_use,
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 90,
            "output_tokens": 20,
        },
    }


def test_parts_an_anthropic_client_cannot_receive_are_left_out() -> None:
    message = encode(
        TextPart(text=""),
        ImagePart(url="https://img.test/a.png"),
        UnknownPart(origin="openai_responses", data={"type": "web_search_call"}),
        ThinkingPart(text="deepseek reasoning"),
        TextPart(text="ok"),
    )
    assert message["content"] == [
        {"type": "thinking", "thinking": "deepseek reasoning", "signature": ""},
        {"type": "text", "text": "ok"},
    ]


@pytest.mark.parametrize(
    ("response_id", "expected"),
    [("msg_01XrsJ", "msg_01XrsJ"), ("chatcmpl-B9MHDbslfk", "msg_chatcmpl-B9MHDbslfk"), ("", None)],
)
def test_message_ids_start_with_msg(response_id: str, expected: str | None) -> None:
    message_id = encode(TextPart(text="x"), id=response_id)["id"]
    if expected is None:
        assert re.fullmatch(r"msg_[0-9a-f]{32}", message_id)
    else:
        assert message_id == expected


def test_model_falls_back_to_the_requested_one() -> None:
    assert encode(TextPart(text="x"), model="")["model"] == REQUEST.model


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("tool_use", "tool_use"),
        ("pause_turn", "pause_turn"),
        ("content_filter", "refusal"),
    ],
)
def test_stop_reasons(stop_reason: StopReason, expected: str) -> None:
    assert encode(TextPart(text="x"), stop_reason=stop_reason)["stop_reason"] == expected


def test_stop_sequence_is_reported() -> None:
    message = encode(TextPart(text="x"), stop_reason="stop_sequence", stop_sequence="###")
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "###")


def test_usage_with_server_tools_and_thinking_tokens() -> None:
    usage = Usage(input_tokens=27118, output_tokens=600, reasoning_tokens=200, server_tool_calls={"web_search": 2})
    parsed = SDKMessage.model_validate(encode(TextPart(text="x"), usage=usage)).usage
    assert parsed.server_tool_use is not None and parsed.output_tokens_details is not None
    assert (parsed.server_tool_use.web_search_requests, parsed.server_tool_use.web_fetch_requests) == (2, 0)
    assert parsed.output_tokens_details.thinking_tokens == 200
    assert "server_tool_use" not in encode(TextPart(text="x"))["usage"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("", {}),  # a tool called without arguments
        ("  ", {}),
        ("null", {}),
        ('{"a": {"b": [1, 2.5, null]}}', {"a": {"b": [1, 2.5, None]}}),
        ('{"path": "a.py"', {"_raw_arguments": '{"path": "a.py"'}),  # a model's broken JSON
        ("[1, 2]", {"_raw_arguments": "[1, 2]"}),  # JSON, but not the object Anthropic requires
    ],
)
def test_tool_input_from_arguments(arguments: str, expected: dict[str, Any]) -> None:
    block = encode(ToolCallPart(id="toolu_1", name="f", arguments=arguments))["content"][0]
    assert block["input"] == expected


def test_kimi_tool_id_is_made_legal_and_restored_on_the_way_back() -> None:
    block = encode(ToolCallPart(id="functions.get_weather:0", name="get_weather", arguments="{}"))["content"][0]
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", block["id"])
    echoed = decode_request(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [block]}]}, {}
    )
    part = echoed.messages[0].parts[0]
    assert isinstance(part, ToolCallPart) and part.id == "functions.get_weather:0"


def test_foreign_thinking_keeps_its_origin_through_the_client() -> None:
    message = encode(
        ThinkingPart(text="t", signature="gemini-sig", origin="google"),
        ThinkingPart(text="", redacted="enc-blob", origin="openai_responses"),
    )
    assert message["content"][0]["signature"] == "clearmaas:google:gemini-sig"
    echoed = decode_request(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": message["content"]}]}, {}
    )
    assert echoed.messages[0].parts == [
        ThinkingPart(text="t", signature="gemini-sig", origin="google"),
        ThinkingPart(text="", redacted="enc-blob", origin="openai_responses"),
    ]


@pytest.mark.parametrize(
    "fixture", ["anthropic-clear-thinking.1.json", "anthropic-web-search-tool.1.json", "anthropic-json-tool.1.json"]
)
def test_recorded_responses_survive_a_round_trip_through_the_client(fixture: str) -> None:
    """A real Anthropic answer, echoed back as an assistant turn, decodes to parts that encode to the same
    content: signatures, citations, server tool blocks and tool inputs unchanged."""
    recorded = orjson.loads((FIXTURES / fixture).read_bytes())
    request = decode_request(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": recorded["content"]}]}, {}
    )
    wire_usage = recorded["usage"]
    response = ChatResponse(
        id=recorded["id"],
        model=recorded["model"],
        parts=request.messages[0].parts,
        stop_reason=recorded["stop_reason"],
        usage=Usage(
            input_tokens=wire_usage["input_tokens"],
            cache_read_tokens=wire_usage["cache_read_input_tokens"],
            cache_write_tokens=wire_usage["cache_creation_input_tokens"],
            output_tokens=wire_usage["output_tokens"],
            server_tool_calls={"web_search": wire_usage.get("server_tool_use", {}).get("web_search_requests", 0)},
        ),
    )
    message = encode_response(response, REQUEST)
    assert message["content"] == recorded["content"]
    ours, theirs = SDKMessage.model_validate(message), SDKMessage.model_validate(recorded)
    assert (ours.id, ours.model, ours.stop_reason) == (theirs.id, theirs.model, theirs.stop_reason)
    for field in ("input_tokens", "cache_read_input_tokens", "output_tokens", "server_tool_use"):
        assert getattr(ours.usage, field) == getattr(theirs.usage, field)
