"""Build the upstream request for Anthropic's Messages API from a canonical `ChatRequest`.

Owns the request-level fields (model, max_tokens, tools, tool_choice, sampling, thinking, extras) and the
URL and headers; conversation content is encoded by `content.py`. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from clearmaas.canonical import ChatRequest, ToolDefinition
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import InvalidRequest, NotImplementedForModel
from clearmaas.providers.anthropic.content import Block, Turn, encode_messages, encode_system
from clearmaas.providers.anthropic.reasoning import ThinkingPlan, plan_thinking
from clearmaas.providers.anthropic.response import ORIGIN, PROTOCOL
from clearmaas.providers.base import Deployment, UpstreamRequest

__all__ = [
    "ANTHROPIC_VERSION",
    "FORWARDED_HEADERS",
    "encode_body",
    "encode_request",
    "messages_url",
    "upstream_headers",
]

ANTHROPIC_VERSION = "2023-06-01"
# Client headers an Anthropic-protocol client's request carries to Anthropic unchanged (Claude Code's
# betas among them; code.claude.com/docs/en/llm-gateway-protocol).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
# Extras never override what the gateway itself decides.
_GATEWAY_FIELDS = frozenset({"model", "messages", "stream"})
_FALLBACK_MAX_TOKENS = 4096  # for a catalogue entry without an output limit


def encode_request(request: ChatRequest, *, model: ModelEntry, deployment: Deployment) -> UpstreamRequest:
    """The POST to `{base_url}/v1/messages` for `request`."""
    forwarded = request.forward_headers if request.origin == PROTOCOL else {}
    return UpstreamRequest(
        method="POST",
        url=messages_url(deployment),
        headers=upstream_headers(deployment, forwarded),
        body=orjson.dumps(encode_body(request, model=model)),
        stream=request.stream,
    )


def messages_url(deployment: Deployment) -> str:
    # The base URL is the bare host, as the Anthropic SDK's base_url is: the SDK appends /v1/messages.
    return deployment.base_url.rstrip("/") + "/v1/messages"


def upstream_headers(deployment: Deployment, forwarded: Mapping[str, str]) -> dict[str, str]:
    """Auth and protocol headers; of the client's headers only `FORWARDED_HEADERS` pass, so a client can
    never set the upstream key."""
    headers = {
        "x-api-key": deployment.api_key,
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
    }
    for name, value in forwarded.items():
        if name.lower() in FORWARDED_HEADERS:
            headers[name.lower()] = value
    return headers


def encode_body(request: ChatRequest, *, model: ModelEntry) -> dict[str, Any]:
    """The JSON body of a Messages request."""
    _check_response_format(request)
    messages = encode_messages(request.messages)
    # Anthropic requires max_tokens; 0 is legal there (a cache pre-warm), so only a missing value defaults.
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = model.max_output_tokens if model.max_output_tokens > 0 else _FALLBACK_MAX_TOKENS
    plan = plan_thinking(request.reasoning, model=model, max_tokens=max_tokens)
    if plan.on and not _history_allows_thinking(messages):
        plan = ThinkingPlan(thinking=None, effort=None, max_tokens=max_tokens)

    body: dict[str, Any] = {"model": model.upstream, "max_tokens": plan.max_tokens}
    system = encode_system(request)
    if system:
        body["system"] = system
    body["messages"] = messages
    tools = [_tool(tool) for tool in request.tools]
    if request.origin == PROTOCOL:
        tools.extend(request.native_tools)  # server tools only an Anthropic-protocol client can name
    if tools:
        body["tools"] = tools
        tool_choice = _tool_choice(request, thinking=plan.on)
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    if plan.thinking is not None:
        body["thinking"] = plan.thinking
    if plan.effort is not None:
        body["output_config"] = {"effort": plan.effort}
    body.update(_sampling(request, model=model, thinking=plan.on))
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.stream:
        body["stream"] = True
    if request.origin == PROTOCOL:
        _merge_extra(body, request.extra)
    return body


def _check_response_format(request: ChatRequest) -> None:
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return
    # An Anthropic client's own output_config.format is forwarded verbatim by the extras below.
    if request.origin == PROTOCOL and "output_config" in request.extra:
        return
    raise NotImplementedForModel("Anthropic has no response_format; use tool_use", param="response_format")


def _history_allows_thinking(messages: list[Turn]) -> bool:
    """With thinking on, the assistant turn answered by the last tool results must start with a thinking
    block (400 "a final assistant message must start with a thinking block"; protocols.md §6.7). History
    from another provider has none, so thinking is turned off for that request instead."""
    if len(messages) < 2:
        return True
    answered, results = messages[-2], messages[-1]
    if answered["role"] != "assistant" or not any(b.get("type") == "tool_result" for b in results["content"]):
        return True
    if not any(b.get("type") == "tool_use" for b in answered["content"]):
        return True
    return answered["content"][0].get("type") in ("thinking", "redacted_thinking")


def _tool(tool: ToolDefinition) -> Block:
    schema = dict(tool.parameters or {})
    if schema.get("type", "object") != "object":
        raise InvalidRequest(f"The parameters of tool {tool.name!r} must be a JSON Schema object.", param="tools")
    schema["type"] = "object"  # Anthropic requires it; clients often omit it
    block: Block = {"name": tool.name}
    if tool.description:
        block["description"] = tool.description
    block["input_schema"] = schema
    extra = (tool.details or {}).get(ORIGIN)
    if extra:
        for key, value in extra.items():
            block.setdefault(key, value)
    return block


def _tool_choice(request: ChatRequest, *, thinking: bool) -> Block | None:
    choice = request.tool_choice
    mode = choice.mode if choice is not None else None
    if thinking and mode in ("required", "tool"):
        # With thinking on only auto and none are legal (protocols.md §1.4); keeping the thinking the
        # client asked for wins over forcing a tool, which the model may still call on its own.
        mode = "auto"
    if mode == "none":
        return {"type": "none"}
    if mode == "required":
        block: Block = {"type": "any"}
    elif mode == "tool" and choice is not None and choice.name:
        block = {"type": "tool", "name": choice.name}
    elif mode is not None or request.parallel_tool_calls is False:
        block = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        block["disable_parallel_tool_use"] = True
    return block


def _sampling(request: ChatRequest, *, model: ModelEntry, thinking: bool) -> dict[str, Any]:
    temperature, top_p, top_k = request.temperature, request.top_p, request.top_k
    if "no_sampling" in model.capabilities:  # claude-opus-4.7 and later reject all three
        return {}
    if "no_temperature" in model.capabilities:
        temperature = None
    if thinking:
        # Thinking cannot be combined with temperature or top_k, and allows top_p only in 0.95-1
        # (protocols.md §1.4).
        temperature, top_k = None, None
        if top_p is not None:
            top_p = min(1.0, max(0.95, top_p))
    out: dict[str, Any] = {}
    if temperature is not None:
        out["temperature"] = min(1.0, max(0.0, temperature))  # OpenAI clients send 0-2
        # Current models reject both at once: "`temperature` and `top_p` cannot both be specified for this
        # model" (BerriAI/litellm#15097); temperature is the one OpenAI clients mean to set.
        top_p = None
    if top_p is not None:
        out["top_p"] = top_p
    if top_k is not None:
        out["top_k"] = top_k
    return out


def _merge_extra(body: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Fields an Anthropic client sent that the hub does not model, verbatim; `output_config` is merged
    key by key so the client's `format` joins the effort computed here."""
    for key, value in extra.items():
        if key in _GATEWAY_FIELDS:
            continue
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            body[key] = {**current, **value}
        else:
            body[key] = value
