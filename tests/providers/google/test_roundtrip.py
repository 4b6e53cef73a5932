"""Canonical response → Gemini JSON (a test-only encoder) → decode, whole and streamed, gives the original back."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from clearmaas.providers.google.call_ids import id_with_details
from clearmaas.canonical import (
    ChatResponse,
    Part,
    StopReason,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
    accumulate_sync,
)
from clearmaas.providers.google import decode_response

from .recordings import decode_lines

_FINISH = {"end_turn": "STOP", "tool_use": "STOP", "max_tokens": "MAX_TOKENS", "content_filter": "SAFETY"}

signatures = st.none() | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/=", min_size=4, max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _details(signature: str | None, call_id: str | None = None) -> dict[str, dict[str, Any]] | None:
    google: dict[str, Any] = {}
    if signature:
        google["thoughtSignature"] = signature
    if call_id:
        google["id"] = call_id
    return {"google": google} if google else None


@st.composite
def text_parts(draw: st.DrawFn) -> TextPart:
    return TextPart(text=draw(st.text(min_size=1)), details=_details(draw(signatures)))


@st.composite
def thinking_parts(draw: st.DrawFn) -> ThinkingPart:
    return ThinkingPart(text=draw(st.text(min_size=1)), signature=draw(signatures), origin="google")


@st.composite
def tool_calls(draw: st.DrawFn) -> ToolCallPart:
    gemini_id = draw(st.none() | st.from_regex(r"[a-z0-9]{4,12}", fullmatch=True))
    args = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    return ToolCallPart(
        id=gemini_id or "generated",
        name=draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)),
        arguments=orjson.dumps(args).decode(),
        details=_details(draw(signatures), gemini_id),
    )


@st.composite
def responses(draw: st.DrawFn) -> ChatResponse:
    parts: list[Part] = draw(st.lists(text_parts() | thinking_parts() | tool_calls(), max_size=6))
    has_calls = any(isinstance(p, ToolCallPart) for p in parts)
    natural: StopReason = "tool_use" if has_calls else "end_turn"
    stop: StopReason = draw(st.sampled_from([natural, "max_tokens", "content_filter"]))
    output = draw(st.integers(0, 10**6))
    searches = draw(st.integers(0, 3))
    return ChatResponse(
        id=draw(st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)),
        model=draw(st.sampled_from(["gemini-2.5-flash", "gemini-3-pro-preview"])),
        parts=parts,
        stop_reason=stop,
        usage=Usage(
            input_tokens=draw(st.integers(0, 10**6)),
            cache_read_tokens=draw(st.integers(0, 10**6)),
            output_tokens=output,
            reasoning_tokens=draw(st.integers(0, output)),
            server_tool_calls={"web_search": searches} if searches else {},
        ),
    )


def _wire_part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        wire: dict[str, Any] = {"text": part.text}
        google = (part.details or {}).get("google", {})
    elif isinstance(part, ThinkingPart):
        wire = {"text": part.text, "thought": True}
        google = {"thoughtSignature": part.signature} if part.signature else {}
    else:
        assert isinstance(part, ToolCallPart)
        google = (part.details or {}).get("google", {})
        wire = {"functionCall": {"name": part.name, "args": orjson.loads(part.arguments)}}
        if google.get("id"):
            wire["functionCall"]["id"] = google["id"]
    if google.get("thoughtSignature"):
        wire["thoughtSignature"] = google["thoughtSignature"]
    return wire


def _metadata(usage: Usage) -> dict[str, int]:
    return {
        "promptTokenCount": usage.input_tokens + usage.cache_read_tokens,
        "cachedContentTokenCount": usage.cache_read_tokens,
        "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
        "thoughtsTokenCount": usage.reasoning_tokens,
        "totalTokenCount": usage.total_tokens,
    }


def to_gemini(response: ChatResponse) -> dict[str, Any]:
    """The test-only encoder: a canonical response as Gemini would have sent it."""
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [_wire_part(p) for p in response.parts]},
        "finishReason": _FINISH[response.stop_reason],
        "index": 0,
    }
    searches = response.usage.server_tool_calls.get("web_search", 0)
    if searches:
        candidate["groundingMetadata"] = {"webSearchQueries": [f"q{i}" for i in range(searches)]}
    return {
        "candidates": [candidate],
        "usageMetadata": _metadata(response.usage),
        "modelVersion": response.model,
        "responseId": response.id,
    }


def _with_original_ids(decoded: ChatResponse, original: ChatResponse) -> ChatResponse:
    """Generated ids are the decoder's to choose: check their form, then take the original's."""
    for got, want in zip(decoded.parts, original.parts):
        if isinstance(got, ToolCallPart) and isinstance(want, ToolCallPart):
            google = (want.details or {}).get("google", {})
            base = google.get("id") or got.id.split("_gts_")[0]
            if not google.get("id"):
                assert base.startswith("call_") and len(base) == 29
            # The signature travels in the id, so a client that keeps only the id gives it back.
            assert got.id == id_with_details(base, google)
            got.id = want.id
    return decoded


@settings(max_examples=200, deadline=None)
@given(responses())
def test_whole_response_round_trip(original: ChatResponse) -> None:
    decoded = decode_response(orjson.dumps(to_gemini(original)))
    assert _with_original_ids(decoded, original) == original


def _stream_lines(response: ChatResponse, cut: int) -> list[str]:
    """One record per fragment: text split in two at `cut`, its signature on the first fragment (a thought's
    on the last), each call whole; usage and finish ride on the last record, as Gemini sends them."""
    records: list[list[dict[str, Any]]] = []
    for part in response.parts:
        wire = _wire_part(part)
        if isinstance(part, ToolCallPart):
            records.append([wire])
            continue
        assert isinstance(part, (TextPart, ThinkingPart))
        at = min(max(cut, 1), len(part.text))
        head, tail = {**wire, "text": part.text[:at]}, {**wire, "text": part.text[at:]}
        if isinstance(part, ThinkingPart):
            head.pop("thoughtSignature", None)
        else:
            tail.pop("thoughtSignature", None)
        records.extend([[head], [tail]] if tail["text"] or "thoughtSignature" in tail else [[head]])
    last = to_gemini(response)
    lines = []
    for parts in records:
        lines.append(
            orjson.dumps(
                {
                    "candidates": [{"content": {"role": "model", "parts": parts}}],
                    "responseId": response.id,
                    "modelVersion": response.model,
                }
            ).decode()
        )
    last["candidates"][0]["content"]["parts"] = []
    lines.append(orjson.dumps(last).decode())
    return lines


def _no_merging_neighbours(response: ChatResponse) -> bool:
    # A stream has no part boundaries between two fragments of the same kind: consecutive text (or thought)
    # parts arrive as one. Only responses without such neighbours can come back part for part.
    kinds = [p.kind for p in response.parts]
    return all(not (a == b and a in ("text", "thinking")) for a, b in zip(kinds, kinds[1:]))


@settings(max_examples=150, deadline=None)
@given(responses().filter(_no_merging_neighbours), st.integers(1, 5))
def test_streamed_response_round_trip(original: ChatResponse, cut: int) -> None:
    events = asyncio.run(decode_lines(_stream_lines(original, cut)))
    decoded = accumulate_sync(events)
    assert _with_original_ids(decoded, original) == original
    # The same response decoded whole gives the same ids: both derive them from the response id.
    whole = decode_response(orjson.dumps(to_gemini(original)))
    assert [p.id for p in whole.parts if isinstance(p, ToolCallPart)] == [
        p.id for p in accumulate_sync(events).parts if isinstance(p, ToolCallPart)
    ]
