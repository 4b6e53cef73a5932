"""Gemini error bodies → `UpstreamHTTPError`.

Google's envelope is `{"error": {"code", "message", "status", "details": [...]}}`; a 429 carries a
`google.rpc.RetryInfo` detail whose `retryDelay` ("34.4s") becomes `retry_after`, rounded up, ahead of any
`retry-after` header (protocols.md §4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from clearmaas.errors import UpstreamHTTPError

__all__ = ["error_from_envelope", "map_error", "retry_delay"]

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def map_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:
        data = data[0]  # errors of a non-SSE stream come wrapped in an array
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        text = body.decode("utf-8", "replace").strip()[:500]
        return UpstreamHTTPError(
            text or f"The upstream provider answered HTTP {status}.",
            upstream_status=status,
            family="gemini",
            retry_after=_header_retry_after(headers),
        )
    return _from_error(error, status, retry_after=retry_delay(error) or _header_retry_after(headers))


def error_from_envelope(data: Mapping[str, Any]) -> UpstreamHTTPError:
    """An error object that arrived in a 200 body or inside a stream; its status is its own `code`."""
    error = data.get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    return _from_error(error, status, retry_after=retry_delay(error))


def _from_error(error: Mapping[str, Any], status: int, *, retry_after: int | None) -> UpstreamHTTPError:
    message = error.get("message")
    upstream_type = error.get("status")
    return UpstreamHTTPError(
        message if isinstance(message, str) and message else f"The upstream provider answered HTTP {status}.",
        upstream_status=status,
        family="gemini",
        upstream_type=upstream_type if isinstance(upstream_type, str) else None,
        retry_after=retry_after,
    )


def retry_delay(error: Mapping[str, Any]) -> int | None:
    """Whole seconds from a RetryInfo detail (a protobuf Duration such as "34.4s"), rounded up."""
    details = error.get("details")
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(math.ceil(float(delay[:-1])), 0)
                except ValueError:
                    return None
    return None


def _header_retry_after(headers: Mapping[str, str]) -> int | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(math.ceil(float(value)), 0)
            except ValueError:
                return None  # an HTTP date: rare from Google, and the 429 default of 1 s applies
    return None
