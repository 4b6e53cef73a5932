"""Anthropic non-streaming decoding beyond the recordings: block kinds, stop reasons, usage fields."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pytest

from clearmaas.canonical import TextPart, ThinkingPart, ToolCallPart, UnknownPart, Usage
from clearmaas.errors import UpstreamProtocolError
from clearmaas.providers.anthropic import decode_response, map_usage


def message(*content: Mapping[str, object], **fields: object) -> bytes:
    return orjson.dumps(
        {"id": "msg_x", "type": "message", "role": "assistant", "model": "claude-x", "content": list(content), **fields}
    )


def test_block_kinds() -> None:
    container = {"type": "container_upload", "file_id": "file_1"}
    response = decode_response(
        message(
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "text", "text": ""},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "f",
                "input": {"b": 1, "a": [True, None]},
                "caller": {"type": "direct"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {}},
            container,
            stop_reason="tool_use",
        )
    )
    assert response.parts == [
        ThinkingPart(text="", redacted="EmwKAhgB", origin="anthropic"),
        ToolCallPart(id="toolu_1", name="f", arguments='{"b":1,"a":[true,null]}'),
        ToolCallPart(id="toolu_2", name="g", arguments="{}"),
        UnknownPart(origin="anthropic_messages", data=container),
    ]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("end_turn", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("tool_use", "tool_use"),
        ("pause_turn", "pause_turn"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "max_tokens"),
        ("something_new", "end_turn"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(wire: str | None, expected: str) -> None:
    response = decode_response(message({"type": "text", "text": "x"}, stop_reason=wire, stop_sequence="###"))
    assert response.stop_reason == expected
    assert response.stop_sequence == "###"


def test_unknown_stop_reason_with_tool_calls_is_tool_use() -> None:
    response = decode_response(message({"type": "tool_use", "id": "t", "name": "f", "input": {}}, stop_reason=None))
    assert response.stop_reason == "tool_use"


def test_usage_with_cache_and_server_tools() -> None:
    usage = map_usage(
        {
            "input_tokens": 21,
            "cache_creation_input_tokens": 1000,
            "cache_read_input_tokens": 50000,
            "output_tokens": 300,
            "output_tokens_details": {"thinking_tokens": 120},
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0, "code_execution_requests": 1},
            "service_tier": "standard",
        }
    )
    assert usage == Usage(
        input_tokens=21,
        cache_write_tokens=1000,
        cache_read_tokens=50000,
        output_tokens=300,
        reasoning_tokens=120,
        server_tool_calls={"web_search": 3, "code_execution": 1},
    )
    assert usage.prompt_tokens == 51021
    assert map_usage(None) == Usage()
    assert map_usage({"input_tokens": None, "output_tokens": "7", "cache_read_input_tokens": True}) == Usage()


@pytest.mark.parametrize(
    "body", [b"<html>", b"[]", b'{"type": "error", "error": {"type": "api_error"}}', b'{"content": 3}']
)
def test_bodies_that_are_not_messages(body: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        decode_response(body)


def test_text_citations_are_kept_in_details() -> None:
    citation = {
        "type": "char_location",
        "cited_text": "x",
        "document_index": 0,
        "start_char_index": 0,
        "end_char_index": 1,
    }
    response = decode_response(message({"type": "text", "text": "x", "citations": [citation]}, stop_reason="end_turn"))
    assert response.parts == [TextPart(text="x", details={"anthropic": {"citations": [citation]}})]
