"""Decode a whole Chat Completions response into a canonical `ChatResponse`, and the pieces the stream
decoder shares with it: the usage mapping, the finish-reason map and the `<think>` tag splitter.

Provider differences come from the `Profile`; this module holds no provider facts of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import orjson

from clearmaas.canonical import ChatResponse, Part, StopReason, TextPart, ThinkingPart, ToolCallPart, Usage
from clearmaas.errors import UpstreamProtocolError
from clearmaas.providers.openai_chat.errors import envelope_error, payload_error
from clearmaas.providers.profiles import Profile

__all__ = ["ThinkTagSplitter", "decode_response", "map_usage", "reasoning_text", "stop_reason"]

# protocols.md §6.1; `function_call` is the deprecated spelling of `tool_calls`.
_FINISH: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}
_OPEN, _CLOSE = "<think>", "</think>"


def decode_response(body: bytes, *, profile: Profile) -> ChatResponse:
    """A `ChatResponse` from a non-streaming body; raises the provider's error if the body is one."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError("The upstream provider returned a body that is not JSON.") from exc
    if not isinstance(payload, dict):
        raise UpstreamProtocolError("The upstream provider returned a body that is not a JSON object.")
    error = envelope_error(payload, profile) or payload_error(payload)
    if error is not None:
        raise error
    choices = payload.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    parts = _message_parts(message if isinstance(message, dict) else {}, profile)
    has_tool_calls = any(p.kind == "tool_call" for p in parts)
    created = payload.get("created")
    return ChatResponse(
        id=str(payload.get("id") or ""),
        model=str(payload.get("model") or ""),
        parts=parts,
        stop_reason=stop_reason(choice.get("finish_reason"), profile, has_tool_calls=has_tool_calls),
        usage=map_usage(payload.get("usage"), profile),
        created=created if isinstance(created, int) and not isinstance(created, bool) else 0,
    )


def _message_parts(message: dict[str, Any], profile: Profile) -> list[Part]:
    thinking = reasoning_text(message, profile)
    text = _content_text(message.get("content"))
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]
    texts: list[str] = []
    if profile.think_tags and text:
        splitter = ThinkTagSplitter()
        for kind, piece in (*splitter.feed(text), *splitter.flush()):
            if kind == "thinking":
                thinking += piece
            else:
                texts.append(piece)
        text = "".join(texts)
    parts: list[Part] = []
    if thinking:
        parts.append(ThinkingPart(text=thinking, origin=profile.name))
    if text:
        parts.append(TextPart(text=text))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, (dict, list)):  # some servers return the parsed object
            arguments = orjson.dumps(arguments).decode()
        parts.append(
            ToolCallPart(
                id=str(call.get("id") or ""),  # kept exactly: Kimi needs `functions.get_weather:0` back
                name=str(function.get("name") or ""),
                arguments=arguments if isinstance(arguments, str) else "",
            )
        )
    return parts


def reasoning_text(message: dict[str, Any], profile: Profile) -> str:
    """Reasoning text of a message or delta: the profile's reasoning field, else MiniMax `reasoning_details`."""
    for field in profile.reasoning_fields:
        value = message.get(field)
        if isinstance(value, str) and value:
            return value
    details = message.get("reasoning_details")
    if isinstance(details, list):
        return "".join(
            item["text"] for item in details if isinstance(item, dict) and isinstance(item.get("text"), str)
        )
    return ""


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def stop_reason(finish: object, profile: Profile, *, has_tool_calls: bool) -> StopReason:
    """The canonical stop reason; any tool call makes it `tool_use` (some providers say `stop`)."""
    if has_tool_calls:
        return "tool_use"
    if not isinstance(finish, str):
        return "end_turn"
    return profile.finish_overrides.get(finish) or _FINISH.get(finish, "end_turn")


def map_usage(usage: object, profile: Profile) -> Usage:
    """OpenAI usage -> disjoint canonical buckets (protocols.md §6.8): `prompt_tokens` includes the cache."""
    if not isinstance(usage, dict):
        return Usage()
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    reasoning = _int(_path(usage, "completion_tokens_details.reasoning_tokens"))
    cached = _first(usage, profile.cached_fields)
    written = _first(usage, profile.cache_write_fields)
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    output = completion + reasoning if profile.completion_excludes_reasoning else completion
    return Usage(
        input_tokens=prompt - cached - written,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
        reasoning_tokens=min(reasoning, output),
    )


def _first(usage: dict[str, Any], paths: tuple[str, ...]) -> int:
    for path in paths:
        value = _path(usage, path)
        if value is not None:
            return _int(value)
    return 0


def _path(data: dict[str, Any], path: str) -> object:
    value: object = data
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class ThinkTagSplitter:
    """Splits `content` text into thinking and text at `<think>`/`</think>`, across chunk boundaries.

    A tag cut between two chunks is held back until it is complete; whitespace right after `</think>` is
    dropped (MiniMax puts a blank line there), so streamed and whole answers split the same way.
    """

    __slots__ = ("_held", "_inside", "_after_close")

    def __init__(self) -> None:
        self._held = ""
        self._inside = False
        self._after_close = False

    def feed(self, text: str) -> list[tuple[Literal["thinking", "text"], str]]:
        return list(self._split(self._held + text, final=False))

    def flush(self) -> list[tuple[Literal["thinking", "text"], str]]:
        return list(self._split(self._held, final=True))

    def _split(self, text: str, *, final: bool) -> Iterator[tuple[Literal["thinking", "text"], str]]:
        self._held = ""
        while text:
            tag = _CLOSE if self._inside else _OPEN
            at = text.find(tag)
            if at >= 0:
                yield from self._emit(text[:at])
                text = text[at + len(tag) :]
                self._after_close = self._inside
                self._inside = not self._inside
                continue
            keep = 0 if final else _partial_tag(text, tag)
            yield from self._emit(text[: len(text) - keep])
            self._held = text[len(text) - keep :]
            return

    def _emit(self, piece: str) -> Iterator[tuple[Literal["thinking", "text"], str]]:
        if self._after_close and not self._inside:
            piece = piece.lstrip()
            if piece:
                self._after_close = False
        if piece:
            yield ("thinking" if self._inside else "text", piece)


def _partial_tag(text: str, tag: str) -> int:
    """Length of the longest end of `text` that could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
