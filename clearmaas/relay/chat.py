"""Serving one chat call, whatever the surface: authentication, the body, the route plan and the
workspace's rate limit; `fallback.run_plan` then tries the plan's models."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from clearmaas.errors import GatewayError, InternalError, InvalidRequest
from clearmaas.relay.body import read_json_body
from clearmaas.relay.fallback import run_plan
from clearmaas.relay.gateway import Gateway
from clearmaas.relay.record import CallRecord
from clearmaas.surfaces.base import Surface
from clearmaas.web.responses import json_response

__all__ = ["error_response", "new_request_id", "required_model", "serve_chat"]

log = logging.getLogger("clearmaas.relay")


def error_response(surface: Surface, error: GatewayError, record: CallRecord | None = None) -> Response:
    """The error in the surface's own format; with the call's `record`, its request id as a header. The
    record is only read: it was finished (and queued for the usage log) with the error already in it."""
    encoded = surface.encode_error(error)
    headers = dict(encoded.headers)
    if record is not None:
        headers["x-request-id"] = record.request_id
    return json_response(encoded.body, status=encoded.status, headers=headers)


async def serve_chat(gateway: Gateway, surface: Surface, http: Request) -> Response:
    record = CallRecord(request_id=new_request_id(), endpoint=surface.protocol)
    try:
        key = await gateway.authenticate(http.headers, allow_x_api_key=surface.protocol == "anthropic_messages")
        record.key_id, record.workspace_id = key.id, key.workspace_id
        body, size = await read_json_body(http, limit=gateway.settings.max_body_bytes)
        model = required_model(body)
        # The routing extension's fields (routing__model-fallbacks.md) are the gateway's, never forwarded.
        chain, route = body.pop("models", None), body.pop("route", None)
        record.requested_model = model
        record.stream = body.get("stream") is True
        plan = gateway.routing.plan(model=model, chain=chain, route=route, key=key, endpoint="chat")
        # Bytes / 4 over-counts the tokens of a JSON body: a safe bound for credit and rate limits, and free.
        record.input_estimate = size // 4 + 1
        first = plan.candidates[0].entry
        record.limit_tokens = record.input_estimate + first.max_output_tokens
        # The limiter decides in this process when it can, without a coroutine (limits/counters.py LocalCounter).
        admission = gateway.limits.admit_now(key.workspace_id, record.limit_tokens)
        if admission is None:
            admission = await gateway.limits.admit(key.workspace_id, tokens=record.limit_tokens)
        record.admission = admission
        return await run_plan(gateway, surface, http.headers, body, plan, key, record)
    except GatewayError as exc:
        await gateway.finish(_failed(record, exc))
        return error_response(surface, exc, record)
    except Exception:
        log.exception("request %s failed", record.request_id)
        error = InternalError("The gateway failed to handle the request.")
        await gateway.finish(_failed(record, error))
        return error_response(surface, error, record)


def new_request_id() -> str:
    """32 hex digits: the time in milliseconds, then 80 random bits (the layout of a UUIDv7). Ids that grow
    with time are appended at the end of the usage log's and ledger's indexes instead of landing on random
    pages, which cut the SQLite writer's cost per record by about a third (bench/README.md).

    The bits come from `random`, which is re-seeded from the OS in every forked worker: an id must be unique,
    not secret, and `os.urandom` is a system call that releases the GIL, handing it to the usage-log writer
    thread for up to a switch interval on every request."""
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


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


def _failed(record: CallRecord, error: GatewayError) -> CallRecord:
    record.status, record.error_code = error.status, error.code
    return record
