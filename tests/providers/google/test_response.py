from __future__ import annotations

import orjson
import pytest

from clearmaas.providers.google.call_ids import id_with_details
from clearmaas.canonical import ChatResponse, ImagePart, TextPart, ThinkingPart, ToolCallPart, UnknownPart, Usage
from clearmaas.errors import UpstreamHTTPError, UpstreamProtocolError
from clearmaas.providers.google import decode_response, map_usage
from clearmaas.providers.google.response import tool_call_id

from .recordings import body

TEXT_SIGNATURE = "EtoFCtcFAb4+9vtfe4MXRxQjw48U1WKrR/7lYsgFkVi/bepqsSPjY0VU7HEzkeCBIfy1fu5t9aUZ4IZ65aWagqbBrV45fc97olcg"
TOOL_SIGNATURE = "EskgCsYgAb4+9vtF7/499YQS2bjZs3xcQI+iAl+ILn29nK1j0Kg6su7QsUUUk3nrAAfnS2w5WiVvlcCqu9fAebJ2cvfaEyBahEt5"


def test_text_recording() -> None:
    response = decode_response(body("google-text.json"))
    assert response == ChatResponse(
        id="Un6LacrVMcjUxs0PmJfWoQc",
        model="gemini-3-pro-preview",
        parts=[
            TextPart(
                text="There are **3** r's in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y.",
                details={"google": {"thoughtSignature": TEXT_SIGNATURE}},
            )
        ],
        stop_reason="end_turn",
        usage=Usage(input_tokens=9, output_tokens=28 + 244, reasoning_tokens=244),
    )


def test_reasoning_recording_counts_thoughts_as_output() -> None:
    response = decode_response(body("google-reasoning.json"))
    assert response.id == "YH6LaZT7ENmPxN8P-r2J8Aw"
    assert response.usage == Usage(input_tokens=9, output_tokens=29 + 282, reasoning_tokens=282)
    assert response.usage.total_tokens == 320  # Gemini's totalTokenCount
    [part] = response.parts
    assert isinstance(part, TextPart) and part.text.startswith('There are **3** "r"s')


def test_tool_call_recording_keeps_the_thought_signature() -> None:
    response = decode_response(body("google-tool-call.json"))
    [call] = response.parts
    assert isinstance(call, ToolCallPart)
    assert call == ToolCallPart(
        id=id_with_details(tool_call_id("m36LaZGyCLz1xs0PtNSB-QU", 0, "weather"), {"thoughtSignature": TOOL_SIGNATURE}),
        name="weather",
        arguments='{"location":"San Francisco"}',
        details={"google": {"thoughtSignature": TOOL_SIGNATURE}},
    )
    assert call.id.startswith("call_") and len(call.id.split("_gts_")[0]) == 29
    assert response.stop_reason == "tool_use"  # Gemini says STOP; the functionCall makes it tool_use
    assert response.usage == Usage(input_tokens=29, output_tokens=15 + 893, reasoning_tokens=893)


def test_generated_ids_are_deterministic_and_distinct() -> None:
    assert tool_call_id("r1", 0, "f") == tool_call_id("r1", 0, "f")
    assert len({tool_call_id("r1", 0, "f"), tool_call_id("r1", 1, "f"), tool_call_id("r2", 0, "f")}) == 3
    assert tool_call_id("", 0, "f") != tool_call_id("", 0, "f")  # nothing stable to derive from: random


def _response(parts: list[dict[str, object]], finish: str | None = "STOP", **extra: object) -> bytes:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return orjson.dumps(
        {"candidates": [candidate], "responseId": "resp-1", "modelVersion": "gemini-2.5-flash", **extra}
    )


def test_thought_parts_become_google_thinking() -> None:
    response = decode_response(
        _response([{"text": "Let me count.", "thought": True, "thoughtSignature": "sig-a"}, {"text": "Three."}])
    )
    assert response.parts == [
        ThinkingPart(text="Let me count.", signature="sig-a", origin="google"),
        TextPart(text="Three."),
    ]


def test_gemini_function_call_id_is_used_and_remembered() -> None:
    response = decode_response(
        _response([{"functionCall": {"id": "fc-9", "name": "f", "args": {}}}, {"functionCall": {"name": "g"}}])
    )
    first, second = response.parts
    assert first == ToolCallPart(id="fc-9", name="f", arguments="{}", details={"google": {"id": "fc-9"}})
    assert isinstance(second, ToolCallPart)
    assert second.id == tool_call_id("resp-1", 1, "g") and second.arguments == "{}" and second.details is None


def test_empty_text_is_dropped_unless_it_carries_a_signature() -> None:
    response = decode_response(_response([{"text": ""}, {"text": "", "thoughtSignature": "s"}]))
    assert response.parts == [TextPart(text="", details={"google": {"thoughtSignature": "s"}})]


def test_images_and_unmodelled_parts() -> None:
    code: dict[str, object] = {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
    response = decode_response(_response([{"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}, code]))
    assert response.parts == [ImagePart(media_type="image/png", data="iVBOR"), UnknownPart(origin="gemini", data=code)]


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("STOP", "end_turn"),
        ("MAX_TOKENS", "max_tokens"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "content_filter"),
        ("FINISH_REASON_UNSPECIFIED", "end_turn"),
        ("SOMETHING_NEW", "end_turn"),
    ],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    assert decode_response(_response([{"text": "x"}], finish)).stop_reason == expected


def test_max_tokens_wins_over_a_tool_call() -> None:
    response = decode_response(_response([{"functionCall": {"name": "f", "args": {"a": 1}}}], "MAX_TOKENS"))
    assert response.stop_reason == "max_tokens"


@pytest.mark.parametrize("finish", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
def test_broken_tool_protocol_is_an_error(finish: str) -> None:
    with pytest.raises(UpstreamProtocolError, match=finish) as caught:
        decode_response(_response([], finish, **{}))
    assert caught.value.retryable


def test_finish_message_is_part_of_the_error() -> None:
    raw = orjson.loads(_response([], "MALFORMED_FUNCTION_CALL"))
    raw["candidates"][0]["finishMessage"] = "Malformed function call: print(x)"
    with pytest.raises(UpstreamProtocolError, match="Malformed function call: print"):
        decode_response(orjson.dumps(raw))


def test_blocked_prompt_has_no_candidates() -> None:
    raw = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 7}}
    response = decode_response(orjson.dumps(raw))
    assert response.parts == [] and response.stop_reason == "content_filter"
    assert response.usage == Usage(input_tokens=7)


def test_error_envelope_in_a_200_body_raises() -> None:
    with pytest.raises(UpstreamHTTPError) as caught:
        decode_response(b'{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}')
    assert caught.value.status == 400 and caught.value.message == "bad"


def test_non_json_body_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        decode_response(b"<html>")


def test_usage_buckets_are_disjoint() -> None:
    usage = map_usage(
        {
            "promptTokenCount": 1000,
            "cachedContentTokenCount": 600,
            "toolUsePromptTokenCount": 50,
            "candidatesTokenCount": 30,
            "thoughtsTokenCount": 70,
            "totalTokenCount": 1150,
        },
        web_searches=2,
    )
    assert usage == Usage(
        input_tokens=450,
        cache_read_tokens=600,
        output_tokens=100,
        reasoning_tokens=70,
        server_tool_calls={"web_search": 2},
    )
    assert usage.total_tokens == 1150


def test_grounding_queries_are_counted_as_web_searches() -> None:
    raw = orjson.loads(_response([{"text": "It rained."}]))
    raw["candidates"][0]["groundingMetadata"] = {"webSearchQueries": ["weather paris", "paris rain"]}
    raw["usageMetadata"] = {"promptTokenCount": 5, "candidatesTokenCount": 3}
    assert decode_response(orjson.dumps(raw)).usage.server_tool_calls == {"web_search": 2}


def test_an_array_body_is_not_a_response() -> None:
    # What streamGenerateContent sends without alt=sse: partial chunks, never a whole answer.
    with pytest.raises(UpstreamProtocolError):
        decode_response(b'[{"candidates": []}]')
