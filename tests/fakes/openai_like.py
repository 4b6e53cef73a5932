"""The Chat Completions dialect the fake speaks for OpenAI, DeepSeek, xAI Grok, Qwen, Kimi and MiniMax.

One renderer plus a `Profile` per provider holding its quirks as data: chunk and tool-call id shapes, where
streamed usage goes, how reasoning is carried, and the extra fields each provider adds. Sources for the quirks:
the recordings in tests/fixtures/fake-upstream (OpenAI, DeepSeek, xAI) and shared/reference/protocols.md §2, §5.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes.errors import auth_error, error_reply
from tests.fakes.replies import SSE_TYPE, Reply, RequestContext, json_reply, now, random_id, sse_data
from tests.fakes.scenarios import (
    Markers,
    Plan,
    ToolSpec,
    all_strings,
    argument_fragments,
    make_plan,
    text_pieces,
)

__all__ = ["PROFILES", "OpenAIChatDialect", "Profile"]

_HEX = "0123456789abcdef"
_DONE = b"data: [DONE]\n\n"
_NO_USAGE = object()


@dataclass(frozen=True, slots=True)
class Profile:
    """One OpenAI-compatible provider's quirks."""

    provider: str
    chunk_id: Callable[[], str]
    tool_id: Callable[[str, int], str]
    # "chunk": a last `choices: []` chunk, only with stream_options.include_usage (OpenAI);
    # "with_finish": always, in the finish chunk (DeepSeek); "in_choice": always, as choices[0].usage (Kimi).
    usage_style: Literal["chunk", "with_finish", "in_choice"]
    # "hidden": only reasoning_tokens (OpenAI); "field": reasoning_content; "think_tags": MiniMax <think> in content.
    reasoning_style: Literal["hidden", "field", "think_tags"]
    usage: Callable[[Plan], dict[str, Any]]
    top_extra: Mapping[str, Any] = field(default_factory=dict)
    delta_extra: Mapping[str, Any] = field(default_factory=dict)
    message_extra: Mapping[str, Any] = field(default_factory=dict)
    body_extra: Mapping[str, Any] = field(default_factory=dict)  # non-streamed body only
    finish_delta: Mapping[str, Any] = field(default_factory=dict)  # the delta of the finish chunk
    logprobs: bool = True  # choices carry `logprobs: null`
    finish_null: bool = True  # choices carry `finish_reason: null` before the end; xAI omits the key
    usage_null: bool = False  # every chunk carries `usage: null` (DeepSeek always, OpenAI with include_usage)
    role_chunk: bool = True  # a standalone first chunk carries the role; xAI puts it on the first real delta
    empty_content: str | None = ""  # message.content of a tool-call-only answer
    later_fragment_id: str | None = None  # Qwen repeats `"id": ""` on later argument fragments
    args_in_first_fragment: bool = False  # Qwen's first tool delta already carries argument text
    reasoning_null_content: bool = False  # DeepSeek pairs reasoning_content with `content: null` and vice versa


def _openai_usage(plan: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.input_tokens, "completion_tokens": plan.output_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _basic_usage(plan: Plan) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": plan.input_tokens, "completion_tokens": plan.output_tokens,
                             "total_tokens": plan.input_tokens + plan.output_tokens,
                             "prompt_tokens_details": {"cached_tokens": 0}}
    if plan.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": plan.reasoning_tokens}
    return usage


def _deepseek_usage(plan: Plan) -> dict[str, Any]:
    # DeepSeek reports its context cache separately (api-docs.deepseek.com/guides/kv_cache).
    return {**_basic_usage(plan), "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": plan.input_tokens}


def _grok_usage(plan: Plan) -> dict[str, Any]:
    # xAI's completion_tokens leaves reasoning out; total adds it back (recording xai-text: 12 + 1 + 290 = 303).
    return {
        "prompt_tokens": plan.input_tokens, "completion_tokens": plan.answer_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
        "prompt_tokens_details": {"text_tokens": plan.input_tokens, "audio_tokens": 0, "image_tokens": 0,
                                  "cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": plan.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        "num_sources_used": 0,
    }


def _kimi_usage(plan: Plan) -> dict[str, Any]:
    return {**_basic_usage(plan), "cached_tokens": 0}


def _minimax_usage(plan: Plan) -> dict[str, Any]:
    return {"total_tokens": plan.input_tokens + plan.output_tokens, "total_characters": 0, **_basic_usage(plan)}


PROFILES: dict[str, Profile] = {
    "openai": Profile(
        "openai", lambda: random_id("chatcmpl-", 29), lambda name, i: random_id("call_"), "chunk", "hidden",
        _openai_usage, top_extra={"service_tier": "default", "system_fingerprint": "fp_fakeupstrm"},
        message_extra={"refusal": None, "annotations": []}, empty_content=None),
    "deepseek": Profile(
        "deepseek", lambda: str(uuid.uuid4()), lambda name, i: f"call_{i:02d}_" + random_id(length=24),
        "with_finish", "field", _deepseek_usage, top_extra={"system_fingerprint": "fp_fakeupstrm_prod0820_fp8_kvcache"},
        finish_delta={"content": ""}, usage_null=True, reasoning_null_content=True),
    "grok": Profile(
        "grok", lambda: str(uuid.uuid4()), lambda name, i: random_id("call_", 8, "0123456789"), "chunk", "field",
        _grok_usage, top_extra={"system_fingerprint": "fp_fakeupstrm"}, message_extra={"refusal": None},
        logprobs=False, finish_null=False, role_chunk=False, empty_content=None),
    "qwen": Profile(
        "qwen", lambda: f"chatcmpl-{uuid.uuid4()}", lambda name, i: random_id("call_", 22, _HEX), "chunk", "field",
        _basic_usage, top_extra={"system_fingerprint": None}, finish_delta={"content": ""}, later_fragment_id="",
        args_in_first_fragment=True),
    # Kimi ids are `functions.<name>:<n>`, n counting every tool call in the conversation (protocols.md §0.6).
    "kimi": Profile(
        "kimi", lambda: random_id("chatcmpl-", 24, _HEX), lambda name, i: f"functions.{name}:{i}", "in_choice",
        "field", _kimi_usage, logprobs=False),
    "minimax": Profile(
        "minimax", lambda: uuid.uuid4().hex, lambda name, i: f"call_function_{random_id(length=12).lower()}_{i + 1}",
        "chunk", "think_tags", _minimax_usage,
        top_extra={"input_sensitive": False, "output_sensitive": False, "input_sensitive_type": 0,
                   "output_sensitive_type": 0, "output_sensitive_int": 0},
        delta_extra={"role": "assistant", "name": "MiniMax AI", "audio_content": ""},
        message_extra={"name": "MiniMax AI", "audio_content": ""},
        body_extra={"base_resp": {"status_code": 0, "status_msg": ""}}, role_chunk=False),
}


class OpenAIChatDialect:
    """`POST …/chat/completions` with Bearer auth, as each OpenAI-compatible provider answers it."""

    def context(self, provider: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: dict[str, Any]) -> RequestContext:
        return RequestContext(provider, path, query, headers, body, str(body.get("model") or ""),
                              body.get("stream") is True)

    def authenticate(self, provider: str, headers: dict[str, str], query: dict[str, str],
                     expected: str) -> Reply | None:
        auth = headers.get("authorization")
        if auth is None:
            return auth_error(provider, key=None)
        key = auth.removeprefix("Bearer ").strip()
        return None if key == expected else auth_error(provider, key=key)

    def validate(self, ctx: RequestContext) -> Reply | None:
        messages = ctx.body.get("messages")
        if not ctx.model or not isinstance(messages, list) or not messages:
            return error_reply(ctx.provider, 400, model=ctx.model)
        return None

    def plan(self, ctx: RequestContext) -> Plan:
        messages = [m for m in ctx.body.get("messages", []) if isinstance(m, dict)]
        system = [m for m in messages if m.get("role") in ("system", "developer")]
        tools = [
            ToolSpec(str(t["function"].get("name")), t["function"].get("parameters") or {})
            for t in ctx.body.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
        limit = ctx.body.get("max_completion_tokens") or ctx.body.get("max_tokens")
        return make_plan(
            marker_texts=all_strings([*system, messages[-1]]),
            prompt_texts=[t for m in messages for t in _content_texts(m.get("content"))],
            tools=tools, max_tokens=limit if isinstance(limit, int) else None)

    def render(self, ctx: RequestContext, plan: Plan) -> Reply:
        profile = PROFILES[ctx.provider]
        prior_calls = sum(len(m.get("tool_calls") or []) for m in ctx.body.get("messages", []) if isinstance(m, dict))
        ids = [profile.tool_id(c.name, prior_calls + i) for i, c in enumerate(plan.tool_calls)]
        headers = {"x-request-id": random_id("req_", 32, _HEX)}
        if ctx.stream:
            frames = _stream(profile, ctx, plan, ids)
            return Reply(headers=headers, events=frames, content_type=SSE_TYPE)
        return json_reply(200, _completion(profile, ctx, plan, ids), headers)

    def fast_reply(self, provider: str, *, stream: bool, include_usage: bool) -> Reply:
        body: dict[str, Any] = {"model": "fake-fast", "messages": [{"role": "user", "content": "ok"}]}
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        ctx = RequestContext(provider, "", {}, {}, body, "fake-fast", stream)
        plan = Plan("ok", "", (), 10, False, Markers())
        reply = self.render(ctx, plan)
        if reply.events is not None:
            reply.body, reply.events = b"".join(reply.events), None
        return reply


def _completion(profile: Profile, ctx: RequestContext, plan: Plan, ids: list[str]) -> dict[str, Any]:
    split = _split_reasoning(profile, ctx)
    content: str | None = plan.text or profile.empty_content
    message: dict[str, Any] = {"role": "assistant", "content": content, **profile.message_extra}
    if plan.reasoning and profile.reasoning_style == "field":
        message["reasoning_content"] = plan.reasoning
    elif plan.reasoning and split:
        message["reasoning_details"] = [_reasoning_detail(plan.reasoning)]
    elif plan.reasoning and profile.reasoning_style == "think_tags":
        message["content"] = f"<think>\n{plan.reasoning}\n</think>\n\n{plan.text}"
    if plan.tool_calls:
        message["tool_calls"] = [
            {"id": tid, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for tid, c in zip(ids, plan.tool_calls, strict=True)
        ]
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": plan.finish}
    if profile.logprobs:
        choice["logprobs"] = None
    return {"id": profile.chunk_id(), "object": "chat.completion", "created": now(), "model": ctx.model,
            "choices": [choice], "usage": profile.usage(plan), **profile.top_extra, **profile.body_extra}


def _stream(profile: Profile, ctx: RequestContext, plan: Plan, ids: list[str]) -> list[bytes]:
    cid, created = profile.chunk_id(), now()
    options = ctx.body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    usage_null = profile.usage_null or (profile.usage_style == "chunk" and include_usage)

    def chunk(delta: Mapping[str, Any], finish: str | None = None, usage: Any = _NO_USAGE,
              choice_usage: dict[str, Any] | None = None) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": {**profile.delta_extra, **delta}}
        if profile.logprobs:
            choice["logprobs"] = None
        if choice_usage is not None:
            choice["usage"] = choice_usage
        if profile.finish_null or finish is not None:
            choice["finish_reason"] = finish
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                               "model": ctx.model, **profile.top_extra, "choices": [choice]}
        if usage is not _NO_USAGE:
            obj["usage"] = usage
        elif usage_null:
            obj["usage"] = None
        return sse_data(obj)

    deltas = _reasoning_deltas(profile, plan, split=_split_reasoning(profile, ctx))
    for piece in text_pieces(plan.text):
        deltas.append({"content": piece, "reasoning_content": None} if profile.reasoning_null_content and
                      plan.reasoning else {"content": piece})
    for index, (tid, call) in enumerate(zip(ids, plan.tool_calls, strict=True)):
        fragments = argument_fragments(call.arguments)
        first = fragments[0] if profile.args_in_first_fragment else ""
        rest = fragments[1:] if profile.args_in_first_fragment else fragments
        deltas.append({"tool_calls": [{"index": index, "id": tid, "type": "function",
                                       "function": {"name": call.name, "arguments": first}}]})
        for fragment in rest:
            later: dict[str, Any] = {"index": index, "function": {"arguments": fragment}}
            if profile.later_fragment_id is not None:
                later = {"index": index, "id": profile.later_fragment_id, "type": "function", **later}
            deltas.append({"tool_calls": [later]})
    opening: dict[str, Any] = {"role": "assistant"}
    if profile.role_chunk:
        text_first = bool(plan.text) or (bool(plan.reasoning) and profile.reasoning_style == "think_tags")
        opening["content"] = "" if text_first else None
        if profile.reasoning_null_content and plan.reasoning:
            opening.update(content=None, reasoning_content="")
        if "refusal" in profile.message_extra:
            opening["refusal"] = None
        frames = [chunk(opening)]
    else:
        deltas = [{**opening, **deltas[0]}, *deltas[1:]] if deltas else [opening]
        frames = []
    frames.extend(chunk(d) for d in deltas)
    usage = profile.usage(plan)
    closing = dict(profile.finish_delta)
    if profile.reasoning_null_content and plan.reasoning:
        closing["reasoning_content"] = None
    if profile.usage_style == "with_finish":
        frames.append(chunk(closing, plan.finish, usage))
    elif profile.usage_style == "in_choice":
        frames.append(chunk(closing, plan.finish, choice_usage=usage))
    else:
        frames.append(chunk(closing, plan.finish))
        if include_usage:
            tail = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": ctx.model,
                    **profile.top_extra, "choices": [], "usage": usage}
            frames.append(sse_data(tail))
    frames.append(_DONE)
    return frames


def _reasoning_deltas(profile: Profile, plan: Plan, *, split: bool) -> list[dict[str, Any]]:
    if not plan.reasoning or profile.reasoning_style == "hidden":
        return []
    pieces = text_pieces(plan.reasoning)
    if split:
        return [{"reasoning_details": [_reasoning_detail(p)]} for p in pieces]
    if profile.reasoning_style == "think_tags":
        # MiniMax streams <think>…</think> as ordinary content mixed with the reasoning text (see the stream
        # example of its chatcompletion_v2 OpenAPI spec); a tag can straddle two chunks, so a client has to
        # buffer before stripping it. The fake always splits both tags.
        tagged = ["<thi", "nk>\n" + pieces[0], *pieces[1:], "\n</th", "ink>\n\n"]
        return [{"content": p} for p in tagged]
    if profile.reasoning_null_content:
        return [{"content": None, "reasoning_content": p} for p in pieces]
    return [{"reasoning_content": p} for p in pieces]


def _split_reasoning(profile: Profile, ctx: RequestContext) -> bool:
    # MiniMax moves reasoning out of content only on request (platform.minimax.io/docs/api-reference/text-openai-api).
    return profile.reasoning_style == "think_tags" and ctx.body.get("reasoning_split") is True


def _reasoning_detail(text: str) -> dict[str, Any]:
    return {"type": "reasoning.text", "id": "reasoning-text-1", "format": "MiniMax-response-v1", "index": 0,
            "text": text}


def _content_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                and isinstance(p.get("text"), str)]
    return []
