"""Render a `GatewayError` in Anthropic's error envelope, as an HTTP answer or as an in-stream `error` event.

The envelope is Anthropic's (`{"type": "error", "error": {...}, "request_id": ...}`) so the SDKs parse it;
inside it, `type` and `code` are ClearMaas's own (operations/errors in the product docs). Clients key off
the HTTP status, which is the error's own.
"""

from __future__ import annotations

import orjson

from clearmaas.errors import GatewayError
from clearmaas.surfaces.anthropic_messages.wire import WireError, WireErrorBody
from clearmaas.surfaces.base import EncodedError
from clearmaas.transport.sse import anthropic_event

__all__ = ["encode_error", "encode_stream_error", "error_body"]


def error_body(error: GatewayError) -> WireErrorBody:
    return {"type": error.type, "code": error.code, "message": error.message}


def encode_error(error: GatewayError, *, request_id: str | None = None) -> EncodedError:
    """The HTTP answer for an error raised before any response byte was sent."""
    body: WireError = {"type": "error", "error": error_body(error), "request_id": request_id}
    headers = {"content-type": "application/json", **error.headers}
    return EncodedError(status=error.status, headers=headers, body=orjson.dumps(body))


def encode_stream_error(error: GatewayError) -> bytes:
    """An `event: error` for a stream that fails after the 200 was sent; the SDK raises on it."""
    return anthropic_event("error", {"type": "error", "error": error_body(error)})
