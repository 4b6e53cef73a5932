"""encode_error / encode_stream_error: the OpenAI envelope for every GatewayError, as the OpenAI SDK reads it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import openai
import orjson
import pytest

from clearmaas import errors
from clearmaas.errors import GatewayError
from clearmaas.surfaces.openai_chat import SURFACE, encode_error, encode_stream_error

CASES: list[tuple[GatewayError, int, str, str | None]] = [
    (errors.InvalidRequest("`messages[2].role` must be …", param="messages[2].role"), 400, "clearmaas_api_error",
     "bad_request_body"),
    (errors.ModelPriceError("no price"), 400, "clearmaas_api_error", "model_price_error"),
    (errors.NotImplementedForModel("no audio"), 400, "clearmaas_api_error", "api_not_implemented"),
    (errors.AuthenticationFailed("bad key"), 401, "clearmaas_api_error", "invalid_api_key"),
    (errors.InsufficientQuota("top up"), 403, "clearmaas_api_error", "insufficient_user_quota"),
    (errors.PermissionDenied("not for this key"), 403, "clearmaas_api_error", "model_not_allowed"),
    (errors.RouteNotFound("no route"), 404, "clearmaas_api_error", "not_found"),
    (errors.RequestTooLarge("too big"), 413, "clearmaas_api_error", "request_too_large"),
    (errors.RateLimited("slow down", retry_after=7), 429, "clearmaas_api_error", "rate_limit_exceeded"),
    (errors.ModelNotFound("no such model"), 503, "clearmaas_api_error", "model_not_found"),
    (errors.UpstreamError("upstream failed"), 502, "upstream_error", "upstream_error"),
    (errors.UpstreamHTTPError("ctx too long", upstream_status=400, upstream_code="context_length_exceeded",
                              param="messages"), 400, "openai_error", "context_length_exceeded"),
    (errors.UpstreamHTTPError("busy", upstream_status=429, retry_after=2), 429, "upstream_error",
     "rate_limit_exceeded"),
    (errors.UpstreamHTTPError("boom", upstream_status=500, family="claude"), 502, "upstream_error", "upstream_error"),
    (errors.UpstreamTimeout("slow"), 502, "upstream_error", "upstream_error"),
    (errors.UpstreamConnectError("refused"), 502, "upstream_error", "upstream_error"),
    (errors.UpstreamProtocolError("garbled"), 502, "upstream_error", "upstream_error"),
    (errors.AllUpstreamsFailed([errors.UpstreamHTTPError("busy", upstream_status=429, retry_after=4)]), 502,
     "upstream_error", "upstream_error"),
    (errors.InternalError("bug"), 500, "clearmaas_api_error", "internal_error"),
]

SDK_ERRORS = {400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
              404: openai.NotFoundError, 429: openai.RateLimitError, 500: openai.InternalServerError,
              502: openai.InternalServerError, 503: openai.InternalServerError}


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def test_every_gateway_error_class_is_covered() -> None:
    covered = {type(error) for error, *_ in CASES}
    abstract = {errors.ClientError}
    assert _all_subclasses(GatewayError) - abstract <= covered


@pytest.mark.parametrize(("error", "status", "type_", "code"), CASES, ids=lambda v: type(v).__name__)
def test_envelope_status_and_headers(error: GatewayError, status: int, type_: str, code: str | None) -> None:
    encoded = encode_error(error)
    assert encoded.status == status
    assert encoded.headers["content-type"] == "application/json"
    assert encoded.headers.get("retry-after") == (None if error.retry_after is None else str(error.retry_after))
    assert orjson.loads(encoded.body) == {
        "error": {"message": error.message, "type": type_, "code": code, "param": error.param}
    }
    assert SURFACE.encode_error(error) == encoded


def test_rate_limits_carry_retry_after() -> None:
    assert encode_error(errors.RateLimited("x", retry_after=7)).headers["retry-after"] == "7"
    assert encode_error(errors.UpstreamHTTPError("x", upstream_status=429)).headers["retry-after"] == "1"
    assert "retry-after" not in encode_error(errors.InvalidRequest("x")).headers


def test_upstream_credentials_failure_is_not_blamed_on_the_client() -> None:
    body = orjson.loads(encode_error(errors.UpstreamHTTPError("sk-abcdefgh bad key", upstream_status=401)).body)
    assert body["error"]["code"] == "upstream_error" and "sk-abcdefgh" not in body["error"]["message"]


@pytest.fixture
def respond() -> Iterator[list[openai.OpenAI]]:
    clients: list[openai.OpenAI] = []
    yield clients
    for client in clients:
        client.close()


@pytest.mark.parametrize(("error", "status", "type_", "code"), CASES, ids=lambda v: type(v).__name__)
def test_the_openai_sdk_raises_its_matching_exception(
    respond: list[openai.OpenAI], error: GatewayError, status: int, type_: str, code: str | None
) -> None:
    encoded = encode_error(error)
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(encoded.status, headers=encoded.headers, content=encoded.body)
    )
    client = openai.OpenAI(api_key="sk-clearmaas-test", base_url="http://gateway.test/v1", max_retries=0,
                           http_client=httpx2.Client(transport=transport))
    respond.append(client)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert type(caught.value) is SDK_ERRORS.get(status, openai.APIStatusError)
    assert caught.value.status_code == status
    assert caught.value.message == f"Error code: {status} - {error.message}"  # the SDK reads error.message
    assert (caught.value.type, caught.value.code, caught.value.param) == (type_, code, error.param)


def test_stream_error_is_one_data_frame_with_the_same_envelope() -> None:
    error = errors.UpstreamTimeout("upstream went quiet")
    frame = encode_stream_error(error)
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n") and frame.count(b"\n") == 2
    assert orjson.loads(frame[len(b"data: "):]) == orjson.loads(encode_error(error).body)
    assert SURFACE.encode_stream_error(error) == frame
