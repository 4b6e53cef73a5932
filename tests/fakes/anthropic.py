"""The Anthropic Messages dialect of the fake upstream: `POST /anthropic/v1/messages`, whole or streamed.

Mirrors the recorded streams (tests/fixtures/fake-upstream/anthropic): `event:` + `data:` frames, a `ping` after the
first block start, `input_tokens` in message_start and cumulative usage in message_delta, thinking blocks closed by a
`signature_delta`. Like the real API it insists on a key (`x-api-key`, or the Bearer token SDK 2.x sends),
`anthropic-version` and `max_tokens`, rejects empty text blocks, and rejects a thinking block whose signature is not
the one it issued (protocols.md §0.7, §0.8).
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.fakes.errors import auth_error
from tests.fakes.replies import (
    SSE_TYPE,
    Reply,
    RequestContext,
    fake_signature,
    json_reply,
    random_id,
    sse_event,
)
from tests.fakes.scenarios import Markers, Plan, ToolSpec, all_strings, argument_fragments, make_plan, text_pieces

__all__ = ["SIGNATURE_TAG", "AnthropicMessagesDialect", "thinking_signature"]

SIGNATURE_TAG = "fake-upstream/anthropic:"
_STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


def thinking_signature(thinking: str) -> str:
    """The signature the fake issues for (and expects back on) a thinking block with this text."""
    return fake_signature(thinking, tag=SIGNATURE_TAG)


class AnthropicMessagesDialect:
    """Anthropic's Messages API as the fake answers it."""

    def context(self, provider: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: dict[str, Any]) -> RequestContext:
        return RequestContext(provider, path, query, headers, body, str(body.get("model") or ""),
                              body.get("stream") is True)

    def authenticate(self, provider: str, headers: dict[str, str], query: dict[str, str],
                     expected: str) -> Reply | None:
        # `x-api-key` is the documented header; SDK 2.x sends the same key as a Bearer token instead.
        bearer = headers.get("authorization", "")
        key = headers.get("x-api-key") or (bearer.removeprefix("Bearer ").strip() if bearer else None)
        if key != expected:
            return auth_error(provider, key=key)
        if "anthropic-version" not in headers:
            return _invalid("anthropic-version: header is required")
        return None

    def validate(self, ctx: RequestContext) -> Reply | None:
        body = ctx.body
        if not ctx.model:
            return _invalid("model: Field required")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            return _invalid("max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _invalid("messages: Field required")
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            for j, block in enumerate(content if isinstance(content, list) else []):
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text" and not block.get("text"):
                    return _invalid("messages: text content blocks must be non-empty")
                if block.get("type") == "thinking" and block.get("signature") != thinking_signature(
                        str(block.get("thinking", ""))):
                    return _invalid(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
        return None

    def plan(self, ctx: RequestContext) -> Plan:
        system = ctx.body.get("system")
        messages = [m for m in ctx.body["messages"] if isinstance(m, dict)]
        tools = [
            ToolSpec(str(t.get("name")), t["input_schema"])
            for t in ctx.body.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("input_schema"), dict)
        ]
        prompt = _texts(system) + [t for m in messages for t in _texts(m.get("content"))]
        return make_plan(marker_texts=all_strings(system) + all_strings(messages[-1]), prompt_texts=prompt,
                         tools=tools, max_tokens=ctx.body["max_tokens"])

    def render(self, ctx: RequestContext, plan: Plan) -> Reply:
        headers = {"request-id": random_id("req_011"), "anthropic-organization-id": "fake-upstream-org"}
        blocks = _blocks(plan)
        if ctx.stream:
            return Reply(headers=headers, events=_stream(ctx, plan, blocks), content_type=SSE_TYPE)
        message = {
            "model": ctx.model, "id": random_id("msg_01", 22), "type": "message", "role": "assistant",
            "content": blocks, "stop_reason": _STOP_REASONS[plan.finish], "stop_sequence": None,
            "usage": {**_usage(plan, plan.output_tokens), "service_tier": "standard"},
        }
        return json_reply(200, message, headers)

    def fast_reply(self, provider: str, *, stream: bool, include_usage: bool) -> Reply:
        ctx = RequestContext(provider, "", {}, {}, {}, "fake-fast", stream)
        reply = self.render(ctx, Plan("ok", "", (), 10, False, Markers()))
        if reply.events is not None:
            reply.body, reply.events = b"".join(reply.events), None
        return reply


def _blocks(plan: Plan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if plan.reasoning:
        blocks.append({"type": "thinking", "thinking": plan.reasoning,
                       "signature": thinking_signature(plan.reasoning)})
    if plan.text:
        blocks.append({"type": "text", "text": plan.text})
    blocks.extend({"type": "tool_use", "id": random_id("toolu_01", 22), "name": c.name, "input": c.args}
                  for c in plan.tool_calls)
    return blocks


def _stream(ctx: RequestContext, plan: Plan, blocks: list[dict[str, Any]]) -> list[bytes]:
    start_usage = {**_usage(plan, 1), "service_tier": "standard"}
    start: dict[str, Any] = {"model": ctx.model, "id": random_id("msg_01", 22), "type": "message", "role": "assistant",
                             "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    frames = [sse_event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(blocks):
        frames.append(_frame("content_block_start", index=index, content_block=_opening(block)))
        if index == 0:
            frames.append(sse_event("ping", {"type": "ping"}))
        for delta in _deltas(block):
            frames.append(_frame("content_block_delta", index=index, delta=delta))
        frames.append(_frame("content_block_stop", index=index))
    usage = _usage(plan, plan.output_tokens)
    del usage["cache_creation"]
    frames.append(_frame("message_delta", delta={"stop_reason": _STOP_REASONS[plan.finish], "stop_sequence": None},
                         usage=usage))
    frames.append(_frame("message_stop"))
    return frames


def _opening(block: dict[str, Any]) -> dict[str, Any]:
    kind = block["type"]
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if kind == "text":
        return {"type": "text", "text": ""}
    return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}


def _deltas(block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "thinking":
        pieces = [{"type": "thinking_delta", "thinking": p} for p in text_pieces(block["thinking"])]
        return [*pieces, {"type": "signature_delta", "signature": block["signature"]}]
    if kind == "text":
        return [{"type": "text_delta", "text": p} for p in text_pieces(block["text"])]
    arguments = orjson.dumps(block["input"]).decode()
    # The first input_json_delta of a recorded tool_use is empty (anthropic-json-tool.1.chunks.txt).
    return [{"type": "input_json_delta", "partial_json": p} for p in ["", *argument_fragments(arguments)]]


def _frame(name: str, **fields: Any) -> bytes:
    return sse_event(name, {"type": name, **fields})


def _usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
    return {"input_tokens": plan.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens}


def _texts(content: Any) -> list[str]:
    """Prompt text of a system prompt or message content: text blocks and tool-result text."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_result":
            texts.extend(_texts(block.get("content")))
    return texts


def _invalid(message: str) -> Reply:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message},
            "request_id": random_id("req_011")}
    return json_reply(400, body)
