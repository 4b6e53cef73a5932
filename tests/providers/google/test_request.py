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
from clearmaas.providers.google import encode_request
from clearmaas.providers.google.request import SKIP_SIGNATURE

from .recordings import DEPLOYMENT, gemini


def _body(request: ChatRequest, upstream: str = "gemini-2.5-flash") -> dict[str, Any]:
    wire = encode_request(request, model=gemini(upstream), deployment=DEPLOYMENT)
    body: dict[str, Any] = orjson.loads(wire.body)
    return body


def _chat(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(
        model="google/gemini", messages=list(messages), origin=fields.pop("origin", "openai_chat"), **fields
    )


def _user(text: str) -> Message:
    return Message(role="user", parts=[TextPart(text=text)])


def test_url_headers_and_stream_flag() -> None:
    plain = encode_request(_chat(_user("hi")), model=gemini("gemini-2.5-flash"), deployment=DEPLOYMENT)
    assert plain.method == "POST" and not plain.stream
    assert plain.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert plain.headers == {"content-type": "application/json", "x-goog-api-key": "AIza-test-key"}
    streamed = encode_request(
        _chat(_user("hi"), stream=True), model=gemini("models/gemini-3-pro-preview"), deployment=DEPLOYMENT
    )
    assert streamed.stream
    assert streamed.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    )


def test_minimal_body() -> None:
    assert _body(_chat(_user("hi"))) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_system_prompt_and_system_turns_become_the_system_instruction() -> None:
    request = _chat(
        _user("a"),
        Message(role="system", parts=[TextPart(text="Be brief.")]),
        _user("b"),
        system=[TextPart(text="You are terse."), TextPart(text="")],
    )
    body = _body(request)
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}, {"text": "Be brief."}]}
    # The two user turns around the system turn are merged: roles must alternate.
    assert body["contents"] == [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]


def test_roles_alternate_and_empty_turns_vanish() -> None:
    body = _body(
        _chat(
            _user("q1"),
            Message(role="assistant", parts=[TextPart(text="a1")]),
            Message(role="assistant", parts=[TextPart(text="")]),
            Message(role="assistant", parts=[TextPart(text="a2")]),
            _user("q2"),
        )
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "q1"}]},
        {"role": "model", "parts": [{"text": "a1"}, {"text": "a2"}]},
        {"role": "user", "parts": [{"text": "q2"}]},
    ]


def _tool_turns(call: ToolCallPart, *results: ToolResultPart) -> list[Message]:
    return [_user("weather?"), Message(role="assistant", parts=[call]), Message(role="user", parts=list(results))]


def test_function_call_and_response() -> None:
    call = ToolCallPart(
        id="call_1", name="weather", arguments='{"city":"Paris"}', details={"google": {"thoughtSignature": "sig-x"}}
    )
    result = ToolResultPart(tool_call_id="call_1", content=[TextPart(text="18C "), TextPart(text="sunny")])
    contents = _body(_chat(*_tool_turns(call, result)))["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-x"}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "weather", "response": {"result": "18C sunny"}}}],
    }


def test_response_name_comes_from_the_call_then_from_the_result() -> None:
    call = ToolCallPart(id="call_1", name="weather", arguments="")
    known = ToolResultPart(tool_call_id="call_1", content=[TextPart(text="ok")], name="ignored")
    orphan = ToolResultPart(tool_call_id="call_zz", content=[TextPart(text="boom")], is_error=True, name="lookup")
    contents = _body(_chat(*_tool_turns(call, known, orphan)))["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "weather", "args": {}}}]  # "" → {}
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"result": "ok"}}},
        {"functionResponse": {"name": "lookup", "response": {"error": "boom"}}},
    ]


def test_only_geminis_own_call_ids_go_back() -> None:
    ours = ToolCallPart(id="fc-7", name="f", arguments="{}", details={"google": {"id": "fc-7"}})
    generated = ToolCallPart(id="call_abc", name="g", arguments="{}")
    messages = [
        _user("go"),
        Message(role="assistant", parts=[ours, generated]),
        Message(
            role="user",
            parts=[
                ToolResultPart(tool_call_id="fc-7", content=[]),
                ToolResultPart(tool_call_id="call_abc", content=[]),
            ],
        ),
    ]
    contents = _body(_chat(*messages))["contents"]
    assert contents[1]["parts"] == [
        {"functionCall": {"name": "f", "args": {}, "id": "fc-7"}},
        {"functionCall": {"name": "g", "args": {}}},
    ]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "f", "response": {"result": ""}, "id": "fc-7"}},
        {"functionResponse": {"name": "g", "response": {"result": ""}}},
    ]


def test_gemini_3_gets_a_placeholder_signature_on_a_foreign_first_call() -> None:
    foreign = [
        ToolCallPart(id="toolu_1", name="f", arguments="{}"),
        ToolCallPart(id="toolu_2", name="g", arguments="{}"),
    ]
    messages = [_user("go"), Message(role="assistant", parts=list(foreign))]
    three = _body(_chat(*messages), "gemini-3-pro-preview")["contents"][1]["parts"]
    assert three[0]["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in three[1]  # only the first call of a step is validated
    two = _body(_chat(*messages), "gemini-2.5-pro")["contents"][1]["parts"]
    assert all("thoughtSignature" not in p for p in two)


def test_gemini_3_keeps_a_real_signature() -> None:
    call = ToolCallPart(id="c", name="f", arguments="{}", details={"google": {"thoughtSignature": "real"}})
    parts = _body(_chat(_user("go"), Message(role="assistant", parts=[call])), "gemini-3-flash-preview")["contents"][1][
        "parts"
    ]
    assert parts[0]["thoughtSignature"] == "real"


def test_malformed_arguments_are_kept_visible() -> None:
    call = ToolCallPart(id="c", name="f", arguments="{oops")
    listed = ToolCallPart(id="d", name="g", arguments="[1, 2]")
    parts = _body(_chat(_user("go"), Message(role="assistant", parts=[call, listed])))["contents"][1]["parts"]
    assert parts[0]["functionCall"]["args"] == {"arguments": "{oops"}
    assert parts[1]["functionCall"]["args"] == {"arguments": [1, 2]}


def test_thinking_only_from_gemini_goes_back() -> None:
    assistant = Message(
        role="assistant",
        parts=[
            ThinkingPart(text="mine", signature="g-sig", origin="google"),
            ThinkingPart(text="claude's", signature="a-sig", origin="anthropic"),
            ThinkingPart(text="deepseek's"),
            ThinkingPart(text="", redacted="opaque", origin="anthropic"),
            TextPart(text="answer", details={"google": {"thoughtSignature": "t-sig"}}),
            TextPart(text="", details={"google": {"thoughtSignature": "tail"}}),
        ],
    )
    parts = _body(_chat(_user("q"), assistant))["contents"][1]["parts"]
    assert parts == [
        {"text": "mine", "thought": True, "thoughtSignature": "g-sig"},
        {"text": "answer", "thoughtSignature": "t-sig"},
        {"text": "", "thoughtSignature": "tail"},
    ]


def test_media_parts() -> None:
    message = Message(
        role="user",
        parts=[
            ImagePart(media_type="image/png", data="iVBOR"),
            ImagePart(url="data:image/webp;base64,UklGR"),
            ImagePart(url="https://example.com/cat.jpg?size=2"),
            ImagePart(url="gs://bucket/file", media_type="image/png"),
            DocumentPart(media_type="application/pdf", data="JVBER"),
            DocumentPart(url="https://example.com/paper.pdf"),
            DocumentPart(text="plain notes"),
            AudioPart(data="SUQz", format="mp3"),
            UnknownPart(origin="gemini", data={"fileData": {"mimeType": "video/mp4", "fileUri": "files/abc"}}),
            UnknownPart(origin="anthropic_messages", data={"type": "container_upload"}),
        ],
    )
    assert _body(_chat(message))["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
        {"inlineData": {"mimeType": "image/webp", "data": "UklGR"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?size=2"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/file"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBER"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/paper.pdf"}},
        {"text": "plain notes"},
        {"inlineData": {"mimeType": "audio/mp3", "data": "SUQz"}},
        {"fileData": {"mimeType": "video/mp4", "fileUri": "files/abc"}},
    ]


def test_images_in_a_tool_result_follow_the_response() -> None:
    call = ToolCallPart(id="c", name="screenshot", arguments="{}")
    result = ToolResultPart(
        tool_call_id="c", content=[TextPart(text="done"), ImagePart(media_type="image/png", data="AA")]
    )
    parts = _body(_chat(*_tool_turns(call, result)))["contents"][2]["parts"]
    assert parts == [
        {"functionResponse": {"name": "screenshot", "response": {"result": "done"}}},
        {"inlineData": {"mimeType": "image/png", "data": "AA"}},
    ]


WEATHER = ToolDefinition(
    name="get_weather",
    description="Weather for a city.",
    parameters={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string", "format": "uri"}, "days": {"type": ["integer", "null"]}},
        "required": ["city", "ghost"],
        "additionalProperties": False,
    },
    strict=True,
)


def test_tools_are_cleaned_and_reserved_names_become_built_ins() -> None:
    request = _chat(
        _user("q"),
        tools=[
            WEATHER,
            ToolDefinition(name="googleSearch"),
            ToolDefinition(name="ping", parameters={"type": "object", "properties": {}}),
            ToolDefinition(name="codeExecution"),
            ToolDefinition(name="urlContext", description="ignored"),
        ],
    )
    assert _body(request)["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city.",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "nullable": True}},
                        "required": ["city"],
                    },
                },
                {"name": "ping"},  # no parameters: Gemini rejects an OBJECT without properties
            ]
        },
        {"googleSearch": {}},
        {"codeExecution": {}},
        {"urlContext": {}},
    ]


def test_native_tools_only_from_a_gemini_client() -> None:
    native: list[dict[str, Any]] = [{"googleMaps": {}}]
    assert _body(_chat(_user("q"), native_tools=native, origin="gemini"))["tools"] == native
    assert "tools" not in _body(_chat(_user("q"), native_tools=native))


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice("auto"), {"mode": "AUTO"}),
        (ToolChoice("required"), {"mode": "ANY"}),
        (ToolChoice("none"), {"mode": "NONE"}),
        (ToolChoice("tool", "get_weather"), {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
def test_tool_choice(choice: ToolChoice, expected: dict[str, Any]) -> None:
    body = _body(_chat(_user("q"), tools=[WEATHER], tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_tool_choice_needs_a_declared_function() -> None:
    assert "toolConfig" not in _body(_chat(_user("q"), tool_choice=ToolChoice("required")))
    builtin = _chat(
        _user("q"), tools=[WEATHER, ToolDefinition(name="googleSearch")], tool_choice=ToolChoice("tool", "googleSearch")
    )
    assert "toolConfig" not in _body(builtin)


def test_generation_config() -> None:
    request = _chat(_user("q"), temperature=0.2, top_p=0.9, top_k=40, max_tokens=512, stop=["END", "STOP"])
    assert _body(request)["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 512,
        "stopSequences": ["END", "STOP"],
    }


def test_json_modes() -> None:
    plain = _body(_chat(_user("q"), response_format=ResponseFormat(type="json_object")))
    assert plain["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    typed = _body(
        _chat(_user("q"), response_format=ResponseFormat(type="json_schema", schema=schema, name="person", strict=True))
    )
    assert typed["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "propertyOrdering": ["name", "age"],
        },
    }
    assert "generationConfig" not in _body(_chat(_user("q"), response_format=ResponseFormat(type="text")))


def test_reasoning_lands_in_generation_config() -> None:
    body = _body(_chat(_user("q"), reasoning=ReasoningConfig(effort="low")), "gemini-3-pro-preview")
    assert body["generationConfig"] == {"thinkingConfig": {"includeThoughts": True, "thinkingLevel": "LOW"}}


def test_extra_fields_merge_only_for_a_gemini_client() -> None:
    extra = {
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "generationConfig": {"responseModalities": ["TEXT"], "temperature": 1.0},
    }
    native = _body(_chat(_user("q"), temperature=0.3, max_tokens=9, extra=extra, origin="gemini"))
    assert native["safetySettings"] == extra["safetySettings"]
    assert native["generationConfig"] == {"temperature": 1.0, "maxOutputTokens": 9, "responseModalities": ["TEXT"]}
    foreign = _body(_chat(_user("q"), temperature=0.3, extra=extra))
    assert "safetySettings" not in foreign and foreign["generationConfig"] == {"temperature": 0.3}


def test_forward_headers_only_for_a_gemini_client() -> None:
    headers = {"x-goog-user-project": "p1"}
    native = encode_request(
        _chat(_user("q"), forward_headers=headers, origin="gemini"),
        model=gemini("gemini-2.5-flash"),
        deployment=DEPLOYMENT,
    )
    foreign = encode_request(
        _chat(_user("q"), forward_headers=headers), model=gemini("gemini-2.5-flash"), deployment=DEPLOYMENT
    )
    assert native.headers["x-goog-user-project"] == "p1" and "x-goog-user-project" not in foreign.headers


def test_client_credentials_are_never_forwarded() -> None:
    headers = {"Authorization": "Bearer sk-clearmaas-abc", "x-goog-api-key": "sk-clearmaas-abc"}
    wire = encode_request(
        _chat(_user("q"), forward_headers=headers, origin="gemini"),
        model=gemini("gemini-2.5-flash"),
        deployment=DEPLOYMENT,
    )
    assert wire.headers == {"content-type": "application/json", "x-goog-api-key": "AIza-test-key"}
