"""`map_error`, retry-after parsing, and MiniMax's HTTP-200 error envelope."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import orjson
import pytest

from clearmaas.errors import UpstreamHTTPError
from clearmaas.providers.openai_chat.errors import envelope_error, map_error, retry_after
from clearmaas.providers.openai_chat.response import decode_response
from clearmaas.providers.profiles import MINIMAX, OPENAI


def _error(message: str, kind: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def test_rate_limit_with_retry_after_ms_rounds_up() -> None:
    error = map_error(429, {"Retry-After-Ms": "1200"}, _error("Rate limit reached.", "requests", "rate_limit_exceeded"))
    assert (error.status, error.code, error.retry_after) == (429, "rate_limit_exceeded", 2)
    assert error.headers == {"retry-after": "2"}
    assert error.retryable


def test_retry_after_seconds_and_http_dates() -> None:
    assert retry_after({"retry-after": "3"}) == 3
    assert retry_after({"retry-after": "0.2"}) == 1
    assert retry_after({"retry-after-ms": "20", "retry-after": "9"}) == 1
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert retry_after({"Retry-After": format_datetime(when, usegmt=True)}) in (29, 30, 31)
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


@pytest.mark.parametrize(("text", "seconds"), [("1.2s", 2), ("20ms", 1), ("6m0s", 360), ("1m30s", 90), ("7s", 7)])
def test_retry_after_from_the_message(text: str, seconds: int) -> None:
    message = f"Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000. Please try again in {text}. Visit"
    error = map_error(429, {}, _error(message, "tokens", "rate_limit_exceeded"))
    assert error.retry_after == seconds


def test_client_errors_keep_status_and_provider_message() -> None:
    error = map_error(
        400,
        {},
        _error(
            "This model's maximum context length is 128000 tokens.", "invalid_request_error", "context_length_exceeded"
        ),
    )
    assert (error.status, error.type, error.code) == (400, "openai_error", "context_length_exceeded")
    assert error.message == "This model's maximum context length is 128000 tokens."
    assert not error.retryable


def test_server_and_auth_errors_become_502() -> None:
    assert map_error(503, {}, _error("overloaded", "server_error")).status == 502
    auth = map_error(
        401, {}, _error("Incorrect API key provided: sk-abc*****xyz.", "invalid_request_error", "invalid_api_key")
    )
    assert auth.status == 502 and "sk-" not in auth.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"upstream connect error or disconnect/reset before headers",
            "upstream connect error or disconnect/reset before headers",
        ),
        (b"<html><body>502 Bad Gateway</body></html>", "The upstream provider answered HTTP 502."),
        (b"", "The upstream provider answered HTTP 504."),
        (b'{"error": "model overloaded"}', "model overloaded"),
        (
            b'{"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400}',
            "max_tokens is too large",
        ),
    ],
)
def test_odd_bodies(body: bytes, message: str) -> None:
    status = 502 if body.startswith(b"<") else 504 if not body else 400
    error = map_error(status, {"retry-after": "5"}, body)
    assert isinstance(error, UpstreamHTTPError)
    assert error.message == message
    assert error.upstream_status == status
    assert error.retry_after == 5


def test_messages_are_scrubbed() -> None:
    error = map_error(
        400, {}, _error("bad key sk-live-1234567890 at https://internal.example/v1", "invalid_request_error")
    )
    assert "sk-live" not in error.message and "internal.example" not in error.message


@pytest.mark.parametrize(
    ("code", "status", "client_status"),
    [
        (1002, 429, 429),
        (1004, 401, 502),
        (1008, 429, 429),
        (1026, 400, 400),
        (2013, 400, 400),
        (1024, 500, 502),
        (2999, 400, 400),
        (1999, 500, 502),
    ],
)
def test_minimax_envelope_codes(code: int, status: int, client_status: int) -> None:
    payload = {"id": "r", "choices": None, "base_resp": {"status_code": code, "status_msg": "msg"}}
    error = envelope_error(payload, MINIMAX)
    assert error is not None
    assert (error.upstream_status, error.status, error.upstream_code) == (status, client_status, str(code))
    assert envelope_error(payload, OPENAI) is None
    assert envelope_error({"base_resp": {"status_code": 0, "status_msg": ""}}, MINIMAX) is None


def test_minimax_200_error_body_raises() -> None:
    body = orjson.dumps({"id": "r", "choices": None, "base_resp": {"status_code": 1002, "status_msg": "rate limit"}})
    with pytest.raises(UpstreamHTTPError) as caught:
        decode_response(body, profile=MINIMAX)
    assert (caught.value.status, caught.value.message, caught.value.retry_after) == (429, "rate limit", 1)


def test_an_error_object_in_a_200_body_raises() -> None:
    with pytest.raises(UpstreamHTTPError) as caught:
        decode_response(_error("Rate limit", "rate_limit_exceeded", "rate_limit_exceeded"), profile=OPENAI)
    assert caught.value.status == 429


def test_json_without_a_message_gets_a_plain_one() -> None:
    assert map_error(500, {}, b"{}").message == "The upstream provider answered HTTP 500."
    assert map_error(429, {}, b'"slow down"').message == "slow down"


def test_minimax_envelope_on_an_error_status_keeps_that_status() -> None:
    body = orjson.dumps({"base_resp": {"status_code": 2013, "status_msg": "invalid params, tool_choice"}})
    error = map_error(400, {}, body, profile=MINIMAX)
    assert (error.status, error.message, error.upstream_code) == (400, "invalid params, tool_choice", "2013")
