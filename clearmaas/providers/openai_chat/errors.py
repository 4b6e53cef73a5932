"""Turn an OpenAI-compatible provider's error (an HTTP error body, an in-band stream error, or MiniMax's
HTTP-200 `base_resp` envelope) into an `UpstreamHTTPError`.

Messages come from the provider's body (scrubbed by `UpstreamHTTPError`); nothing here invents a client
envelope, which is each surface's job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from clearmaas.errors import UpstreamHTTPError
from clearmaas.providers.profiles import Profile

__all__ = ["envelope_error", "map_error", "payload_error", "retry_after"]

_FAMILY = "openai"
_MAX_MESSAGE = 500
# OpenAI rate-limit messages: "Please try again in 1.2s", "in 20ms", "in 6m0s" (protocols.md §2.5).
_TRY_AGAIN = re.compile(r"try again in\s+((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# In-band errors carry no HTTP status; their `type`/`code` says what it would have been.
_STATUS_BY_KIND = {
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "overloaded_error": 503,
    "server_error": 500,
}


def map_error(
    status: int, headers: Mapping[str, str], body: bytes, *, profile: Profile | None = None
) -> UpstreamHTTPError:
    """The error for a non-2xx answer; works for JSON envelopes, bare strings and HTML pages alike."""
    payload = _json(body)
    wait = retry_after(headers)
    if isinstance(payload, dict):
        error = payload_error(payload, status=status, retry_after_s=wait)
        envelope = envelope_error(payload, profile) if profile is not None and error is None else None
        if envelope is not None:
            # The provider's message and code, but the HTTP status it actually answered with.
            error = UpstreamHTTPError(
                envelope.message, upstream_status=status, family=_FAMILY, upstream_code=envelope.upstream_code,
                retry_after=wait,
            )
        if error is not None:
            return error
    text = payload if isinstance(payload, str) else body.decode("utf-8", "replace").strip()
    if not text or text.startswith("<") or isinstance(payload, (dict, list)):  # empty, HTML, or JSON without a message
        text = f"The upstream provider answered HTTP {status}."
    message = text[:_MAX_MESSAGE]
    return UpstreamHTTPError(
        message, upstream_status=status, family=_FAMILY, retry_after=wait or _from_message(message)
    )


def payload_error(
    payload: dict[str, Any], *, status: int | None = None, retry_after_s: int | None = None
) -> UpstreamHTTPError | None:
    """The error described by a decoded body or stream chunk, or None if it describes none.

    Shapes: OpenAI `{"error": {message, type, param, code}}`, a bare `{"error": "text"}`, and vLLM's
    top-level `{"object": "error", "message", "type", "code"}`.
    """
    raw = payload.get("error")
    if isinstance(raw, str):
        raw = {"message": raw}
    elif raw is None and payload.get("object") == "error":
        raw = payload
    if not isinstance(raw, dict):
        return None
    message = raw.get("message")
    if not isinstance(message, str) or not message:
        message = "The upstream provider returned an error."
    kind = raw.get("type") if isinstance(raw.get("type"), str) else None
    code = raw.get("code")
    code_text = str(code) if code is not None and not isinstance(code, bool) else None
    param = raw.get("param") if isinstance(raw.get("param"), str) else None
    if status is None or status < 400:
        status = _status_of(code, kind)
    return UpstreamHTTPError(
        message,
        upstream_status=status,
        family=_FAMILY,
        upstream_type=kind,
        upstream_code=code_text,
        param=param,
        retry_after=retry_after_s or _from_message(message),
    )


def envelope_error(payload: dict[str, Any], profile: Profile) -> UpstreamHTTPError | None:
    """MiniMax answers some failures with HTTP 200 and `base_resp: {status_code != 0, status_msg}`."""
    if not profile.error_envelope:
        return None
    base = payload.get("base_resp")
    if not isinstance(base, dict):
        return None
    code = base.get("status_code")
    if not isinstance(code, int) or isinstance(code, bool) or code == 0:
        return None
    message = base.get("status_msg")
    if not isinstance(message, str) or not message:
        message = f"The upstream provider returned error {code}."
    status = profile.error_envelope.get(code, 400 if 2000 <= code < 3000 else 500)
    return UpstreamHTTPError(message, upstream_status=status, family=_FAMILY, upstream_code=str(code))


def retry_after(headers: Mapping[str, str]) -> int | None:
    """Whole seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date), rounded up."""
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return _ceil_seconds(millis / 1000)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return _ceil_seconds(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return _ceil_seconds((when - datetime.now(timezone.utc)).total_seconds())


def _from_message(message: str) -> int | None:
    match = _TRY_AGAIN.search(message)
    if match is None:
        return None
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(match.group(1)))
    return _ceil_seconds(seconds)


def _status_of(code: object, kind: str | None) -> int:
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    for key in (code, kind):
        if isinstance(key, str) and key in _STATUS_BY_KIND:
            return _STATUS_BY_KIND[key]
    return 500


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _ceil_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
