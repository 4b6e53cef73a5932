"""Error envelopes: ClearMaas's type and code inside Anthropic's envelope, with the status the SDK keys off."""

from __future__ import annotations

import anthropic
import orjson
import pytest

from clearmaas.errors import (
    GatewayError,
    InsufficientQuota,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    UpstreamHTTPError,
)
from clearmaas.surfaces.anthropic_messages import encode_error, encode_stream_error

from .harness import sdk_client


def test_invalid_request_envelope() -> None:
    encoded = encode_error(InvalidRequest("max_tokens: field required.", param="max_tokens"))
    assert (encoded.status, encoded.headers) == (400, {"content-type": "application/json"})
    assert orjson.loads(encoded.body) == {
        "type": "error",
        "error": {"type": "clearmaas_api_error", "code": "bad_request_body", "message": "max_tokens: field required."},
        "request_id": None,
    }
    assert orjson.loads(encode_error(InvalidRequest("x"), request_id="req_01").body)["request_id"] == "req_01"


def test_rate_limit_carries_retry_after() -> None:
    encoded = encode_error(RateLimited("Too many requests.", retry_after=7))
    assert (encoded.status, encoded.headers) == (429, {"content-type": "application/json", "retry-after": "7"})
    assert orjson.loads(encoded.body)["error"]["code"] == "rate_limit_exceeded"


def test_upstream_error_keeps_the_provider_family_and_code() -> None:
    error = UpstreamHTTPError(
        "prompt is too long", upstream_status=400, family="claude", upstream_type="invalid_request_error"
    )
    encoded = encode_error(error)
    assert encoded.status == 400
    assert orjson.loads(encoded.body)["error"] == {
        "type": "claude_error",
        "code": "invalid_request_error",
        "message": "prompt is too long",
    }


@pytest.mark.parametrize(
    ("error", "sdk_error"),
    [
        (InvalidRequest("bad", param="model"), anthropic.BadRequestError),
        (InsufficientQuota("Top up."), anthropic.PermissionDeniedError),
        (RateLimited("slow down", retry_after=1), anthropic.RateLimitError),
        (ModelNotFound("no such model"), anthropic.InternalServerError),
    ],
)
def test_the_sdk_raises_the_class_for_the_status(error: GatewayError, sdk_error: type[Exception]) -> None:
    encoded = encode_error(error)
    with (
        sdk_client(encoded.body, status=encoded.status, headers=encoded.headers) as client,
        pytest.raises(sdk_error) as raised,
    ):
        client.messages.create(
            model="anthropic/claude-sonnet-4.6", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(raised.value, anthropic.APIStatusError)
    assert raised.value.status_code == error.status
    assert raised.value.body == orjson.loads(encoded.body)


def test_stream_error_event() -> None:
    chunk = encode_stream_error(UpstreamHTTPError("Overloaded", upstream_status=529))
    name, data = chunk.split(b"\n", 1)
    assert name == b"event: error" and chunk.endswith(b"\n\n")
    assert orjson.loads(data.removeprefix(b"data: ")) == {
        "type": "error",
        "error": {"type": "upstream_error", "code": "upstream_error", "message": "Overloaded"},
    }
