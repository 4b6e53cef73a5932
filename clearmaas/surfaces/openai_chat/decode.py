"""Decode a Chat Completions request body into a canonical `ChatRequest`.

Modelled fields are validated and mapped (protocols.md §2.2, §6.2–6.9); every other top-level field is kept
verbatim in `request.extra` for OpenAI-protocol upstreams. A bad field raises `InvalidRequest` naming it;
nothing else escapes. Messages are `messages.py`'s job; this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from clearmaas.canonical import ChatRequest, ReasoningConfig, ResponseFormat, ToolChoice, ToolDefinition
from clearmaas.canonical.request import Effort
from clearmaas.errors import InvalidRequest
from clearmaas.surfaces.openai_chat.messages import PROTOCOL, decode_messages

__all__ = ["decode_request"]

# ClearMaas routing extensions (routing__model-fallbacks.md): the lead consumes them before decoding.
_ROUTING_FIELDS = ("models", "route")
_EFFORTS: tuple[str, ...] = get_args(Effort)


def decode_request(body: dict[str, Any], headers: Mapping[str, str]) -> ChatRequest:
    """A `ChatRequest` (origin `openai_chat`) from a client's JSON body; `headers` carry nothing it needs."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    # Explicit nulls are how many clients spell "not given"; treat them so.
    fields = {key: value for key, value in body.items() if value is not None}
    for name in _ROUTING_FIELDS:
        fields.pop(name, None)

    model = fields.pop("model", None)
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("`model` must be a non-empty string.", param="model")
    system, messages = decode_messages(fields.pop("messages", None))
    for legacy in ("functions", "function_call"):
        if legacy in fields:
            raise InvalidRequest(f"`{legacy}`: the legacy field is not supported; use `tools` / `tool_choice`.", param=legacy)
    n = fields.pop("n", 1)
    if _integer(n, "n", minimum=1) != 1:
        raise InvalidRequest("`n` must be 1: one choice per request is supported.", param="n")

    tools, native_tools = _tools(fields.pop("tools", []))
    max_completion = fields.pop("max_completion_tokens", None)
    max_tokens = fields.pop("max_tokens", None)
    if max_tokens is not None:
        max_tokens = _integer(max_tokens, "max_tokens", minimum=1)
    if max_completion is not None:
        max_tokens = _integer(max_completion, "max_completion_tokens", minimum=1)
    stream = _boolean(fields.pop("stream", False), "stream")
    user = _string(fields.pop("user", None), "user")
    safety_identifier = _string(fields.pop("safety_identifier", None), "safety_identifier")

    return ChatRequest(
        model=model,
        messages=messages,
        origin=PROTOCOL,
        system=system,
        tools=tools,
        native_tools=native_tools,
        tool_choice=_tool_choice(fields.pop("tool_choice", None)),
        parallel_tool_calls=_optional_boolean(fields.pop("parallel_tool_calls", None), "parallel_tool_calls"),
        max_tokens=max_tokens,
        temperature=_number(fields.pop("temperature", None), "temperature", 0.0, 2.0),
        top_p=_number(fields.pop("top_p", None), "top_p", 0.0, 1.0),
        stop=_stop(fields.pop("stop", None)),
        stream=stream,
        include_usage=_include_usage(fields.pop("stream_options", None)),
        reasoning=_reasoning(fields.pop("reasoning_effort", None)),
        response_format=_response_format(fields.pop("response_format", None)),
        user=safety_identifier if safety_identifier is not None else user,
        extra=fields,
    )


def _integer(value: object, param: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequest(f"`{param}` must be an integer of at least {minimum}.", param=param)
    return value


def _number(value: object, param: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidRequest(f"`{param}` must be a number between {low:g} and {high:g}.", param=param)
    return float(value)


def _boolean(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"`{param}` must be a boolean.", param=param)
    return value


def _optional_boolean(value: object, param: str) -> bool | None:
    return None if value is None else _boolean(value, param)


def _string(value: object, param: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"`{param}` must be a string.", param=param)
    return value


def _tools(raw: object) -> tuple[list[ToolDefinition], list[dict[str, Any]]]:
    if not isinstance(raw, list):
        raise InvalidRequest("`tools` must be an array.", param="tools")
    tools: list[ToolDefinition] = []
    native: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"`{where}` must be an object.", param=where)
        kind = tool.get("type", "function" if "function" in tool else None)
        if kind == "function":
            tools.append(_function_tool(tool.get("function"), f"{where}.function"))
        elif isinstance(kind, str):
            native.append(tool)  # custom / built-in tools: only an OpenAI-protocol upstream understands them
        else:
            raise InvalidRequest(f"`{where}.type` must be a string.", param=f"{where}.type")
    return tools, native


def _function_tool(function: object, where: str) -> ToolDefinition:
    if not isinstance(function, dict):
        raise InvalidRequest(f"`{where}` must be an object.", param=where)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"`{where}.name` must be a non-empty string.", param=f"{where}.name")
    description = _string(function.get("description"), f"{where}.description")
    parameters = function.get("parameters")
    if parameters is None:
        # Omitted parameters mean a no-argument function; Anthropic needs an object schema (protocols.md §6.2).
        parameters = {"type": "object", "properties": {}}
    elif not isinstance(parameters, dict):
        raise InvalidRequest(f"`{where}.parameters` must be a JSON Schema object.", param=f"{where}.parameters")
    strict = _optional_boolean(function.get("strict"), f"{where}.strict")
    return ToolDefinition(name=name, description=description, parameters=parameters, strict=strict)


def _tool_choice(raw: object) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("none", "auto", "required"):
        return ToolChoice(mode=raw)
    if isinstance(raw, dict) and raw.get("type") in ("function", "custom"):
        kind = raw["type"]
        named = raw.get(kind)
        if not isinstance(named, dict) or not isinstance(named.get("name"), str) or not named["name"]:
            raise InvalidRequest(f"`tool_choice.{kind}.name` must be a non-empty string.", param=f"tool_choice.{kind}.name")
        return ToolChoice(mode="tool", name=named["name"])
    raise InvalidRequest(
        "`tool_choice` must be `none`, `auto`, `required` or {type: function, function: {name}}.", param="tool_choice"
    )


def _stop(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise InvalidRequest("`stop` must be a string or an array of strings.", param="stop")


def _include_usage(raw: object) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, dict):
        raise InvalidRequest("`stream_options` must be an object.", param="stream_options")
    return _optional_boolean(raw.get("include_usage"), "stream_options.include_usage") or False


def _reasoning(raw: object) -> ReasoningConfig | None:
    if raw is None:
        return None
    if raw not in _EFFORTS:
        raise InvalidRequest(f"`reasoning_effort` must be one of {', '.join(_EFFORTS)}.", param="reasoning_effort")
    return ReasoningConfig(effort=raw, enabled=raw != "none")  # type: ignore[arg-type]


def _response_format(raw: object) -> ResponseFormat | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("`response_format` must be an object.", param="response_format")
    kind = raw.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(type=kind)
    if kind != "json_schema":
        raise InvalidRequest(
            "`response_format.type` must be `text`, `json_object` or `json_schema`.", param="response_format.type"
        )
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest("`response_format.json_schema` must be an object.", param="response_format.json_schema")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequest(
            "`response_format.json_schema.schema` must be an object.", param="response_format.json_schema.schema"
        )
    return ResponseFormat(
        type="json_schema",
        schema=schema,
        name=_string(spec.get("name"), "response_format.json_schema.name"),
        strict=_optional_boolean(spec.get("strict"), "response_format.json_schema.strict"),
        description=_string(spec.get("description"), "response_format.json_schema.description"),
    )
