"""The same-format fast path: a Gemini-native client's body goes to Gemini as it is, and usage is read from
the answer on the way back. Nothing here rewrites a response or an event.

The Gemini protocol puts the model and the stream switch in the URL, not the body, so the caller says
whether to stream: `stream=True`, or the header `x-clearmaas-stream: 1` (for a relay that only knows the
`ProviderAdapter` signature). The upstream model is the catalogue's `model.upstream`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from clearmaas.canonical.usage import Usage
from clearmaas.catalogue.entry import ModelEntry
from clearmaas.providers.base import Deployment, PassthroughStream, UpstreamRequest
from clearmaas.providers.google.errors import error_from_envelope
from clearmaas.providers.google.request import model_url, upstream_headers
from clearmaas.providers.google.response import map_usage, web_searches
from clearmaas.transport.sse import SSEEvent

__all__ = ["STREAM_HEADER", "passthrough_event", "passthrough_request", "passthrough_usage"]

STREAM_HEADER = "x-clearmaas-stream"


def passthrough_request(
    body: dict[str, Any],
    *,
    model: ModelEntry,
    deployment: Deployment,
    headers: Mapping[str, str],
    stream: bool = False,
) -> UpstreamRequest:
    streaming = stream or any(k.lower() == STREAM_HEADER and v == "1" for k, v in headers.items())
    return UpstreamRequest(
        method="POST",
        url=model_url(deployment.base_url, model.upstream, stream=streaming),
        headers=upstream_headers(deployment),
        body=orjson.dumps(body),
        stream=streaming,
    )


def passthrough_usage(body: bytes) -> Usage:
    """Usage of a whole `generateContent` answer (an empty `Usage` when it carries none)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Usage()
    if isinstance(data, list) and data:
        data = data[-1]
    return _usage(data) or Usage()


def passthrough_event(event: SSEEvent, state: PassthroughStream, *, client_wants_usage: bool) -> bool:
    """Read the cumulative usage (or an in-stream error) from one event; Gemini always sends usage, so
    every event is forwarded."""
    state.events += 1
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return True
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        state.error = error_from_envelope(data)
        return True
    usage = _usage(data)
    if usage is not None:
        # Grounding queries may be reported on an earlier chunk than the last usage: keep the most seen.
        searches = max(usage.server_tool_calls.get("web_search", 0), state.usage.server_tool_calls.get("web_search", 0))
        if searches:
            usage.server_tool_calls["web_search"] = searches
        state.usage = usage
    return True


def _usage(data: object) -> Usage | None:
    if not isinstance(data, dict):
        return None
    metadata = data.get("usageMetadata")
    if not isinstance(metadata, dict) or "promptTokenCount" not in metadata:
        return None
    candidates = data.get("candidates")
    searches = web_searches(candidates[0]) if isinstance(candidates, list) and candidates else 0
    return map_usage(metadata, web_searches=searches)  # type: ignore[arg-type]
