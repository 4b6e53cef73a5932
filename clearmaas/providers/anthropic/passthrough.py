"""The same-format fast path: an Anthropic-protocol client's body goes upstream with only `model` changed
and the gateway's key set; the response and the stream come back untouched while usage is read off them.

Nothing here translates content: that is `request.py`, `response.py` and `stream.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from clearmaas.canonical import Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.anthropic.errors import error_from_event
from clearmaas.providers.anthropic.request import FORWARDED_HEADERS, messages_url, upstream_headers
from clearmaas.providers.anthropic.response import map_usage, merge_usage
from clearmaas.providers.base import Deployment, PassthroughStream, UpstreamRequest
from clearmaas.transport.sse import SSEEvent

__all__ = ["passthrough_event", "passthrough_request", "passthrough_usage"]

_USAGE_EVENTS = frozenset({"message_start", "message_delta", "error"})


def passthrough_request(
    body: dict[str, Any], *, model: ModelEntry, deployment: Deployment, headers: Mapping[str, str]
) -> UpstreamRequest:
    """The client's body with `model` set to the upstream id (key order kept), and the client's
    `anthropic-version` and `anthropic-beta` headers."""
    forwarded = {name: value for name, value in headers.items() if name.lower() in FORWARDED_HEADERS}
    messages = body.get("messages")
    edited = {**body, "model": model.upstream}
    if isinstance(messages, list):
        edited["messages"] = without_foreign_thinking(messages)
    return UpstreamRequest(
        method="POST",
        url=messages_url(deployment),
        headers=upstream_headers(deployment, forwarded),
        body=orjson.dumps(edited),
        stream=body.get("stream") is True,
    )


def _foreign(block: object) -> bool:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    return not isinstance(signature, str) or not signature or signature.startswith("clearmaas:")


def without_foreign_thinking(messages: list[Any]) -> list[Any]:
    """The history minus thinking blocks Anthropic did not sign.

    After a session ran on another model (Claude Code switching models through the gateway), its history
    holds thinking with an empty signature, or one the gateway tagged with another provider's name; Anthropic
    refuses both with 400 "Invalid signature in thinking block" (protocols.md §6.7). The list is returned
    unchanged, not copied, when there is nothing to drop.
    """
    out: list[Any] | None = None
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or not any(_foreign(block) for block in content):
            if out is not None:
                out.append(message)
            continue
        if out is None:
            out = list(messages[:i])
        kept = [block for block in content if not _foreign(block)]
        if kept:
            out.append({**message, "content": kept})
    return messages if out is None else out


_DELTA_WRAPPER = len('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}')


def passthrough_usage(body: bytes) -> Usage:
    """Usage of a non-streaming response body; empty if the body has none."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Usage()
    return map_usage(data.get("usage")) if isinstance(data, dict) else Usage()


def passthrough_event(event: SSEEvent, state: PassthroughStream, *, client_wants_usage: bool) -> bool:
    """Read usage and errors off one upstream event. Always forwarded: Anthropic streams carry usage
    unasked, so there is nothing to hide from the client (`client_wants_usage` does not matter here)."""
    state.events += 1
    kind = event.event
    if kind == "content_block_delta":
        # Deltas are most of the stream: not parsed, only measured. Their JSON wrapper is about 70 characters;
        # the rest is generated text (the output estimate of a stream cut short, see PassthroughStream).
        state.output_chars += max(0, len(event.data) - _DELTA_WRAPPER)
        return True
    if kind is not None and kind not in _USAGE_EVENTS:
        return True
    try:
        payload = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(payload, dict):
        return True
    kind = kind or payload.get("type")
    if kind == "message_start":
        message = payload.get("message")
        state.usage = map_usage(message.get("usage") if isinstance(message, dict) else None)
    elif kind == "message_delta":
        # Cumulative, but may lack message_start's input and cache counts: merge, never replace.
        state.usage = merge_usage(state.usage, payload.get("usage"))
    elif kind == "error":
        state.error = error_from_event(payload)
    return True
