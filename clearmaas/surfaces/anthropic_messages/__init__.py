"""The Anthropic Messages surface: what the Anthropic SDKs and Claude Code speak to `POST /v1/messages`.

HTTP handling lives in `handlers.py`; everything exported here is a pure translation.
"""

from __future__ import annotations

from clearmaas.surfaces.anthropic_messages.decode import decode_request, forward_headers
from clearmaas.surfaces.anthropic_messages.encode import encode_response
from clearmaas.surfaces.anthropic_messages.errors import encode_error, encode_stream_error
from clearmaas.surfaces.anthropic_messages.stream import encode_stream
from clearmaas.surfaces.anthropic_messages.wire import PROTOCOL
from clearmaas.surfaces.base import Surface

__all__ = [
    "SURFACE",
    "AnthropicMessagesSurface",
    "decode_request",
    "encode_error",
    "encode_response",
    "encode_stream",
    "encode_stream_error",
    "forward_headers",
]


class AnthropicMessagesSurface:
    """The `Surface` for the Anthropic Messages protocol."""

    protocol = PROTOCOL
    decode_request = staticmethod(decode_request)
    encode_response = staticmethod(encode_response)
    encode_stream = staticmethod(encode_stream)
    encode_error = staticmethod(encode_error)
    encode_stream_error = staticmethod(encode_stream_error)


SURFACE: Surface = AnthropicMessagesSurface()
