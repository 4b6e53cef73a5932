"""Decode an Anthropic Messages request body into the hub's `ChatRequest`.

A field that is missing or of the wrong shape raises `InvalidRequest` naming it (`messages[1].content[0].type`);
no other exception escapes. What the hub does not model is kept, never rejected: unknown top-level fields go to
`ChatRequest.extra`, unknown block types become `UnknownPart`s, unknown keys of known blocks (`cache_control`,
`citations`, `caller`, ...) go to `details["anthropic"]`. No I/O, and no knowledge of any provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, NoReturn, TypeGuard, cast, get_args

import orjson

from clearmaas.canonical import (
    ChatRequest,
    Details,
    DocumentPart,
    ImagePart,
    Message,
    Part,
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
from clearmaas.canonical.request import Effort
from clearmaas.canonical.tool_ids import restore_tool_id
from clearmaas.errors import InvalidRequest
from clearmaas.surfaces.anthropic_messages.wire import MODELLED_FIELDS, PROTOCOL, untag_signature

__all__ = ["decode_request", "forward_headers"]

# Claude Code's gateway protocol asks for these to reach Anthropic unchanged
# (code.claude.com/docs/en/llm-gateway-protocol).
_FORWARDED_HEADERS = frozenset({"anthropic-beta", "anthropic-version"})
_EFFORTS = frozenset(get_args(Effort))
_TOOL_CHOICES: dict[str, Literal["auto", "required", "none", "tool"]] = {
    "auto": "auto",
    "any": "required",
    "none": "none",
    "tool": "tool",
}
_DETAILS_KEY = "anthropic"  # the provider kind that understands the extras we keep


def decode_request(body: dict[str, Any], headers: Mapping[str, str]) -> ChatRequest:
    """The hub's view of a `POST /v1/messages` body; raises `InvalidRequest` naming the bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        _fail("model", "field required, a non-empty string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        _fail("max_tokens", "field required")
    if not _is_int(max_tokens) or max_tokens < 0:
        _fail("max_tokens", "must be a non-negative integer")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list):
        _fail("messages", "field required, a list of messages")
    output_config = body.get("output_config")
    if output_config is not None and not isinstance(output_config, dict):
        _fail("output_config", "must be an object")
    tools, native_tools = _tools(body.get("tools"))
    tool_choice, parallel_tool_calls = _tool_choice(body.get("tool_choice"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        _fail("stream", "must be a boolean")
    return ChatRequest(
        model=model,
        messages=[_message(message, f"messages[{i}]") for i, message in enumerate(raw_messages)],
        origin=PROTOCOL,
        system=_system(body.get("system")),
        tools=tools,
        native_tools=native_tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        top_k=_integer(body, "top_k"),
        stop=_stop_sequences(body.get("stop_sequences")),
        stream=bool(stream),
        include_usage=True,  # Anthropic streams always carry usage
        reasoning=_reasoning(body.get("thinking"), output_config or {}),
        response_format=_response_format(output_config or {}),
        user=_user(body.get("metadata")),
        extra={key: value for key, value in body.items() if key not in MODELLED_FIELDS},
        forward_headers=forward_headers(headers),
    )


def forward_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The protocol headers a same-protocol upstream must see; repeated `anthropic-beta` headers are joined."""
    forwarded: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key not in _FORWARDED_HEADERS:
            continue
        if key in forwarded and key == "anthropic-beta":
            forwarded[key] = f"{forwarded[key]},{value}"
        else:
            forwarded.setdefault(key, value)
    return forwarded


def _message(raw: Any, param: str) -> Message:
    if not isinstance(raw, dict):
        _fail(param, "must be an object")
    role = raw.get("role")
    if role not in ("user", "assistant"):
        _fail(f"{param}.role", "must be 'user' or 'assistant'")
    if "content" not in raw:
        _fail(f"{param}.content", "field required")
    return Message(role=role, parts=_content(raw["content"], f"{param}.content"))


def _content(content: Any, param: str) -> list[Part]:
    if isinstance(content, str):
        # Anthropic rejects empty text blocks (protocols.md §0.7), so an empty string carries nothing.
        return [TextPart(text=content)] if content else []
    if not isinstance(content, list):
        _fail(param, "must be a string or a list of content blocks")
    parts: list[Part] = []
    for j, block in enumerate(content):
        part = _block(block, f"{param}[{j}]")
        if part is not None:
            parts.append(part)
    return parts


def _block(block: Any, param: str) -> Part | None:
    """One content block; None for an empty text block, which is dropped."""
    if not isinstance(block, dict):
        _fail(param, "must be an object")
    kind = block.get("type")
    if not isinstance(kind, str):
        _fail(f"{param}.type", "field required, a string")
    if kind == "text":
        text = _string(block, "text", param)
        return TextPart(text=text, details=_details(block, "type", "text")) if text else None
    if kind == "image":
        return _image(block, param)
    if kind == "document":
        return _document(block, param)
    if kind == "thinking":
        text = _string(block, "thinking", param)
        signature, origin = untag_signature(_optional_string(block, "signature", param) or "")
        details = _details(block, "type", "thinking", "signature")
        return ThinkingPart(text=text, signature=signature or None, origin=origin, details=details)
    if kind == "redacted_thinking":
        data, origin = untag_signature(_string(block, "data", param))
        return ThinkingPart(text="", redacted=data, origin=origin, details=_details(block, "type", "data"))
    if kind == "tool_use":
        return _tool_use(block, param)
    if kind == "tool_result":
        return _tool_result(block, param)
    return UnknownPart(origin=PROTOCOL, data=block)


def _image(block: dict[str, Any], param: str) -> Part:
    source = _source(block, param)
    details = _details(block, "type", "source")
    if source.get("type") == "base64":
        media_type = _string(source, "media_type", f"{param}.source")
        return ImagePart(media_type=media_type, data=_string(source, "data", f"{param}.source"), details=details)
    if source.get("type") == "url":
        return ImagePart(url=_string(source, "url", f"{param}.source"), details=details)
    return UnknownPart(origin=PROTOCOL, data=block)  # Files API ids and newer sources: Anthropic only


def _document(block: dict[str, Any], param: str) -> Part:
    source = _source(block, param)
    title = _optional_string(block, "title", param)
    details = _details(block, "type", "source", "title")
    kind = source.get("type")
    if kind == "base64":
        media_type = _string(source, "media_type", f"{param}.source")
        data = _string(source, "data", f"{param}.source")
        return DocumentPart(media_type=media_type, data=data, title=title, details=details)
    if kind == "text":
        media_type = _optional_string(source, "media_type", f"{param}.source") or "text/plain"
        text = _string(source, "data", f"{param}.source")
        return DocumentPart(media_type=media_type, text=text, title=title, details=details)
    if kind == "url":
        return DocumentPart(url=_string(source, "url", f"{param}.source"), title=title, details=details)
    return UnknownPart(origin=PROTOCOL, data=block)  # `content` and `file` sources have no hub form


def _tool_use(block: dict[str, Any], param: str) -> ToolCallPart:
    tool_id = _string(block, "id", param)
    name = _string(block, "name", param)
    arguments = block.get("input")
    if not isinstance(arguments, dict):
        _fail(f"{param}.input", "field required, an object")
    return ToolCallPart(
        id=restore_tool_id(tool_id),
        name=name,
        arguments=_dump(arguments),
        details=_details(block, "type", "id", "name", "input"),
    )


def _tool_result(block: dict[str, Any], param: str) -> ToolResultPart:
    tool_use_id = _string(block, "tool_use_id", param)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        _fail(f"{param}.is_error", "must be a boolean")
    raw = block.get("content")
    parts: list[TextPart | ImagePart | DocumentPart] = []
    unmodelled = False
    if isinstance(raw, str):
        parts = [TextPart(text=raw)] if raw else []
    elif isinstance(raw, list):
        for k, item in enumerate(raw):
            part = _block(item, f"{param}.content[{k}]")
            if isinstance(part, TextPart | ImagePart | DocumentPart):
                parts.append(part)
            elif part is not None:
                unmodelled = True
    elif raw is not None:
        _fail(f"{param}.content", "must be a string or a list of content blocks")
    details = _details(block, "type", "tool_use_id", "content", "is_error")
    if unmodelled:
        # search_result, tool_reference, ...: other providers get the parts we model, an Anthropic
        # upstream gets the original content unchanged.
        details = details or {_DETAILS_KEY: {}}
        details[_DETAILS_KEY]["content"] = raw
    return ToolResultPart(
        tool_call_id=restore_tool_id(tool_use_id), content=parts, is_error=bool(is_error), details=details
    )


def _system(system: Any) -> list[TextPart]:
    if system is None:
        return []
    if isinstance(system, str):
        return [TextPart(text=system)] if system else []
    if not isinstance(system, list):
        _fail("system", "must be a string or a list of text blocks")
    parts: list[TextPart] = []
    for i, block in enumerate(system):
        param = f"system[{i}]"
        if not isinstance(block, dict):
            _fail(param, "must be an object")
        if block.get("type") != "text":
            _fail(f"{param}.type", "must be 'text'")
        text = _string(block, "text", param)
        if text:
            parts.append(TextPart(text=text, details=_details(block, "type", "text")))
    return parts


def _tools(tools: Any) -> tuple[list[ToolDefinition], list[dict[str, Any]]]:
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        _fail("tools", "must be a list")
    custom: list[ToolDefinition] = []
    native: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        if not isinstance(tool, dict):
            _fail(param, "must be an object")
        kind = _optional_string(tool, "type", param)
        if kind is not None and kind != "custom":
            native.append(tool)  # a server tool (web_search_20250305, bash_..., ...): kept verbatim
            continue
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            _fail(f"{param}.input_schema", "field required, a JSON Schema object")
        strict = tool.get("strict")
        if strict is not None and not isinstance(strict, bool):
            _fail(f"{param}.strict", "must be a boolean")
        custom.append(
            ToolDefinition(
                name=_string(tool, "name", param),
                description=_optional_string(tool, "description", param),
                parameters=schema,
                strict=strict,
                details=_details(tool, "type", "name", "description", "input_schema", "strict"),
            )
        )
    return custom, native


def _tool_choice(choice: Any) -> tuple[ToolChoice | None, bool | None]:
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        _fail("tool_choice", "must be an object")
    kind = choice.get("type")
    mode = _TOOL_CHOICES.get(kind) if isinstance(kind, str) else None
    if mode is None:
        _fail("tool_choice.type", "must be one of 'auto', 'any', 'tool', 'none'")
    name = _string(choice, "name", "tool_choice") if mode == "tool" else None
    disable_parallel = choice.get("disable_parallel_tool_use")
    if disable_parallel is not None and not isinstance(disable_parallel, bool):
        _fail("tool_choice.disable_parallel_tool_use", "must be a boolean")
    return ToolChoice(mode=mode, name=name), (False if disable_parallel else None)


def _reasoning(thinking: Any, output_config: dict[str, Any]) -> ReasoningConfig | None:
    config: ReasoningConfig | None = None
    if thinking is not None:
        if not isinstance(thinking, dict):
            _fail("thinking", "must be an object")
        kind = thinking.get("type")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not _is_int(budget) or budget < 0:
                _fail("thinking.budget_tokens", "field required, a non-negative integer")
            config = ReasoningConfig(budget_tokens=budget)
        elif kind == "disabled":
            config = ReasoningConfig(enabled=False)
        elif kind == "adaptive":
            config = ReasoningConfig(adaptive=True)
        else:
            _fail("thinking.type", "must be one of 'enabled', 'disabled', 'adaptive'")
        # display "omitted" still thinks (and signs) but returns no thinking text.
        display = _optional_string(thinking, "display", "thinking")
        config.include_thoughts = {"omitted": False, "summarized": True}.get(display or "")
    effort = output_config.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORTS:
            _fail("output_config.effort", "must be one of 'low', 'medium', 'high', 'xhigh', 'max'")
        config = config or ReasoningConfig()
        config.effort = cast(Effort, effort)
    return config


def _response_format(output_config: dict[str, Any]) -> ResponseFormat | None:
    # The older beta spelling, top-level `output_format`, is not modelled: it reaches Anthropic in `extra`.
    fmt = output_config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        _fail("output_config.format", "must be an object")
    if fmt.get("type") != "json_schema":
        _fail("output_config.format.type", "must be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        _fail("output_config.format.schema", "field required, a JSON Schema object")
    return ResponseFormat(type="json_schema", schema=schema)


def _user(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        _fail("metadata", "must be an object")
    return _optional_string(metadata, "user_id", "metadata")


def _stop_sequences(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        _fail("stop_sequences", "must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _fail(f"stop_sequences[{i}]", "must be a string")
    return list(value)


def _details(block: dict[str, Any], *modelled: str) -> Details | None:
    extras = {key: value for key, value in block.items() if key not in modelled}
    return {_DETAILS_KEY: extras} if extras else None


def _source(block: dict[str, Any], param: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        _fail(f"{param}.source", "field required, an object")
    return source


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits, which the stdlib encoder handles
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _string(obj: dict[str, Any], key: str, param: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        _fail(f"{param}.{key}", "field required, a string")
    return value


def _optional_string(obj: dict[str, Any], key: str, param: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        _fail(f"{param}.{key}", "must be a string")
    return value


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        _fail(key, "must be a number")
    return value


def _integer(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and not _is_int(value):
        _fail(key, "must be an integer")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(param: str, problem: str) -> NoReturn:
    raise InvalidRequest(f"{param}: {problem}.", param=param)
