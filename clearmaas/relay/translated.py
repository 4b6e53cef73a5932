"""The translated path: the client's request, decoded into the hub, encoded for a provider that speaks
another protocol, and the provider's answer translated back, event by event for streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import orjson
from starlette.responses import Response

from clearmaas.canonical import ChatRequest, accumulate
from clearmaas.canonical.estimate import estimate_input_tokens
from clearmaas.providers.base import Deployment
from clearmaas.relay.gateway import Gateway
from clearmaas.relay import upstream
from clearmaas.relay.record import CallRecord
from clearmaas.relay.streams import observe_events, prefetch
from clearmaas.routing.plan import Candidate
from clearmaas.surfaces.base import StreamContext, Surface
from clearmaas.transport.sse import iter_sse
from clearmaas.web.responses import EventStreamResponse, json_response

__all__ = ["serve_translated"]


async def serve_translated(
    gateway: Gateway,
    surface: Surface,
    request: ChatRequest,
    candidate: Candidate,
    deployment: Deployment,
    record: CallRecord,
    headers: Mapping[str, str],
) -> Response:
    """Raises the provider's error when it fails before the first byte; after that, errors go in-band."""
    provider = candidate.provider
    adapter = provider.adapter
    upstream_request = adapter.encode_request(request, model=candidate.entry, deployment=deployment)
    response = await upstream.send(gateway, provider, upstream_request)
    if not upstream_request.stream:
        raw = await upstream.read_whole(response)
        decoded = adapter.decode_response(raw)
        record.usage = decoded.usage
        record.mark_first_byte()
        await gateway.finish(record)
        return json_response(orjson.dumps(surface.encode_response(decoded, request)), headers=headers)

    events = observe_events(adapter.decode_stream(iter_sse(response.iter_chunks())), response, record)
    first, events = await prefetch(events)
    if first is not None and first.kind == "error":
        await events.aclose()  # type: ignore[attr-defined]
        raise first.error  # type: ignore[union-attr]
    if not request.stream:
        # The provider only streams (e.g. a thinking mode): fold the stream for a non-streaming client.
        folded = await accumulate(events)
        record.mark_first_byte()
        await gateway.finish(record)
        return json_response(orjson.dumps(surface.encode_response(folded, request)), headers=headers)

    context = StreamContext(request=request, input_tokens_estimate=estimate_input_tokens(request))

    async def body() -> AsyncIterator[bytes]:
        async for chunk in surface.encode_stream(events, context):
            record.mark_first_byte()
            yield chunk

    async def on_close(completed: bool) -> None:
        record.client_disconnected = not completed
        await gateway.finish(record)

    return EventStreamResponse(body(), headers=headers, on_close=on_close)  # type: ignore[return-value]
