"""The same-format fast path: the client speaks the provider's own protocol, so the body goes up with the
model name and credentials changed and nothing else, and the answer comes back byte for byte while usage
is read from it as it passes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import Response

from clearmaas.errors import GatewayError
from clearmaas.providers.base import Deployment, PassthroughStream, ProviderAdapter
from clearmaas.relay.gateway import Gateway
from clearmaas.relay import upstream
from clearmaas.relay.record import CallRecord
from clearmaas.relay.streams import prefetch
from clearmaas.routing.plan import Candidate
from clearmaas.surfaces.base import Surface
from clearmaas.transport.client import UpstreamResponse
from clearmaas.transport.sse import SSEEvent, SSEParser
from clearmaas.web.responses import EventStreamResponse, json_response

__all__ = ["serve_passthrough", "wants_usage_chunk"]


async def serve_passthrough(
    gateway: Gateway,
    surface: Surface,
    client_headers: Mapping[str, str],
    body: dict[str, Any],
    candidate: Candidate,
    deployment: Deployment,
    record: CallRecord,
    headers: Mapping[str, str],
) -> Response:
    """Raises the provider's error when it fails before the first byte; after that, errors go in-band."""
    provider = candidate.provider
    adapter = provider.adapter
    client_wants_usage = wants_usage_chunk(body)
    # A copy: a failed attempt must leave the client's body as it was for the next candidate.
    upstream_request = adapter.passthrough_request(
        dict(body), model=candidate.entry, deployment=deployment, headers=client_headers
    )
    response = await upstream.send(gateway, provider, upstream_request)
    if not upstream_request.stream:
        raw = await upstream.read_whole(response)
        record.usage = adapter.passthrough_usage(raw)
        record.mark_first_byte()
        await gateway.finish(record)
        return json_response(raw, headers=headers)

    state = PassthroughStream()
    chunks = _forward(response, surface, state, adapter, client_wants_usage, record)
    first, chunks = await prefetch(chunks)
    if state.error is not None and state.events <= 1:
        # The provider's very first event was an error: the client can still get a real HTTP status.
        await chunks.aclose()  # type: ignore[attr-defined]
        raise state.error

    async def on_close(completed: bool) -> None:
        record.client_disconnected = not completed
        record.usage = state.usage
        record.output_chars = state.output_chars
        if state.error is not None:
            record.error_code = state.error.code
        await gateway.finish(record)

    return EventStreamResponse(chunks, headers=headers, on_close=on_close)  # type: ignore[return-value]


def wants_usage_chunk(body: dict[str, Any]) -> bool:
    """Whether an OpenAI-style client asked for the usage-only chunk: only `stream_options.include_usage: true`
    does (protocols.md §2.4). The gateway forces it upstream for billing either way, and hides it from a
    client that did not ask, as OpenAI would. Other protocols carry usage unasked, and their adapters
    ignore the flag."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _forward(
    response: UpstreamResponse,
    surface: Surface,
    state: PassthroughStream,
    adapter: ProviderAdapter,
    client_wants_usage: bool,
    record: CallRecord,
) -> AsyncIterator[bytes]:
    """Upstream bytes to the client, one SSE event at a time, as each completes."""
    parser = SSEParser()

    def keep(events: list[SSEEvent]) -> bytes:
        # The adapter counts the events (`state.events`): the first-event check in `serve_passthrough`
        # relies on that count being exact.
        out = []
        for event in events:
            earlier = state.error
            if not adapter.passthrough_event(event, state, client_wants_usage=client_wants_usage):
                continue
            if state.error is not None and state.error is not earlier:
                # The provider's in-band error goes out as the gateway's, like every other upstream failure:
                # its message scrubbed (provider opacity) and its type `upstream_error`.
                out.append(surface.encode_stream_error(state.error))
            else:
                out.append(event.raw)
        return b"".join(out)

    try:
        async for chunk in response.iter_chunks():
            data = keep(parser.feed(chunk))
            if data:
                record.mark_first_byte()
                yield data
        data = keep(parser.flush())
        if data:
            yield data
    except GatewayError as exc:
        state.error = state.error or exc
        yield surface.encode_stream_error(exc)
    finally:
        response.close()
