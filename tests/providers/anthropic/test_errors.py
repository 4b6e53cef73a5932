"""Anthropic error responses mapped to gateway errors."""

from __future__ import annotations

import pytest

from clearmaas.providers.anthropic import map_error


def envelope(error_type: str, message: str) -> bytes:
    return (
        b'{"type":"error","error":{"type":"'
        + error_type.encode()
        + b'","message":"'
        + message.encode()
        + b'"},"request_id":"req_011CVtwxbUMYkHKtk3YxTtSt"}'
    )


def test_invalid_request_keeps_status_message_and_type() -> None:
    error = map_error(400, {}, envelope("invalid_request_error", "messages: text content blocks must be non-empty"))
    assert error.status == 400
    assert error.type == "claude_error"
    assert error.code == "invalid_request_error"
    assert error.upstream_type == "invalid_request_error"
    assert error.message == "messages: text content blocks must be non-empty"
    assert error.retryable is False


def test_rate_limit_carries_retry_after() -> None:
    error = map_error(429, {"Retry-After": "17"}, envelope("rate_limit_error", "Number of request tokens exceeded"))
    assert error.status == 429
    assert error.retry_after == 17
    assert error.headers == {"retry-after": "17"}
    assert error.retryable is True
    assert map_error(429, {"retry-after": "1.2"}, b"").retry_after == 2
    assert map_error(429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"").retry_after == 1  # the default


def test_overloaded_529_is_a_retryable_upstream_failure() -> None:
    error = map_error(529, {}, envelope("overloaded_error", "Overloaded"))
    assert error.status == 502
    assert error.code == "upstream_error"
    assert error.upstream_status == 529
    assert error.retryable is True


def test_gateway_credentials_rejected_is_not_the_clients_fault() -> None:
    error = map_error(401, {}, envelope("authentication_error", "invalid x-api-key"))
    assert error.status == 502
    assert "x-api-key" not in error.message


@pytest.mark.parametrize(
    "body", [b"<html><body>502 Bad Gateway</body></html>", b"", b"[1, 2]", b'{"error": "flat string"}', b"\xff\xfe"]
)
def test_bodies_that_are_not_anthropic_envelopes(body: bytes) -> None:
    error = map_error(502, {"content-type": "text/html"}, body)
    assert error.upstream_status == 502
    assert error.status == 502
    assert error.message == "The upstream provider returned HTTP 502."


def test_413_from_the_edge_keeps_its_status() -> None:
    error = map_error(413, {}, envelope("request_too_large", "Request exceeds the maximum allowed number of bytes."))
    assert error.status == 413
    assert error.code == "request_too_large"


def test_messages_are_scrubbed_of_keys_and_urls() -> None:
    error = map_error(
        400, {}, envelope("invalid_request_error", "see https://internal.example/x for sk-ant-abcdefgh123")
    )
    assert "https://" not in error.message and "sk-ant-abcdefgh123" not in error.message
