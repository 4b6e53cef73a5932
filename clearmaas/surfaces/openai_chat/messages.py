"""Decode the `messages` array of a Chat Completions request into the leading system prompt and canonical turns.

Every malformed field raises `InvalidRequest` whose `param` is its path (`messages[2].content[0].image_url`);
no KeyError or TypeError escapes. Top-level parameters are `decode.py`'s job.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from clearmaas.canonical import (
    AudioPart,
    Details,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from clearmaas.errors import InvalidRequest

__all__ = ["decode_messages"]

PROTOCOL = "openai_chat"
_ROLES = "system, developer, user, assistant or tool"


def decode_messages(raw: object) -> tuple[list[TextPart], list[Message]]:
    """The system prompt (leading system/developer messages) and the conversation after it."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("`messages` must be a non-empty array.", param="messages")
    system: list[TextPart] = []
    messages: list[Message] = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"`{where}` must be an object.", param=where)
        role = item.get("role")
        if role in ("system", "developer"):
            parts = _system_content(item.get("content"), f"{where}.content")
            if not messages:
                system.extend(parts)
            elif parts:
                # A later instruction keeps its place; providers that cannot express it move it (lossy).
                messages.append(Message(role="system", parts=list(parts), name=_name(item, where)))
        elif role == "user":
            _add_user(messages, _user_content(item.get("content"), f"{where}.content"), _name(item, where))
        elif role == "assistant":
            messages.append(_assistant(item, where))
        elif role == "tool":
            _add_tool_result(messages, _tool_result(item, where))
        elif role == "function":
            raise InvalidRequest(
                f"`{where}.role`: the legacy `function` role is not supported; send `tool` messages instead.",
                param=f"{where}.role",
            )
        else:
            raise InvalidRequest(f"`{where}.role` must be {_ROLES}.", param=f"{where}.role")
    return system, messages


def _is_tool_results(message: Message) -> bool:
    return message.role == "user" and bool(message.parts) and all(p.kind == "tool_result" for p in message.parts)


def _add_tool_result(messages: list[Message], result: ToolResultPart) -> None:
    # Consecutive `tool` messages answer one assistant turn: one user turn holds all results (protocols.md §6.4).
    if messages and _is_tool_results(messages[-1]):
        messages[-1].parts.append(result)
    else:
        messages.append(Message(role="user", parts=[result]))


def _add_user(messages: list[Message], parts: list[Part], name: str | None) -> None:
    # A user message right after tool results joins their turn, after the results (protocols.md §6.4), so
    # providers that need alternating roles see one user turn.
    if messages and name is None and _is_tool_results(messages[-1]):
        messages[-1].parts.extend(parts)
    else:
        messages.append(Message(role="user", parts=parts, name=name))


def _name(item: dict[str, Any], where: str) -> str | None:
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest(f"`{where}.name` must be a string.", param=f"{where}.name")
    return name


def _parts_list(content: object, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list) or not content:
        raise InvalidRequest(f"`{where}` must be a string or a non-empty array of content parts.", param=where)
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise InvalidRequest(f"`{where}[{j}]` must be an object.", param=f"{where}[{j}]")
        if not isinstance(part.get("type"), str):
            raise InvalidRequest(f"`{where}[{j}].type` must be a string.", param=f"{where}[{j}].type")
    return content


def _details(part: dict[str, Any]) -> Details | None:
    # OpenRouter-style `cache_control` on a content part is an Anthropic breakpoint; keep it for Anthropic.
    cache_control = part.get("cache_control")
    if isinstance(cache_control, dict):
        return {"anthropic": {"cache_control": cache_control}}
    return None


def _text(part: dict[str, Any], key: str, where: str) -> TextPart:
    text = part.get(key)
    if not isinstance(text, str):
        raise InvalidRequest(f"`{where}.{key}` must be a string.", param=f"{where}.{key}")
    return TextPart(text=text, details=_details(part))


def _system_content(content: object, where: str) -> list[TextPart]:
    if isinstance(content, str):
        return [TextPart(text=content)] if content else []
    parts: list[TextPart] = []
    for j, part in enumerate(_parts_list(content, where)):
        if part["type"] != "text":
            raise InvalidRequest(f"`{where}[{j}].type` must be `text` in a system message.", param=f"{where}[{j}].type")
        text = _text(part, "text", f"{where}[{j}]")
        if text.text:
            parts.append(text)
    return parts


def _user_content(content: object, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(text=content)]
    parts: list[Part] = []
    for j, part in enumerate(_parts_list(content, where)):
        at = f"{where}[{j}]"
        kind = part["type"]
        if kind == "text":
            parts.append(_text(part, "text", at))
        elif kind == "image_url":
            parts.append(_image(part, at))
        elif kind == "input_audio":
            parts.append(_audio(part, at))
        elif kind == "file":
            parts.append(_file(part, at))
        else:
            # A part type newer than this surface: OpenAI-protocol upstreams still get it verbatim.
            parts.append(UnknownPart(origin=PROTOCOL, data=part))
    return parts


def _data_url(url: str, where: str) -> tuple[str | None, str]:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL."""
    header, comma, data = url[5:].partition(",")
    params = header.split(";")
    if not comma or "base64" not in params[1:]:
        raise InvalidRequest(f"`{where}` must be a base64 data URL (`data:<type>;base64,<data>`).", param=where)
    return params[0] or None, data


def _image(part: dict[str, Any], where: str) -> ImagePart:
    image = part.get("image_url")
    if isinstance(image, str):  # some clients send the URL bare; accept it
        image = {"url": image}
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise InvalidRequest(f"`{where}.image_url` must be an object with a `url` string.", param=f"{where}.image_url")
    url: str = image["url"]
    detail = image.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise InvalidRequest(f"`{where}.image_url.detail` must be a string.", param=f"{where}.image_url.detail")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{where}.image_url.url")
        return ImagePart(media_type=media_type, data=data, detail=detail, details=_details(part))
    if url.startswith(("http://", "https://")):
        return ImagePart(url=url, detail=detail, details=_details(part))
    raise InvalidRequest(f"`{where}.image_url.url` must be an http(s) URL or a data URL.", param=f"{where}.image_url.url")


def _audio(part: dict[str, Any], where: str) -> AudioPart:
    audio = part.get("input_audio")
    if not isinstance(audio, dict):
        raise InvalidRequest(f"`{where}.input_audio` must be an object.", param=f"{where}.input_audio")
    data, fmt = audio.get("data"), audio.get("format")
    if not isinstance(data, str):
        raise InvalidRequest(f"`{where}.input_audio.data` must be a base64 string.", param=f"{where}.input_audio.data")
    if not isinstance(fmt, str):
        raise InvalidRequest(f"`{where}.input_audio.format` must be a string.", param=f"{where}.input_audio.format")
    return AudioPart(data=data, format=fmt, details=_details(part))


def _file(part: dict[str, Any], where: str) -> DocumentPart:
    file = part.get("file")
    if not isinstance(file, dict):
        raise InvalidRequest(f"`{where}.file` must be an object.", param=f"{where}.file")
    for key in ("file_data", "file_id", "filename"):
        if file.get(key) is not None and not isinstance(file[key], str):
            raise InvalidRequest(f"`{where}.file.{key}` must be a string.", param=f"{where}.file.{key}")
    filename: str | None = file.get("filename")
    file_data: str | None = file.get("file_data")
    file_id: str | None = file.get("file_id")
    details = _details(part)
    if file_data is not None:
        if file_data.startswith("data:"):
            media_type, data = _data_url(file_data, f"{where}.file.file_data")
        else:  # bare base64, as the SDK's docstring allows: guess the type from the name
            media_type = mimetypes.guess_type(filename)[0] if filename else None
            data = file_data
        return DocumentPart(media_type=media_type, data=data, filename=filename, details=details)
    if file_id is not None:
        # An uploaded file id is meaningful only at OpenAI itself.
        details = {**(details or {}), "openai": {"file_id": file_id}}
        return DocumentPart(filename=filename, details=details)
    raise InvalidRequest(f"`{where}.file` needs `file_data` or `file_id`.", param=f"{where}.file")


def _assistant(item: dict[str, Any], where: str) -> Message:
    parts: list[Part] = []
    reasoning = item.get("reasoning_content")
    if reasoning is not None and not isinstance(reasoning, str):
        raise InvalidRequest(f"`{where}.reasoning_content` must be a string.", param=f"{where}.reasoning_content")
    if reasoning:
        # Non-standard but sent back by DeepSeek/Qwen/Kimi clients; it has no signature (protocols.md §6.7).
        parts.append(ThinkingPart(text=reasoning))
    content = item.get("content")
    if isinstance(content, str):
        if content:  # "" beside tool calls is common and means nothing (protocols.md §0.7)
            parts.append(TextPart(text=content))
    elif content is not None:
        for j, part in enumerate(_parts_list(content, f"{where}.content")):
            at = f"{where}.content[{j}]"
            if part["type"] not in ("text", "refusal"):
                raise InvalidRequest(f"`{at}.type` must be `text` or `refusal` in an assistant message.", param=f"{at}.type")
            text = _text(part, part["type"], at)
            if text.text:
                parts.append(text)
    refusal = item.get("refusal")
    if isinstance(refusal, str) and refusal and not any(p.kind == "text" for p in parts):
        parts.append(TextPart(text=refusal))
    parts.extend(_tool_calls(item.get("tool_calls"), f"{where}.tool_calls"))
    if item.get("function_call") is not None:
        raise InvalidRequest(
            f"`{where}.function_call`: the legacy field is not supported; use `tool_calls`.",
            param=f"{where}.function_call",
        )
    return Message(role="assistant", parts=parts, name=_name(item, where))


def _tool_calls(raw: object, where: str) -> list[Part]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(f"`{where}` must be an array.", param=where)
    calls: list[Part] = []
    for k, call in enumerate(raw):
        at = f"{where}[{k}]"
        if not isinstance(call, dict):
            raise InvalidRequest(f"`{at}` must be an object.", param=at)
        kind = call.get("type", "function")
        if kind != "function":
            if not isinstance(kind, str):
                raise InvalidRequest(f"`{at}.type` must be a string.", param=f"{at}.type")
            calls.append(UnknownPart(origin=PROTOCOL, data=call))  # e.g. a `custom` tool call
            continue
        call_id, function = call.get("id"), call.get("function")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"`{at}.id` must be a non-empty string.", param=f"{at}.id")
        if not isinstance(function, dict):
            raise InvalidRequest(f"`{at}.function` must be an object.", param=f"{at}.function")
        name, arguments = function.get("name"), function.get("arguments")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"`{at}.function.name` must be a non-empty string.", param=f"{at}.function.name")
        if isinstance(arguments, dict):  # some clients send the parsed object; keep it as JSON text
            arguments = orjson.dumps(arguments).decode()
        elif arguments is None:
            arguments = ""
        elif not isinstance(arguments, str):
            raise InvalidRequest(f"`{at}.function.arguments` must be a JSON string.", param=f"{at}.function.arguments")
        calls.append(ToolCallPart(id=call_id, name=name, arguments=arguments))
    return calls


def _tool_result(item: dict[str, Any], where: str) -> ToolResultPart:
    call_id = item.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"`{where}.tool_call_id` must be a non-empty string.", param=f"{where}.tool_call_id")
    name = _name(item, where)
    content = item.get("content")
    if isinstance(content, str):
        return ToolResultPart(tool_call_id=call_id, content=[TextPart(text=content)] if content else [], name=name)
    result: list[TextPart | ImagePart | DocumentPart] = []
    for j, part in enumerate(_parts_list(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        if part["type"] == "text":
            result.append(_text(part, "text", at))
        elif part["type"] == "image_url":  # not in OpenAI's schema, but clients send it and other providers take it
            result.append(_image(part, at))
        else:
            raise InvalidRequest(f"`{at}.type` must be `text` in a tool message.", param=f"{at}.type")
    return ToolResultPart(tool_call_id=call_id, content=result, name=name)
