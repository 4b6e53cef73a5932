"""Render a `GatewayError` in the OpenAI error envelope, as an HTTP response or as an in-band stream chunk.

The envelope is `{"error": {"message", "type", "code", "param"}}` with ClearMaas's own type and code
(operations__errors.md), which the OpenAI SDK reads into `APIError.type` / `.code` / `.param`.
"""

from __future__ import annotations

import orjson

from clearmaas.errors import GatewayError
from clearmaas.surfaces.base import EncodedError
from clearmaas.surfaces.openai_chat.wire import ErrorEnvelope
from clearmaas.transport.sse import data_event

__all__ = ["encode_error", "encode_stream_error", "error_envelope"]


def error_envelope(error: GatewayError) -> ErrorEnvelope:
    return {"error": {"message": error.message, "type": error.type, "code": error.code, "param": error.param}}


def encode_error(error: GatewayError) -> EncodedError:
    """The error as a JSON response with its own status; 429s (and others that set it) carry Retry-After."""
    headers = {"content-type": "application/json", **error.headers}
    return EncodedError(status=error.status, headers=headers, body=orjson.dumps(error_envelope(error)))


def encode_stream_error(error: GatewayError) -> bytes:
    """A mid-stream failure: the SDK raises `APIError` on any chunk with an `error` key (protocols.md §2.4)."""
    return data_event(error_envelope(error))
