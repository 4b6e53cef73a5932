"""Anthropic error envelopes, in an HTTP response or in a stream's `error` event, as `UpstreamHTTPError`s.

Nothing here decides retries or renders errors for clients: `UpstreamHTTPError` maps the status, and each
surface renders it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from clearmaas.errors import UpstreamHTTPError

__all__ = ["FAMILY", "STATUS_BY_ERROR_TYPE", "error_from_event", "map_error"]

FAMILY = "claude"

# error.type -> the HTTP status Anthropic sends it with (docs.claude.com/en/api/errors). A stream's `error`
# event arrives after a 200, so its type is the only way to recover the status that clients key off.
STATUS_BY_ERROR_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,  # Anthropic's own "overloaded" status: a 5xx, so retryable and shown as 502
}


def map_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamHTTPError:
    """The error behind an Anthropic error response; safe for bodies that are not JSON (proxy HTML pages)."""
    error_type, message = _envelope(_loads(body))
    return UpstreamHTTPError(
        message or f"The upstream provider returned HTTP {status}.",
        upstream_status=status,
        family=FAMILY,
        upstream_type=error_type,
        retry_after=_retry_after(headers),
    )


def error_from_event(payload: Mapping[str, Any]) -> UpstreamHTTPError:
    """The error carried by a stream's `error` event, with the status its type implies (500 if unknown)."""
    error_type, message = _envelope(payload)
    status = STATUS_BY_ERROR_TYPE.get(error_type or "", 500)
    return UpstreamHTTPError(
        message or "The upstream provider failed during the stream.",
        upstream_status=status,
        family=FAMILY,
        upstream_type=error_type,
    )


def _loads(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _envelope(payload: object) -> tuple[str | None, str | None]:
    """(error.type, error.message) of `{"type": "error", "error": {...}}`, each None when absent."""
    if not isinstance(payload, Mapping):
        return None, None
    error = payload.get("error")
    if not isinstance(error, Mapping):
        return None, None
    error_type = error.get("type")
    message = error.get("message")
    return (
        error_type if isinstance(error_type, str) and error_type else None,
        message if isinstance(message, str) and message else None,
    )


def _retry_after(headers: Mapping[str, str]) -> int | None:
    """Whole seconds from `retry-after`; HTTP-date values are ignored (reading the clock is not pure)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return max(0, math.ceil(seconds)) if math.isfinite(seconds) else None
    return None
