"""The same-format fast path: an OpenAI Chat client on an OpenAI-protocol upstream, forwarded with minimal
edits (the model id, and the usage chunk the gateway needs for billing), then read back for usage and
in-band errors event by event.

Only for profiles marked `native`; everything else goes through canonical translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from clearmaas.canonical import Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.base import Deployment, PassthroughStream, UpstreamRequest
from clearmaas.providers.openai_chat.errors import envelope_error, payload_error
from clearmaas.providers.openai_chat.request import upstream_headers, upstream_url
from clearmaas.providers.openai_chat.response import map_usage
from clearmaas.providers.profiles import Profile
from clearmaas.transport.sse import SSEEvent

__all__ = ["passthrough_event", "passthrough_request", "passthrough_usage"]


def passthrough_request(
    body: dict[str, Any], *, model: ModelEntry, deployment: Deployment, headers: Mapping[str, str], profile: Profile
) -> UpstreamRequest:
    """The client's body with `model` set to the upstream id and, when streaming, `include_usage` forced.

    Client `headers` are not forwarded: auth is the deployment's, and Chat Completions has no protocol
    headers a client must pass through.
    """
    edited = dict(body)
    edited["model"] = model.upstream
    stream = edited.get("stream") is True
    if stream:
        options = edited.get("stream_options")
        edited["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return UpstreamRequest(
        method="POST",
        url=upstream_url(deployment, profile),
        headers=upstream_headers(deployment),
        body=orjson.dumps(edited),
        stream=stream,
    )


def passthrough_usage(body: bytes, *, profile: Profile) -> Usage:
    """Usage of a forwarded non-streaming response (zero if the body has none)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Usage()
    return map_usage(payload.get("usage"), profile) if isinstance(payload, dict) else Usage()


def passthrough_event(
    event: SSEEvent, state: PassthroughStream, *, client_wants_usage: bool, profile: Profile
) -> bool:
    """Read usage and errors off one forwarded event; False only for the usage-only chunk the client did
    not ask for, so the client sees what OpenAI would have sent it. `[DONE]` is forwarded."""
    state.events += 1
    data = event.data.strip()
    if not data or data == "[DONE]":
        return True
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(chunk, dict):
        return True
    error = envelope_error(chunk, profile) or payload_error(chunk)
    if error is not None:
        state.error = error
        return True
    choices = chunk.get("choices")
    if isinstance(choices, list):
        state.output_chars += _generated_chars(choices)
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        state.usage = map_usage(usage, profile)
        if not client_wants_usage and choices == []:
            return False
    return True


def _generated_chars(choices: list[object]) -> int:
    count = 0
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        for name in ("content", "reasoning_content"):
            text = delta.get(name)
            if isinstance(text, str):
                count += len(text)
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                count += len(function["arguments"])
    return count
