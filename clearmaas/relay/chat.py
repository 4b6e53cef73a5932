"""Serving one chat call, whatever the surface and provider: the translated path through the hub, or the
same-format fast path when the client already speaks the provider's protocol."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from clearmaas.canonical import ChatRequest, accumulate
from clearmaas.canonical.estimate import estimate_input_tokens
from clearmaas.errors import GatewayError, InternalError, InvalidRequest
from clearmaas.relay.body import read_json_object
from clearmaas.relay.gateway import Gateway, Target
from clearmaas.relay.passthrough import serve_passthrough
from clearmaas.relay.record import CallRecord
from clearmaas.relay.streams import observe_events, prefetch
from clearmaas.surfaces.base import StreamContext, Surface
from clearmaas.transport.sse import iter_sse
from clearmaas.web.responses import EventStreamResponse, json_response

__all__ = ["error_response", "required_model", "serve_chat"]

log = logging.getLogger("clearmaas.relay")

# Fields of the routing extension (routing__model-fallbacks.md): never forwarded upstream.
_ROUTING_FIELDS = ("models", "route")


def error_response(surface: Surface, error: GatewayError, record: CallRecord | None = None) -> Response:
    if record is not None:
        record.status = error.status
        record.error_code = error.code
    encoded = surface.encode_error(error)
    headers = dict(encoded.headers)
    if record is not None:
        headers["x-request-id"] = record.request_id
    return json_response(encoded.body, status=encoded.status, headers=headers)


async def serve_chat(gateway: Gateway, surface: Surface, http: Request) -> Response:
    record = CallRecord(request_id=uuid.uuid4().hex, endpoint=surface.protocol)
    try:
        key = await gateway.authenticate(http.headers, allow_x_api_key=surface.protocol == "anthropic_messages")
        record.key_id, record.workspace_id = key.id, key.workspace_id
        body = await read_json_object(http, limit=gateway.settings.max_body_bytes)
        model = required_model(body)
        for name in _ROUTING_FIELDS:
            body.pop(name, None)
        record.requested_model = model
        record.stream = body.get("stream") is True
        target = gateway.resolve(model)
        record.served_model, record.provider = target.entry.id, target.provider.id
        if target.provider.adapter.native_protocol == surface.protocol:
            record.passthrough = True
            return await serve_passthrough(gateway, surface, http, body, target, record)
        request = surface.decode_request(body, http.headers)
        return await _serve_translated(gateway, surface, request, target, record)
    except GatewayError as exc:
        await gateway.finish(record_failure(record, exc))
        return error_response(surface, exc, record)
    except Exception:
        log.exception("request %s failed", record.request_id)
        error = InternalError("The gateway failed to handle the request.")
        await gateway.finish(record_failure(record, error))
        return error_response(surface, error, record)


def required_model(body: dict[str, Any]) -> str:
    """The body's model id, after checking the fields every chat protocol requires.

    The fast path forwards the body undecoded, so without this a body missing its messages would cost an
    upstream round-trip and come back as the provider's error instead of `bad_request_body`.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' is required and must be a non-empty array.", param="messages")
    return model


def record_failure(record: CallRecord, error: GatewayError) -> CallRecord:
    record.status, record.error_code = error.status, error.code
    return record


async def _serve_translated(
    gateway: Gateway, surface: Surface, request: ChatRequest, target: Target, record: CallRecord
) -> Response:
    provider = target.provider
    adapter = provider.adapter
    upstream_request = adapter.encode_request(request, model=target.entry, deployment=provider.pick())
    response = await gateway.client.send(upstream_request, provider.timeouts)
    if response.status >= 400:
        raw = await response.read()
        response.release()
        raise adapter.map_error(response.status, response.headers, raw)
    headers = {"x-request-id": record.request_id}

    if not upstream_request.stream:
        try:
            raw = await response.read()
        finally:
            response.release()
        decoded = adapter.decode_response(raw)
        record.usage = decoded.usage
        record.mark_first_byte()
        await gateway.finish(record)
        return json_response(_dumps(surface.encode_response(decoded, request)), headers=headers)

    events = observe_events(adapter.decode_stream(iter_sse(response.iter_chunks())), response, record)
    first, events = await prefetch(events)
    if first is not None and first.kind == "error":
        await events.aclose()  # type: ignore[attr-defined]
        raise first.error  # type: ignore[union-attr]
    if not request.stream:
        # The provider only streams (e.g. a thinking mode): fold the stream for a non-streaming client.
        folded = await accumulate(events)
        await gateway.finish(record)
        return json_response(_dumps(surface.encode_response(folded, request)), headers=headers)

    context = StreamContext(request=request, input_tokens_estimate=estimate_input_tokens(request))

    async def body() -> AsyncIterator[bytes]:
        async for chunk in surface.encode_stream(events, context):
            record.mark_first_byte()
            yield chunk

    async def on_close(completed: bool) -> None:
        record.client_disconnected = not completed
        await gateway.finish(record)

    return EventStreamResponse(body(), headers=headers, on_close=on_close)  # type: ignore[return-value]


def _dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)
