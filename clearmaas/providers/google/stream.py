"""Gemini `streamGenerateContent?alt=sse` → canonical stream events, through the shared `StreamAssembler`.

Each SSE record is a whole `GenerateContentResponse` carrying the next slice of parts and the cumulative
usage so far; there is no `[DONE]`, EOF ends the stream, and `finishReason` rides on the last record
(protocols.md §4). So: text and thoughts become deltas of the open part; a functionCall arrives whole and
becomes a tool-call part with its arguments in one delta; a call streamed in fragments (Vertex's
`streamFunctionCallArguments`: `willContinue` and `partialArgs` by JSON path) is assembled and its
arguments sent in one delta when it completes. `StreamFinish` is sent at EOF, when it is known whether a
call was made (STOP + functionCall → `tool_use`); a stream that ends without a finish reason is an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from clearmaas.providers.google.call_ids import id_with_details
from clearmaas.canonical.assembly import StreamAssembler
from clearmaas.canonical.events import StreamError, StreamEvent, StreamFinish, StreamStart, UsageReport
from clearmaas.canonical.messages import ImagePart, TextPart, ThinkingPart, ToolCallPart, UnknownPart
from clearmaas.canonical.usage import Usage
from clearmaas.errors import UpstreamProtocolError
from clearmaas.providers.google.errors import error_from_envelope
from clearmaas.providers.google.response import (
    finish_error,
    map_usage,
    stop_reason,
    tool_call_details,
    tool_call_id,
    web_searches,
)
from clearmaas.providers.google.wire import Candidate, FunctionCall, PartialArg, UsageMetadata
from clearmaas.providers.google.wire import Part as WirePart
from clearmaas.transport.sse import SSEEvent

__all__ = ["decode_stream"]

_USAGE_KEYS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount")


async def decode_stream(events: AsyncIterator[SSEEvent]) -> AsyncIterator[StreamEvent]:
    decoder = _Decoder()
    async for event in events:
        if not event.data.strip():
            continue
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            yield StreamError(UpstreamProtocolError("The upstream provider sent a stream event that is not JSON."))
            return
        for out in decoder.feed(chunk):
            yield out
        if decoder.failed:
            return
    for out in decoder.close():
        yield out


class _PendingCall:
    """A functionCall arriving in fragments; its arguments are built up by JSON path."""

    __slots__ = ("args", "continuing", "key")

    def __init__(self, key: tuple[str, int], args: dict[str, Any]) -> None:
        self.key = key
        self.args = args
        self.continuing: set[str] = set()  # paths whose string value has more fragments to come

    def apply(self, fragment: PartialArg) -> None:
        path_text = fragment.get("jsonPath") or ""
        path = _parse_path(path_text)
        if not path:
            return
        value: Any
        if "stringValue" in fragment:
            value = fragment["stringValue"]
            current = _get(self.args, path)
            if path_text in self.continuing and isinstance(current, str):
                value = current + value
        elif "numberValue" in fragment:
            number = fragment["numberValue"]
            value = int(number) if isinstance(number, float) and number.is_integer() else number
        elif "boolValue" in fragment:
            value = fragment["boolValue"]
        elif "nullValue" in fragment:
            value = None
        else:
            return
        _set(self.args, path, value)
        if fragment.get("willContinue"):
            self.continuing.add(path_text)
        else:
            self.continuing.discard(path_text)


class _Decoder:
    __slots__ = (
        "asm", "blocked", "calls", "error", "failed", "finish", "metadata", "pending", "response_id", "searches",
        "started", "usage",
    )

    def __init__(self) -> None:
        self.asm = StreamAssembler()
        self.started = False
        self.failed = False
        self.response_id = ""
        self.calls = 0
        self.pending: _PendingCall | None = None
        self.finish: str | None = None
        self.error: UpstreamProtocolError | None = None
        self.blocked: dict[str, Any] | None = None
        self.searches = 0
        self.metadata: UsageMetadata | None = None
        self.usage: Usage | None = None

    def feed(self, chunk: object) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            self.failed = True
            return [StreamError(error_from_envelope(chunk))]
        events: list[StreamEvent] = []
        if not self.started:
            self.started = True
            self.response_id = chunk.get("responseId") or ""
            events.append(StreamStart(id=self.response_id, model=chunk.get("modelVersion") or ""))
        candidates = chunk.get("candidates") or []
        if candidates:
            candidate: Candidate = candidates[0]
            for part in candidate.get("content", {}).get("parts") or []:
                events.extend(self._part(part))
            self.searches = max(self.searches, web_searches(candidate))
            if candidate.get("finishReason"):
                self.finish = candidate["finishReason"]
                self.error = finish_error(candidate)
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self.blocked = feedback
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, dict) and any(key in metadata for key in _USAGE_KEYS):
            self.metadata = metadata  # type: ignore[assignment]
        events.extend(self._usage())
        return events

    def close(self) -> list[StreamEvent]:
        events = self._end_call() + self.asm.end_all() + self._usage()
        if self.error is not None:
            events.append(StreamError(self.error))
        elif self.finish is None and self.blocked is None:
            events.append(StreamError(UpstreamProtocolError("The upstream stream ended before it finished.")))
        else:
            has_calls = self.asm.tool_calls > 0
            events.append(StreamFinish(stop_reason(self.finish, has_calls, self.blocked)))
        return events

    def _usage(self) -> list[StreamEvent]:
        if self.metadata is None:
            return []
        usage = map_usage(self.metadata, web_searches=self.searches)
        if usage == self.usage:
            return []
        self.usage = usage
        return [UsageReport(usage)]

    def _part(self, part: WirePart) -> list[StreamEvent]:
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if call is not None:
            return self._function_call(call, signature)
        events = self._end_call()
        if part.get("thought"):
            if (part.get("text") or signature) and not self.asm.is_open("thinking"):
                # Opened here rather than by the assembler so the part names its origin: the signature
                # is only valid at Gemini.
                events += self.asm.start("thinking", ThinkingPart(text="", origin="google"))
            events += self.asm.thinking("thinking", part.get("text") or "")
            events += self.asm.signature("thinking", signature or "")
        elif "text" in part:
            events += self._text(part["text"], signature)
        elif "inlineData" in part and part["inlineData"].get("mimeType", "").startswith("image/"):
            blob = part["inlineData"]
            details = {"google": {"thoughtSignature": signature}} if signature else None
            image = ImagePart(media_type=blob["mimeType"], data=blob["data"], details=details)
            events += self.asm.whole("media", image)
        else:
            events += self.asm.whole("unknown", UnknownPart(origin="gemini", data=dict(part)))
        return events

    def _text(self, text: str, signature: str | None) -> list[StreamEvent]:
        if not signature:
            return self.asm.text("text", text)
        details = {"google": {"thoughtSignature": signature}}
        if text and not self.asm.is_open("text"):
            return self.asm.start("text", TextPart(text="", details=details)) + self.asm.text("text", text)
        # The signature closes a text part already under way (or comes alone on an empty part, as Gemini 3
        # ends its streams): it travels on its own empty part, as Gemini sent it.
        return self.asm.text("text", text) + self.asm.whole("signature", TextPart(text="", details=details))

    def _function_call(self, call: FunctionCall, signature: str | None) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self.pending is not None and call.get("name"):
            events += self._end_call()  # a named fragment opens the next call
        if self.pending is None:
            if not call.get("name") and not call.get("args") and not call.get("partialArgs"):
                return events  # a stray end marker
            events += self._start_call(call, signature)
            if not call.get("willContinue"):
                events += self._end_call()
            return events
        for fragment in call.get("partialArgs") or []:
            self.pending.apply(fragment)
        self.pending.args.update(call.get("args") or {})
        if not call.get("willContinue"):
            events += self._end_call()
        return events

    def _start_call(self, call: FunctionCall, signature: str | None) -> list[StreamEvent]:
        name = call.get("name") or ""
        key = ("call", self.calls)
        details = tool_call_details(call, signature)
        part = ToolCallPart(
            id=id_with_details(
                call.get("id") or tool_call_id(self.response_id, self.calls, name), (details or {}).get("google")
            ),
            name=name,
            details=details,
        )
        self.calls += 1
        self.pending = _PendingCall(key, dict(call.get("args") or {}))
        for fragment in call.get("partialArgs") or []:
            self.pending.apply(fragment)
        return self.asm.start(key, part)

    def _end_call(self) -> list[StreamEvent]:
        if self.pending is None:
            return []
        pending, self.pending = self.pending, None
        return self.asm.tool_arguments(pending.key, orjson.dumps(pending.args).decode()) + self.asm.end(pending.key)


def _parse_path(path: str) -> list[str | int] | None:
    """RFC 9535 paths as Gemini sends them: `$.a.b[0]`, `$['a b']`. None when it is anything else."""
    if not path.startswith("$"):
        return None
    out: list[str | int] = []
    i = 1
    while i < len(path):
        if path[i] == ".":
            j = i + 1
            while j < len(path) and path[j] not in ".[":
                j += 1
            out.append(path[i + 1 : j])
            i = j
        elif path.startswith(("['", '["'), i):
            end = path.find(path[i + 1] + "]", i + 2)
            if end < 0:
                return None
            out.append(path[i + 2 : end])
            i = end + 2
        elif path[i] == "[":
            end = path.find("]", i)
            if end < 0 or not path[i + 1 : end].isdigit():
                return None
            out.append(int(path[i + 1 : end]))
            i = end + 1
        else:
            return None
    return out or None


def _get(root: Any, path: list[str | int]) -> Any:
    node = root
    for key in path:
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict):
            node = node.get(key)
        else:
            return None
    return node


def _set(root: dict[str, Any], path: list[str | int], value: Any) -> None:
    node: Any = root
    for position, key in enumerate(path):
        last = position == len(path) - 1
        child: Any = value if last else ([] if isinstance(path[position + 1], int) else {})
        if isinstance(key, int) and isinstance(node, list):
            node.extend([None] * (key + 1 - len(node)))
            if last or not isinstance(node[key], (dict, list)):
                node[key] = child
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict):
            if last or not isinstance(node.get(key), (dict, list)):
                node[key] = child
            node = node[key]
        else:
            return
