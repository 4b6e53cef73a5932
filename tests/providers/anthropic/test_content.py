"""System prompt and message encoding for Anthropic: roles, ordering, ids, thinking, media."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from clearmaas.canonical import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from clearmaas.canonical.tool_ids import restore_tool_id
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import InvalidRequest, NotImplementedForModel
from clearmaas.providers.anthropic import encode_request
from clearmaas.providers.base import Deployment

from .recordings import wire

ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
DEPLOYMENT = Deployment(base_url="https://api.anthropic.example", api_key="sk-ant-test")


def encode(model: ModelEntry, messages: list[Message], *, origin: str = "openai_chat", **fields: Any) -> dict[str, Any]:
    request = ChatRequest(model=model.id, messages=messages, origin=origin, **fields)
    body: dict[str, Any] = orjson.loads(encode_request(request, model=model, deployment=DEPLOYMENT).body)
    return body


def user(*parts: Part) -> Message:
    return Message(role="user", parts=list(parts))


def assistant(*parts: Part) -> Message:
    return Message(role="assistant", parts=list(parts))


def test_system_prompt_and_system_turns_become_system_blocks_in_order(sonnet: ModelEntry) -> None:
    cache = {"type": "ephemeral", "ttl": "1h"}
    body = encode(
        sonnet,
        [
            user(TextPart("hi")),
            Message(role="system", parts=[TextPart("Answer in French."), TextPart("")]),
            assistant(TextPart("bonjour")),
        ],
        system=[TextPart("You are helpful.", details={"anthropic": {"cache_control": cache}}), TextPart("  ")],
    )
    assert body["system"] == [
        {"type": "text", "text": "You are helpful.", "cache_control": cache},
        {"type": "text", "text": "Answer in French."},
    ]
    assert [turn["role"] for turn in body["messages"]] == ["user", "assistant"]


def test_no_system_field_without_a_system_prompt(sonnet: ModelEntry) -> None:
    assert "system" not in encode(sonnet, [user(TextPart("hi"))])


def test_tool_results_open_the_user_turn_and_consecutive_turns_merge(sonnet: ModelEntry) -> None:
    body = encode(
        sonnet,
        [
            user(TextPart("weather in Paris and Rome?")),
            assistant(
                TextPart(""),  # what OpenAI clients send beside tool calls
                ToolCallPart(id="call_a", name="weather", arguments='{"city":"Paris"}'),
                ToolCallPart(id="call_b", name="weather", arguments='{"city":"Rome"}'),
            ),
            user(ToolResultPart(tool_call_id="call_a", content=[TextPart("sunny")])),
            user(TextPart("also, be brief"), ToolResultPart(tool_call_id="call_b", content=[TextPart("rain")])),
        ],
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_b", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "tool_result", "tool_use_id": "call_b", "content": [{"type": "text", "text": "rain"}]},
                {"type": "text", "text": "also, be brief"},
            ],
        },
    ]


def test_empty_and_whitespace_text_is_never_sent(sonnet: ModelEntry) -> None:
    body = encode(
        sonnet,
        [user(TextPart("one")), assistant(TextPart(""), TextPart(" \n")), user(TextPart(""), TextPart("two"))],
    )
    # The assistant turn vanished, so the two user turns merged.
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}
    ]
    assert b'"text":""' not in orjson.dumps(body)


def test_kimi_tool_ids_are_sanitized_identically_on_call_and_result(sonnet: ModelEntry) -> None:
    body = encode(
        sonnet,
        [
            user(TextPart("list files")),
            assistant(ToolCallPart(id="functions.Bash:0", name="Bash", arguments='{"command":"ls"}')),
            user(ToolResultPart(tool_call_id="functions.Bash:0", content=[TextPart("a.txt")], is_error=True)),
        ],
    )
    call = body["messages"][1]["content"][0]
    result = body["messages"][2]["content"][0]
    assert ANTHROPIC_ID.match(call["id"])
    assert call["id"] != "functions.Bash:0"
    assert result["tool_use_id"] == call["id"]
    assert restore_tool_id(call["id"]) == "functions.Bash:0"
    assert result["is_error"] is True


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("", {}),
        ("  ", {}),
        ("null", {}),
        ('{"a": [1, 2], "b": {"c": null}}', {"a": [1, 2], "b": {"c": None}}),
        ('{"city": "Par', {"_raw_arguments": '{"city": "Par'}),  # cut off by max_tokens
        ("[1, 2]", {"_raw_arguments": "[1, 2]"}),
    ],
)
def test_tool_arguments_become_an_input_object(sonnet: ModelEntry, arguments: str, expected: dict[str, Any]) -> None:
    body = encode(sonnet, [user(TextPart("go")), assistant(ToolCallPart(id="t1", name="f", arguments=arguments))])
    assert body["messages"][1]["content"][0]["input"] == expected


def test_foreign_and_unsigned_thinking_is_dropped(sonnet: ModelEntry) -> None:
    body = encode(
        sonnet,
        [
            user(TextPart("q")),
            assistant(
                ThinkingPart(text="deepseek reasoning", origin="deepseek"),
                ThinkingPart(text="gemini thought", signature="gem-sig", origin="google"),
                ThinkingPart(text="anthropic, unsigned", origin="anthropic"),
                TextPart("answer"),
            ),
            user(TextPart("next")),
        ],
    )
    assert body["messages"][1]["content"] == [{"type": "text", "text": "answer"}]


def test_anthropic_thinking_goes_back_byte_exact(sonnet: ModelEntry) -> None:
    recorded = wire("anthropic-clear-thinking.1.json")["content"][0]
    text = '925 ÷ 5 = 185 \u2028 "quoted" \\ tab\t'
    body_bytes = encode_request(
        ChatRequest(
            model=sonnet.id,
            origin="openai_chat",
            messages=[
                user(TextPart("q")),
                assistant(
                    ThinkingPart(text=text, signature=recorded["signature"], origin="anthropic"),
                    ThinkingPart(text="", redacted="EmwKAhgBEgy3va3pzix/LafPsn4a", origin="anthropic"),
                    TextPart("a"),
                ),
                user(ThinkingPart(text="ignored in a user turn", signature="x", origin="anthropic"), TextPart("more")),
            ],
        ),
        model=sonnet,
        deployment=DEPLOYMENT,
    ).body
    body = orjson.loads(body_bytes)
    assert body["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": text, "signature": recorded["signature"]},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
    ]
    assert orjson.dumps(recorded["signature"]) in body_bytes
    assert body["messages"][2]["content"] == [{"type": "text", "text": "more"}]


def test_unknown_parts_pass_only_from_the_anthropic_protocol(sonnet: ModelEntry) -> None:
    block = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}
    body = encode(
        sonnet,
        [
            user(TextPart("search")),
            assistant(
                UnknownPart(origin="anthropic_messages", data=block),
                UnknownPart(origin="openai_responses", data={"type": "web_search_call"}),
                TextPart("found"),
            ),
        ],
    )
    assert body["messages"][1]["content"] == [block, {"type": "text", "text": "found"}]


def test_images_in_every_form(sonnet: ModelEntry) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"
    body = encode(
        sonnet,
        [
            user(
                ImagePart(media_type="image/webp", data="UklGRxyz"),
                ImagePart(data=png),
                ImagePart(url="data:image/gif;base64,R0lGODlhAQABAIAAAP"),
                ImagePart(url="https://example.com/cat.jpg", detail="high"),
                ImagePart(url="data:;base64," + png, details={"anthropic": {"cache_control": {"type": "ephemeral"}}}),
                TextPart("what are these?"),
            )
        ],
    )
    assert body["messages"][0]["content"][:5] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRxyz"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGODlhAQABAIAAAP"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": png},
            "cache_control": {"type": "ephemeral"},
        },
    ]


def test_bad_images_are_client_errors(sonnet: ModelEntry) -> None:
    with pytest.raises(InvalidRequest):
        encode(sonnet, [user(ImagePart())])
    with pytest.raises(InvalidRequest):
        encode(sonnet, [user(ImagePart(url="data:image/png,rawbytes"))])


def test_documents(sonnet: ModelEntry) -> None:
    body = encode(
        sonnet,
        [
            user(
                DocumentPart(media_type="application/pdf", data="JVBERi0x", filename="report.pdf"),
                DocumentPart(url="https://example.com/paper.pdf", title="Paper"),
                DocumentPart(text="plain notes"),
                DocumentPart(url="data:application/pdf;base64,JVBERi0y"),
                DocumentPart(media_type="text/plain", data="aGVsbG8gd29ybGQ="),
                ToolResultPart(tool_call_id="t", content=[DocumentPart(data="JVBERi0z")]),
            )
        ],
    )
    content = body["messages"][0]["content"]
    assert content == [
        {
            "type": "tool_result",
            "tool_use_id": "t",
            "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0z"}}
            ],
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
            "title": "report.pdf",
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}, "title": "Paper"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0y"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello world"}},
    ]


def test_unsupported_media_is_refused(sonnet: ModelEntry) -> None:
    with pytest.raises(NotImplementedForModel):
        encode(sonnet, [user(DocumentPart(media_type="application/msword", data="0M8R4KGx"))])
    with pytest.raises(NotImplementedForModel) as caught:
        encode(sonnet, [user(AudioPart(data="UklGR", format="wav"))])
    assert caught.value.status == 400 and caught.value.code == "api_not_implemented"


def test_tool_result_with_image_and_no_text(sonnet: ModelEntry) -> None:
    body = encode(
        sonnet,
        [
            user(
                ToolResultPart(
                    tool_call_id="t", content=[TextPart(""), ImagePart(media_type="image/png", data="iVBOR")]
                )
            )
        ],
    )
    assert body["messages"][0]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "t",
            "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}],
        }
    ]
    empty = encode(sonnet, [user(ToolResultPart(tool_call_id="t"))])
    assert empty["messages"][0]["content"] == [{"type": "tool_result", "tool_use_id": "t"}]


def test_final_assistant_prefill_loses_trailing_whitespace(sonnet: ModelEntry) -> None:
    body = encode(sonnet, [user(TextPart("Write JSON")), assistant(TextPart("  {\n"))])
    assert body["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "  {"}]}
    # Earlier assistant turns are not prefills and keep their text.
    body = encode(sonnet, [user(TextPart("a")), assistant(TextPart("b \n")), user(TextPart("c"))])
    assert body["messages"][1]["content"] == [{"type": "text", "text": "b \n"}]
