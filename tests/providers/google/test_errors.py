from __future__ import annotations

import orjson

from clearmaas.providers.google import map_error

from .recordings import body


def test_429_recording_retry_info_rounds_up() -> None:
    error = map_error(429, {}, body("google-429-retry-info.json"))
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert error.retry_after == 35  # retryDelay "34.4s"
    assert error.headers == {"retry-after": "35"}
    assert error.message == "You exceeded your current quota, please check your plan."
    assert error.upstream_type == "RESOURCE_EXHAUSTED"
    assert error.retryable


def test_retry_info_wins_over_the_header_and_the_header_is_the_fallback() -> None:
    assert map_error(429, {"Retry-After": "3"}, body("google-429-retry-info.json")).retry_after == 35
    plain = orjson.dumps({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
    assert map_error(429, {"Retry-After": "7"}, plain).retry_after == 7
    assert map_error(429, {}, plain).retry_after == 1  # UpstreamHTTPError's floor for a 429


def test_client_errors_keep_status_and_gemini_family() -> None:
    raw = orjson.dumps(
        {
            "error": {
                "code": 400,
                "message": "* GenerateContentRequest.contents: contents is not specified",
                "status": "INVALID_ARGUMENT",
            }
        }
    )
    error = map_error(400, {}, raw)
    assert error.status == 400 and error.type == "gemini_error" and error.code == "INVALID_ARGUMENT"
    assert error.message == "* GenerateContentRequest.contents: contents is not specified"
    assert not error.retryable


def test_credentials_and_server_errors_become_502() -> None:
    denied = map_error(403, {}, b'{"error":{"code":403,"message":"API key not valid","status":"PERMISSION_DENIED"}}')
    assert denied.status == 502 and denied.message == "The upstream provider rejected the gateway's credentials."
    unavailable = map_error(
        503, {}, b'{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}'
    )
    assert unavailable.status == 502 and unavailable.retryable


def test_array_wrapped_and_non_json_bodies() -> None:
    wrapped = map_error(404, {}, b'[{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}]')
    assert wrapped.status == 404 and wrapped.upstream_type == "NOT_FOUND"
    html = map_error(502, {}, b"<html>Bad Gateway</html>")
    assert html.status == 502 and html.upstream_status == 502
    empty = map_error(500, {}, b"")
    assert "500" in empty.message


def test_keys_and_urls_are_redacted_from_messages() -> None:
    message = "key=AIzaSyA0123456789abcdef at https://generativelanguage.googleapis.com/x"
    raw = orjson.dumps({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})
    message = map_error(400, {}, raw).message
    assert "AIza" not in message and "https://" not in message
