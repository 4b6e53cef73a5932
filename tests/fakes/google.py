"""The Gemini dialect of the fake upstream: `POST /google/v1beta/models/{model}:generateContent` (or `/v1/`) and
`:streamGenerateContent` (SSE with `?alt=sse`, a JSON array without it).

Mirrors the recordings in tests/fixtures/fake-upstream/google: CRLF-terminated `data:` frames with no `[DONE]`,
cumulative `usageMetadata` on every chunk, `finishReason: "STOP"` even after a function call, function calls with
no id and whole `args`. Thought parts (`thought: true`) appear only when the request sets
`generationConfig.thinkingConfig.includeThoughts`, as on the real API; `thoughtsTokenCount` and the
`thoughtSignature` appear whenever the model reasoned. Like the real (proto-JSON) API it reads request fields in
lowerCamelCase or snake_case; google-genai 3.x sends some nested ones snake_cased.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tests.fakes.errors import auth_error, error_reply
from tests.fakes.replies import Reply, RequestContext, fake_signature, json_reply, random_id, sse_data
from tests.fakes.scenarios import Markers, Plan, ToolSpec, all_strings, make_plan, text_pieces

__all__ = ["MODEL_PATH", "GeminiDialect", "thought_signature"]

# The real API serves both versions; google-genai 3.x defaults to v1, gateways commonly use v1beta.
MODEL_PATH = re.compile(
    r"^/google/v1(?:beta)?/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")
_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}
_GEMINI_SSE_TYPE = "text/event-stream"


def _get(obj: Any, camel: str) -> Any:
    """A request field under its lowerCamelCase or its snake_case name."""
    if not isinstance(obj, dict):
        return None
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)
    return obj.get(camel, obj.get(snake))


def thought_signature(text: str) -> str:
    return fake_signature(text, tag="fake-upstream/google:")


class GeminiDialect:
    """Gemini's generateContent API as the fake answers it."""

    def context(self, provider: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: dict[str, Any]) -> RequestContext:
        match = MODEL_PATH.match(path)
        if match is None:
            return RequestContext(provider, path, query, headers, body, "", False)
        stream = match["method"] == "streamGenerateContent"
        return RequestContext(provider, path, query, headers, body, match["model"], stream)

    def authenticate(self, provider: str, headers: dict[str, str], query: dict[str, str],
                     expected: str) -> Reply | None:
        key = headers.get("x-goog-api-key") or query.get("key")
        return None if key == expected else auth_error(provider, key=key)

    def validate(self, ctx: RequestContext) -> Reply | None:
        contents = ctx.body.get("contents")
        if not isinstance(contents, list) or not contents:
            return error_reply(ctx.provider, 400)
        return None

    def plan(self, ctx: RequestContext) -> Plan:
        system = _get(ctx.body, "systemInstruction")
        contents = [c for c in ctx.body["contents"] if isinstance(c, dict)]
        tools = [
            ToolSpec(str(d.get("name")), d.get("parameters") or _get(d, "parametersJsonSchema") or {})
            for t in ctx.body.get("tools") or [] if isinstance(t, dict)
            for d in _get(t, "functionDeclarations") or [] if isinstance(d, dict)
        ]
        prompt = [p["text"] for c in [system, *contents] if isinstance(c, dict)
                  for p in c.get("parts") or [] if isinstance(p, dict) and isinstance(p.get("text"), str)
                  and not p.get("thought")]
        limit = _get(_get(ctx.body, "generationConfig"), "maxOutputTokens")
        return make_plan(marker_texts=all_strings(system) + all_strings(contents[-1]), prompt_texts=prompt,
                         tools=tools, max_tokens=limit if isinstance(limit, int) else None)

    def render(self, ctx: RequestContext, plan: Plan) -> Reply:
        response_id = random_id(length=23)
        chunks = _chunks(ctx, plan, response_id) if ctx.stream else [_whole(ctx, plan, response_id)]
        if not ctx.stream:
            return json_reply(200, chunks[0])
        if ctx.query.get("alt") == "sse":
            return Reply(events=[sse_data(c, crlf=True) for c in chunks], content_type=_GEMINI_SSE_TYPE)
        # Without alt=sse the stream is one JSON array, written as the chunks arrive.
        parts = [b"[" + orjson.dumps(chunks[0])] + [b",\r\n" + orjson.dumps(c) for c in chunks[1:]]
        return Reply(events=[*parts, b"]"], content_type="application/json; charset=UTF-8")

    def fast_reply(self, provider: str, *, stream: bool, include_usage: bool) -> Reply:
        ctx = RequestContext(provider, "", {"alt": "sse"}, {}, {}, "fake-fast", stream)
        reply = self.render(ctx, Plan("ok", "", (), 10, False, Markers()))
        if reply.events is not None:
            reply.body, reply.events = b"".join(reply.events), None
        return reply


def _shows_thoughts(ctx: RequestContext) -> bool:
    thinking = _get(_get(ctx.body, "generationConfig"), "thinkingConfig")
    return _get(thinking, "includeThoughts") is True


def _whole(ctx: RequestContext, plan: Plan, response_id: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if plan.reasoning and _shows_thoughts(ctx):
        parts.append({"text": plan.reasoning, "thought": True})
    if plan.text:
        parts.append({"text": plan.text})
    parts.extend({"functionCall": {"name": c.name, "args": c.args}} for c in plan.tool_calls)
    if plan.reasoning:
        signed = next((p for p in parts if not p.get("thought")), None)
        if signed is None:
            parts.append(signed := {"text": ""})
        signed["thoughtSignature"] = thought_signature(plan.reasoning)
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "finishReason": _FINISH[plan.finish],
                                 "index": 0}
    if plan.tool_calls:
        candidate["finishMessage"] = "Model generated function call(s)."
    return _response(ctx, plan, [candidate], plan.answer_tokens, response_id)


def _chunks(ctx: RequestContext, plan: Plan, response_id: str) -> list[dict[str, Any]]:
    steps: list[tuple[list[dict[str, Any]], int]] = []  # (parts, candidate tokens so far)
    if plan.reasoning and _shows_thoughts(ctx):
        steps.extend(([{"text": p, "thought": True}], 0) for p in text_pieces(plan.reasoning))
    emitted = 0
    for piece in text_pieces(plan.text):
        emitted += len(piece.split())
        steps.append(([{"text": piece}], emitted))
    if plan.tool_calls:
        calls: list[dict[str, Any]] = [{"functionCall": {"name": c.name, "args": c.args}} for c in plan.tool_calls]
        if plan.reasoning:
            calls[0]["thoughtSignature"] = thought_signature(plan.reasoning)
        steps.append((calls, plan.answer_tokens))
    # After thinking or a call, the recorded streams close with an empty text part carrying the finish (and the
    # signature); a plain answer finishes on its last text chunk.
    if plan.reasoning or plan.tool_calls or not steps:
        closing: dict[str, Any] = {"text": ""}
        if plan.reasoning and not plan.tool_calls:
            closing["thoughtSignature"] = thought_signature(plan.reasoning)
        steps.append(([closing], plan.answer_tokens))
    chunks = []
    for n, (parts, candidates) in enumerate(steps):
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if n == len(steps) - 1:
            candidate["finishReason"] = _FINISH[plan.finish]
        candidate["index"] = 0
        chunks.append(_response(ctx, plan, [candidate], candidates, response_id))
    return chunks


def _response(ctx: RequestContext, plan: Plan, candidates: list[dict[str, Any]], candidate_tokens: int,
              response_id: str) -> dict[str, Any]:
    thoughts = plan.reasoning_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": plan.input_tokens, "candidatesTokenCount": candidate_tokens,
        "totalTokenCount": plan.input_tokens + candidate_tokens + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.input_tokens}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return {"candidates": candidates, "usageMetadata": usage, "modelVersion": ctx.model, "responseId": response_id}
