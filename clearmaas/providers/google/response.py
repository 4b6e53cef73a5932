"""Gemini `GenerateContentResponse` → canonical `ChatResponse`, plus the usage and finish-reason tables the
stream decoder shares.

Finish reasons (protocols.md §4, §6.1): STOP is `end_turn`, or `tool_use` when a functionCall was made
(Gemini has no tool-specific reason); MAX_TOKENS is `max_tokens`; every block or filter reason, OTHER and
LANGUAGE included, is `content_filter`; the reasons that mean the model broke the tool protocol
(MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, MISSING_THOUGHT_SIGNATURE,
MALFORMED_RESPONSE) are raised as `UpstreamProtocolError`: a silent `stop` would end an agent loop with
no answer, while an error lets a fallback chain try elsewhere. Anything unknown is `end_turn`.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

from clearmaas.providers.google.call_ids import id_with_details
from clearmaas.canonical.messages import ImagePart, Part, TextPart, ThinkingPart, ToolCallPart, UnknownPart
from clearmaas.canonical.response import ChatResponse, StopReason
from clearmaas.canonical.usage import Usage
from clearmaas.errors import UpstreamProtocolError, redact
from clearmaas.providers.google.errors import error_from_envelope
from clearmaas.providers.google.wire import Candidate, FunctionCall, GenerateContentResponse, UsageMetadata
from clearmaas.providers.google.wire import Part as WirePart

__all__ = [
    "decode_response",
    "finish_error",
    "map_usage",
    "stop_reason",
    "tool_call_details",
    "tool_call_id",
    "web_searches",
]

_FILTERED = frozenset(
    {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE", "MODEL_ARMOR", "OTHER",
        "LANGUAGE",
    }
)
_BROKEN = frozenset(
    {
        "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)


def decode_response(body: bytes) -> ChatResponse:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError("The upstream provider returned a body that is not JSON.") from exc
    if not isinstance(data, dict):
        raise UpstreamProtocolError("The upstream provider returned an unexpected body.")
    if isinstance(data.get("error"), dict):
        raise error_from_envelope(data)
    response: GenerateContentResponse = data  # type: ignore[assignment]
    response_id = response.get("responseId") or ""
    candidate: Candidate = (response.get("candidates") or [{}])[0]
    parts = _parts(candidate.get("content", {}).get("parts") or [], response_id)
    error = finish_error(candidate)
    if error is not None:
        raise error
    has_calls = any(isinstance(p, ToolCallPart) for p in parts)
    return ChatResponse(
        id=response_id,
        model=response.get("modelVersion") or "",
        parts=parts,
        stop_reason=stop_reason(candidate.get("finishReason"), has_calls, response.get("promptFeedback")),
        usage=map_usage(response.get("usageMetadata") or {}, web_searches=web_searches(candidate)),
    )


def _parts(parts: list[WirePart], response_id: str) -> list[Part]:
    out: list[Part] = []
    calls = 0
    for part in parts:
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if call is not None:
            details = tool_call_details(call, signature)
            out.append(
                ToolCallPart(
                    id=id_with_details(
                        call.get("id") or tool_call_id(response_id, calls, call.get("name") or ""),
                        (details or {}).get("google"),
                    ),
                    name=call.get("name") or "",
                    arguments=orjson.dumps(call.get("args") or {}).decode(),
                    details=details,
                )
            )
            calls += 1
        elif part.get("thought"):
            out.append(ThinkingPart(text=part.get("text") or "", signature=signature, origin="google"))
        elif "text" in part:
            if part["text"] or signature:  # an empty text part matters only as a signature carrier
                out.append(TextPart(text=part["text"], details=_signature_details(signature)))
        elif _is_image(part):
            blob = part["inlineData"]
            out.append(ImagePart(media_type=blob["mimeType"], data=blob["data"], details=_signature_details(signature)))
        else:
            # executableCode, codeExecutionResult, audio inlineData...: kept for the Gemini surface.
            out.append(UnknownPart(origin="gemini", data=dict(part)))
    return out


def _is_image(part: WirePart) -> bool:
    blob = part.get("inlineData")
    return blob is not None and str(blob.get("mimeType", "")).startswith("image/")


def _signature_details(signature: str | None) -> dict[str, dict[str, Any]] | None:
    return {"google": {"thoughtSignature": signature}} if signature else None


def tool_call_details(call: FunctionCall, signature: str | None) -> dict[str, dict[str, Any]] | None:
    """`details["google"]` of a call: its thoughtSignature (Gemini 3 wants it back) and Gemini's own id."""
    google: dict[str, Any] = {}
    if signature:
        google["thoughtSignature"] = signature
    if call.get("id"):
        google["id"] = call["id"]
    return {"google": google} if google else None


def tool_call_id(response_id: str, index: int, name: str) -> str:
    """An id for the `index`-th call of a response: Gemini's functionCall usually has none.

    Derived from the response id, so the same response always yields the same ids (streamed or not);
    without a response id there is nothing stable to derive from, so the id is random.
    """
    if not response_id:
        return f"call_{uuid.uuid4().hex[:24]}"
    digest = hashlib.sha256(f"{response_id}\x00{index}\x00{name}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def stop_reason(finish: str | None, has_calls: bool, feedback: dict[str, Any] | None = None) -> StopReason:
    if finish is None and feedback and feedback.get("blockReason"):
        return "content_filter"  # the prompt itself was blocked: no candidate at all
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if finish in _FILTERED:
        return "content_filter"
    return "tool_use" if has_calls else "end_turn"


def finish_error(candidate: Candidate) -> UpstreamProtocolError | None:
    """The error for a finish reason that means the model broke the tool protocol, else None."""
    finish = candidate.get("finishReason")
    if finish not in _BROKEN:
        return None
    detail = candidate.get("finishMessage")
    message = f"Gemini ended the response with {finish}" + (f": {redact(detail)}" if detail else ".")
    return UpstreamProtocolError(message)


def web_searches(candidate: Candidate) -> int:
    """Grounding queries the candidate ran: billed per query (operations__billing-and-usage.md)."""
    queries = (candidate.get("groundingMetadata") or {}).get("webSearchQueries")
    return len(queries) if isinstance(queries, list) else 0


def map_usage(metadata: UsageMetadata, *, web_searches: int = 0) -> Usage:
    """Gemini usage in the hub's disjoint buckets: `promptTokenCount` includes the cached tokens and
    `candidatesTokenCount` excludes the thoughts (protocols.md §6.8)."""
    prompt = int(metadata.get("promptTokenCount") or 0)
    cached = int(metadata.get("cachedContentTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    usage = Usage(
        input_tokens=max(prompt - cached, 0) + int(metadata.get("toolUsePromptTokenCount") or 0),
        cache_read_tokens=cached,
        output_tokens=int(metadata.get("candidatesTokenCount") or 0) + thoughts,
        reasoning_tokens=thoughts,
    )
    if web_searches:
        usage.server_tool_calls["web_search"] = web_searches
    return usage
