"""Encode a canonical `ChatRequest` as a Chat Completions request for one provider `Profile`
(protocols.md §2.2, §6.2–6.9; advanced__reasoning.md, advanced__structured-outputs.md).

Lossy on purpose, where the protocol has no place for something: `is_error` on tool results becomes an
"Error: " prefix, images in tool results move to a user message after the tool messages, thinking from
another turn is dropped unless the profile echoes it, `top_k` is dropped unless the profile takes it, and
more than `max_stop` stop sequences are cut. No I/O here: `transport/` sends what this builds.
"""

from __future__ import annotations

from typing import Any

import orjson

from clearmaas.canonical import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    ReasoningConfig,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from clearmaas.canonical.tool_ids import restore_tool_id
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.errors import NotImplementedForModel
from clearmaas.providers.base import Deployment, UpstreamRequest
from clearmaas.providers.profiles import Profile

__all__ = ["encode_body", "encode_request", "upstream_headers", "upstream_url"]

Wire = dict[str, Any]  # one JSON object of the Chat Completions wire format

PROTOCOL = "openai_chat"
_JOIN = "\n"
# The portable effort ladder, lowest first (canonical `Effort`).
_LADDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# Reasoning modes where thinking can be switched off for one request.
_SWITCHABLE = ("toggle", "effort", "budget", "adaptive")


def encode_request(
    request: ChatRequest, *, model: ModelEntry, deployment: Deployment, profile: Profile
) -> UpstreamRequest:
    """The upstream HTTP request: `POST {base_url}/chat/completions` with the encoded body."""
    body = encode_body(request, model=model, profile=profile)
    stream = request.stream
    if not stream and profile.thinking_streams_only and body.get("enable_thinking") is True:
        # Thinking is only served over a stream here; the relay folds it for a non-streaming client.
        stream = True
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return UpstreamRequest(
        method="POST",
        url=upstream_url(deployment, profile),
        headers=upstream_headers(deployment),
        body=orjson.dumps(body),
        stream=stream,
    )


def upstream_url(deployment: Deployment, profile: Profile) -> str:
    # base_url is what the vendor's OpenAI SDK calls base_url, so `/v1` (if any) is already in it.
    return deployment.base_url.rstrip("/") + profile.path


def upstream_headers(deployment: Deployment) -> dict[str, str]:
    return {"authorization": f"Bearer {deployment.api_key}", "content-type": "application/json"}


def encode_body(request: ChatRequest, *, model: ModelEntry, profile: Profile) -> Wire:
    """The JSON body, field by field; raises `NotImplementedForModel` for what the provider cannot do."""
    same_protocol = request.origin == PROTOCOL
    tools = _tools(request, profile, same_protocol=same_protocol)
    body: Wire = {"model": model.upstream, "messages": _messages(request, model, profile, has_tools=bool(tools))}

    if request.max_tokens is not None:
        limit = request.max_tokens
        if model.max_output_tokens > 0:
            limit = min(limit, model.max_output_tokens)
        body[profile.max_tokens_field] = limit
    if "no_temperature" not in model.capabilities:  # reasoning models reject sampling parameters
        if request.temperature is not None:
            body["temperature"] = min(max(request.temperature, 0.0), 2.0)
        if request.top_p is not None:
            body["top_p"] = request.top_p
    if request.top_k is not None and profile.top_k:
        body["top_k"] = request.top_k
    if request.stop and "no_stop" not in model.capabilities:
        body["stop"] = request.stop[: profile.max_stop]
    if request.user is not None:
        body["user"] = request.user

    thinking_on = _reasoning(body, request.reasoning, model, profile)
    if tools:
        body["tools"] = tools
        _tool_choice(body, request, model, profile, thinking_on=thinking_on)
        if request.parallel_tool_calls is not None and profile.parallel_tool_calls:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    _response_format(body, request, profile)

    if request.stream:
        body["stream"] = True
        # Always: billing needs the usage chunk whether or not the client asked for it (protocols.md §0.4).
        body["stream_options"] = {"include_usage": True}
    if same_protocol:
        for key, value in request.extra.items():
            if key not in body and key not in profile.strip_fields:
                body[key] = value
    return body


# --- messages -------------------------------------------------------------------------------------------


def _messages(request: ChatRequest, model: ModelEntry, profile: Profile, *, has_tools: bool) -> list[Wire]:
    same_protocol = request.origin == PROTOCOL
    out: list[Wire] = []
    if request.system:
        out.append({"role": "system", "content": _text_content(request.system, profile)})
    instruction = _schema_instruction(request, profile)
    if instruction:
        out.append({"role": "system", "content": instruction})
    echo = profile.reasoning_echo != "drop" and model.reasoning is not None
    for message in request.messages:
        if message.role == "assistant":
            out.append(_assistant(message, profile, echo=echo, has_tools=has_tools, same_protocol=same_protocol))
        elif message.role == "system":
            texts = [p for p in message.parts if isinstance(p, TextPart)]
            if texts:
                out.append(_named({"role": "system", "content": _text_content(texts, profile)}, message))
        else:
            out.extend(_user(message, profile, same_protocol=same_protocol))
    return out


def _named(wire: Wire, message: Message) -> Wire:
    if message.name:
        wire["name"] = message.name
    return wire


def _text_content(parts: list[TextPart], profile: Profile) -> str | list[Wire]:
    if len(parts) == 1 or not profile.text_parts_as_list:
        return _JOIN.join(p.text for p in parts)
    return [{"type": "text", "text": p.text} for p in parts]


def _user(message: Message, profile: Profile, *, same_protocol: bool) -> list[Wire]:
    """Tool results first, one `tool` message each, then the rest (and any tool-result images) as one user turn."""
    out: list[Wire] = []
    carried: list[Part] = []
    own: list[Part] = []
    for part in message.parts:
        if isinstance(part, ToolResultPart):
            out.append(_tool_message(part))
            carried.extend(p for p in part.content if isinstance(p, ImagePart))
        else:
            own.append(part)
    content = _user_content([*carried, *own], profile, same_protocol=same_protocol)
    if content is not None:
        out.append(_named({"role": "user", "content": content}, message))
    return out


def _tool_message(part: ToolResultPart) -> Wire:
    # Chat Completions tool messages are text only (protocols.md §2.2); `is_error` has no field (§6.4).
    texts = [p.text for p in part.content if isinstance(p, TextPart)]
    texts += [p.text for p in part.content if isinstance(p, DocumentPart) and p.text]
    text = _JOIN.join(texts)
    if part.is_error:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": restore_tool_id(part.tool_call_id), "content": text}


def _user_content(parts: list[Part], profile: Profile, *, same_protocol: bool) -> str | list[Wire] | None:
    items: list[Wire] = []
    for part in parts:
        item = _content_item(part, same_protocol=same_protocol)
        if item is not None:
            items.append(item)
    if not items:
        return None
    if all(item["type"] == "text" for item in items):
        if len(items) == 1 or not profile.text_parts_as_list:
            return _JOIN.join(item["text"] for item in items)
    return items


def _content_item(part: Part, *, same_protocol: bool) -> Wire | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        url = part.url if part.data is None else f"data:{part.media_type or 'image/png'};base64,{part.data}"
        if url is None:
            return None
        image: Wire = {"url": url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, AudioPart):
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}}
    if isinstance(part, DocumentPart):
        return _document(part)
    if isinstance(part, UnknownPart) and part.origin == PROTOCOL and same_protocol:
        return dict(part.data)
    return None  # thinking in a user turn, or another protocol's block


def _document(part: DocumentPart) -> Wire:
    if part.text is not None:
        return {"type": "text", "text": part.text}
    file: Wire = {}
    file_id = (part.details or {}).get("openai", {}).get("file_id")
    if part.data is not None:
        file["file_data"] = f"data:{part.media_type or 'application/pdf'};base64,{part.data}"
    elif isinstance(file_id, str):
        file["file_id"] = file_id
    else:
        raise NotImplementedForModel(
            "Chat Completions takes documents inline (base64) only; this provider cannot fetch a document URL."
        )
    if part.filename:
        file["filename"] = part.filename
    return {"type": "file", "file": file}


def _assistant(message: Message, profile: Profile, *, echo: bool, has_tools: bool, same_protocol: bool) -> Wire:
    texts = [p.text for p in message.parts if isinstance(p, TextPart) and p.text]
    thinking = "".join(p.text for p in message.parts if isinstance(p, ThinkingPart) and p.text)
    calls: list[Wire] = []
    for part in message.parts:
        if isinstance(part, ToolCallPart):
            calls.append(
                {
                    "id": restore_tool_id(part.id),
                    "type": "function",
                    "function": {"name": part.name, "arguments": part.arguments or "{}"},
                }
            )
        elif isinstance(part, UnknownPart) and part.origin == PROTOCOL and same_protocol and "type" in part.data:
            calls.append(dict(part.data))  # e.g. a `custom` tool call of an OpenAI client
    wire: Wire = {"role": "assistant", "content": _JOIN.join(texts) if texts else (None if calls else "")}
    if calls:
        wire["tool_calls"] = calls
    if echo and profile.reasoning_echo == "reasoning_content" and (calls or has_tools):
        wire["reasoning_content"] = thinking or profile.echo_placeholder
    elif echo and profile.reasoning_echo == "reasoning_details" and thinking:
        wire["reasoning_details"] = [{"type": "reasoning.text", "text": thinking}]
    return _named(wire, message)


# --- tools ------------------------------------------------------------------------------------------------


def _tools(request: ChatRequest, profile: Profile, *, same_protocol: bool) -> list[Wire]:
    if request.tool_choice is not None and request.tool_choice.mode == "none" and not profile.tool_choice:
        return []  # the provider cannot be told "none", so it is not shown the tools
    tools: list[Wire] = []
    for tool in request.tools:
        function: Wire = {"name": tool.name, "parameters": tool.parameters}
        if tool.description:
            function["description"] = tool.description
        if tool.strict is not None and profile.tool_strict:
            function["strict"] = tool.strict
        tools.append({"type": "function", "function": function})
    if same_protocol:
        tools.extend(request.native_tools)  # built-in / custom tools only an OpenAI-protocol upstream knows
    return tools


def _tool_choice(body: Wire, request: ChatRequest, model: ModelEntry, profile: Profile, *, thinking_on: bool) -> None:
    choice = request.tool_choice
    if choice is None or not profile.tool_choice:
        return
    mode, name = choice.mode, choice.name
    if mode == "required" and not profile.tool_choice_required:
        # With exactly one tool, "use a tool" is "use this tool".
        only = [t.name for t in request.tools] if len(request.tools) == 1 and not request.native_tools else []
        mode, name = ("tool", only[0]) if only and profile.tool_choice_named else ("auto", None)
    if mode == "tool" and not profile.tool_choice_named:
        mode = "required" if profile.tool_choice_required else "auto"
    if mode in ("required", "tool") and profile.forced_tool_disables_thinking and thinking_on:
        if model.reasoning in _SWITCHABLE and profile.thinking_switch != "none":
            _switch_thinking(body, profile, on=False)
        else:
            mode = "auto"
    if mode == "tool":
        body["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        body["tool_choice"] = mode


# --- reasoning --------------------------------------------------------------------------------------------


def _reasoning(body: Wire, reasoning: ReasoningConfig | None, model: ModelEntry, profile: Profile) -> bool:
    """Set the profile's reasoning fields; return whether the model will think."""
    if profile.reasoning_split:
        body["reasoning_split"] = True
    mode = model.reasoning
    if mode is None:
        if "thinking_off" in model.capabilities:
            # A non-thinking alias of a model that thinks by default (deepseek-chat is deepseek-flash with
            # thinking off, api-docs.deepseek.com quick start): the switch must be sent on every request.
            _switch_thinking(body, profile, on=False)
        return False
    if reasoning is None or mode == "always":
        return True  # provider default (thinking models think); `always` ignores any effort
    allowed = _allowed_efforts(profile, model)
    if not reasoning.enabled or reasoning.effort == "none":
        if profile.thinking_switch != "none" and mode in _SWITCHABLE:
            _switch_thinking(body, profile, on=False)
            return False
        if profile.effort_field and "none" in allowed:
            body[profile.effort_field] = "none"
            return False
        return True
    _switch_thinking(body, profile, on=True)
    effort = reasoning.effort or _effort_from_budget(reasoning.budget_tokens)
    if effort is None and reasoning.adaptive:
        effort = "high"  # protocols.md §6.7: adaptive has no budget; map it to a high effort
    if mode != "toggle" and profile.effort_field and effort is not None and allowed:
        body[profile.effort_field] = _nearest(effort, allowed)
    if profile.budget_field and reasoning.budget_tokens:
        body[profile.budget_field] = reasoning.budget_tokens
    return True


def _switch_thinking(body: Wire, profile: Profile, *, on: bool) -> None:
    if profile.thinking_switch == "thinking_type":
        body["thinking"] = {"type": "enabled" if on else "disabled"}
    elif profile.thinking_switch == "enable_thinking":
        body["enable_thinking"] = on


def _allowed_efforts(profile: Profile, model: ModelEntry) -> tuple[str, ...]:
    extra = {name for name in ("none", "xhigh") if f"effort_{name}" in model.capabilities}
    return tuple(e for e in _LADDER if e in profile.effort_values or e in extra)


def _nearest(effort: str, allowed: tuple[str, ...]) -> str:
    """The lowest allowed effort at or above the one asked for, else the highest allowed (max -> high)."""
    rank = _LADDER.index(effort)
    for candidate in allowed:
        if candidate != "none" and _LADDER.index(candidate) >= rank:
            return candidate
    return allowed[-1]


def _effort_from_budget(budget: int | None) -> str | None:
    # The inverse of the docs' effort -> Claude budget map (low 1280, medium 2048, high 4096).
    if budget is None:
        return None
    if budget <= 1280:
        return "low"
    return "medium" if budget <= 2048 else "high"


# --- structured output ------------------------------------------------------------------------------------


def _response_format(body: Wire, request: ChatRequest, profile: Profile) -> None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return
    if fmt.type == "json_schema" and profile.json_schema == "native":
        spec: Wire = {"name": fmt.name or "response", "schema": fmt.schema or {"type": "object"}}
        if fmt.strict is not None:
            spec["strict"] = fmt.strict
        if fmt.description:
            spec["description"] = fmt.description
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
        return
    if not profile.json_object or (fmt.type == "json_schema" and profile.json_schema == "unsupported"):
        raise NotImplementedForModel(
            f"This model's provider does not support `response_format` {fmt.type}; ask for JSON in the prompt "
            "or use a tool with the schema instead."
        )
    body["response_format"] = {"type": "json_object"}


def _schema_instruction(request: ChatRequest, profile: Profile) -> str | None:
    """For a json_schema downgraded to json_object, the schema goes to the model as an instruction (which
    also meets DeepSeek's and Qwen's rule that the prompt must mention JSON)."""
    fmt = request.response_format
    if fmt is None or fmt.type != "json_schema" or profile.json_schema != "json_object" or not profile.json_object:
        return None
    schema = orjson.dumps(fmt.schema or {"type": "object"}).decode()
    return f"Reply with one JSON object that conforms to this JSON Schema:\n{schema}"
