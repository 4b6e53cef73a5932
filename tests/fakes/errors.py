"""Each provider's real error bodies, statuses and headers, as the fake upstream returns them.

Shapes come from the recordings (OpenAI 400, Gemini 429) and from provider docs and captured traffic:
OpenAI/DeepSeek `{"error":{message,type,param,code}}`; Qwen adds `request_id`; Kimi `{"error":{message,type}}`;
xAI `{"code":<gRPC status text>,"error":<message>}` (and a bad key is HTTP 400, not 401, see
continuedev/continue#10778); MiniMax `{"type":"error","error":{type,message,http_code},"request_id"}` with its
numeric code in the message (platform.minimax.io/docs/api-reference/errorcode); Anthropic
`{"type":"error","error":{type,message},"request_id"}`; Gemini `{"error":{code,message,status,details?}}`
(a bad key is 400 API_KEY_INVALID, a missing one 403 PERMISSION_DENIED).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.fakes.replies import Reply, json_reply, random_id, sse_data, sse_event

__all__ = [
    "FIXTURES",
    "INVALID_REQUEST_MESSAGES",
    "RETRY_AFTER_SECONDS",
    "auth_error",
    "error_reply",
    "minimax_base_resp",
    "stream_error_frame",
]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fake-upstream"
RETRY_AFTER_SECONDS = 7
_FAULT_TEXT = "fake-upstream rejected this request ([fault:400])"
_OPENAI_400: dict[str, Any] = orjson.loads(
    (FIXTURES / "openai-chat" / "reasoning-model-legacy-parameter-error.json").read_bytes()
)
_GOOGLE_429: dict[str, Any] = orjson.loads((FIXTURES / "google" / "google-429-retry-info.json").read_bytes())

INVALID_REQUEST_MESSAGES: dict[str, str] = {
    "openai": _OPENAI_400["error"]["message"],
    "anthropic": f"messages.0.content: {_FAULT_TEXT}",
    "google": f"Invalid JSON payload received. {_FAULT_TEXT}",
    "deepseek": f"Invalid request: {_FAULT_TEXT}",
    "grok": f"Invalid request content: {_FAULT_TEXT}",
    "qwen": f"<400> InternalError.Algo.InvalidParameter: {_FAULT_TEXT}",
    "kimi": f"Invalid request: {_FAULT_TEXT}",
    "minimax": f"invalid params, {_FAULT_TEXT} (2013)",
}

# status -> (type, code, message); {model} and {key} are filled in.
_Table = dict[int, tuple[str, str | None, str]]
_OPENAI: _Table = {
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for {model} in organization org-fakeupstream on requests per min (RPM): Limit 500, "
          "Used 500, Requested 1. Please try again in 7s. Visit https://platform.openai.com/account/rate-limits "
          "to learn more."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
}
_DEEPSEEK: _Table = {
    400: ("invalid_request_error", "invalid_request_error", INVALID_REQUEST_MESSAGES["deepseek"]),
    401: ("authentication_error", "invalid_request_error", "Authentication Fails, Your api key: {key} is invalid"),
    402: ("unknown_error", "invalid_request_error", "Insufficient Balance"),
    429: ("rate_limit_error", "rate_limit_error", "Rate Limit Reached"),
    500: ("server_error", "server_error", "Server Error"),
    503: ("server_error", "server_error", "Server Overloaded"),
}
_QWEN: _Table = {
    400: ("invalid_request_error", "invalid_parameter_error", INVALID_REQUEST_MESSAGES["qwen"]),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided. For details, see: https://help.aliyun.com/zh/model-studio/error-code#apikey-error"),
    404: ("invalid_request_error", "model_not_found",
          "The model `{model}` does not exist or you do not have access to it."),
    429: ("limit_requests", "limit_requests",
          "You have exceeded your current request limit. For details, see: "
          "https://help.aliyun.com/zh/model-studio/error-code#rate-limit"),
    500: ("internal_error", "internal_error",
          "An internal error has occured, please try again later or contact service support."),
    503: ("service_unavailable_error", "ServiceUnavailable",
          "<503> InternalError.Algo: The service is temporarily unavailable."),
}
_KIMI: _Table = {
    400: ("invalid_request_error", None, INVALID_REQUEST_MESSAGES["kimi"]),
    401: ("invalid_authentication_error", None, "Invalid Authentication"),
    403: ("exceeded_current_quota_error", None,
          "Your account is suspended, please check your plan and billing details"),
    404: ("resource_not_found_error", None, "Not found the model {model} or Permission denied"),
    429: ("rate_limit_reached_error", None,
          "Your account org-fakeupstream<ak-fakeupstream> request reached organization max RPM: 3, please try again "
          "after 7 seconds"),
    500: ("server_error", None, "Internal server error, please try again later"),
    503: ("engine_overloaded_error", None, "The engine is currently overloaded, please try again later"),
}
_GROK: _Table = {  # type = xAI's gRPC status text, which it sends as `code`
    400: ("Client specified an invalid argument", None, INVALID_REQUEST_MESSAGES["grok"]),
    401: ("Client specified an invalid argument", None,
          "Incorrect API key provided: {key}. You can obtain an API key from https://console.x.ai."),
    404: ("Some requested entity was not found", None,
          "The model {model} does not exist or your team does not have access to it."),
    429: ("Some resource has been exhausted", None,
          "Too many requests: your team has reached the requests-per-minute limit of {model}. "
          "Please retry in 7 seconds."),
    500: ("Internal error", None, "Service temporarily unavailable. The model did not respond to this request."),
    503: ("The service is currently unavailable", None, "The model is overloaded. Please try again later."),
}
_MINIMAX: _Table = {
    400: ("bad_request_error", None, INVALID_REQUEST_MESSAGES["minimax"]),
    401: ("authorized_error", None, "invalid api key (2049)"),
    429: ("rate_limit_error", None, "rate limit exceeded(RPM), please retry later (1002)"),
    500: ("server_error", None, "unknown error, 520 (1000)"),
    503: ("server_error", None, "当前服务集群负载较高，请稍后重试，感谢您的耐心等待。 (2064)"),  # noqa: RUF001 (verbatim)
}
_ANTHROPIC: _Table = {
    400: ("invalid_request_error", None, INVALID_REQUEST_MESSAGES["anthropic"]),
    401: ("authentication_error", None, "invalid x-api-key"),
    403: ("permission_error", None, "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", None, "model: {model}"),
    413: ("request_too_large", None, "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", None,
          "This request would exceed the rate limit for your organization of 50 requests per minute. For details, "
          "refer to: https://docs.claude.com/en/api/rate-limits."),
    500: ("api_error", None, "Internal server error"),
    503: ("api_error", None, "Service unavailable"),
    529: ("overloaded_error", None, "Overloaded"),
}
_GOOGLE: _Table = {
    400: ("INVALID_ARGUMENT", None, INVALID_REQUEST_MESSAGES["google"]),
    401: ("INVALID_ARGUMENT", None, "API key not valid. Please pass a valid API key."),
    403: ("PERMISSION_DENIED", None,
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or "
          "other form of API consumer identity to call this API."),
    404: ("NOT_FOUND", None,
          "models/{model} is not found for API version v1beta, or is not supported for generateContent. Call "
          "ListModels to see the list of available models and their supported methods."),
    500: ("INTERNAL", None,
          "An internal error has occurred. Please retry or report in "
          "https://developers.generativeai.google/guide/troubleshooting"),
    503: ("UNAVAILABLE", None, "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", None, "Deadline expired before operation could complete."),
}

_Envelope = Callable[[int, str, str | None, str], Any]


def _openai_envelope(status: int, kind: str, code: str | None, message: str) -> Any:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _qwen_envelope(status: int, kind: str, code: str | None, message: str) -> Any:
    return {**_openai_envelope(status, kind, code, message), "request_id": str(uuid.uuid4())}


def _kimi_envelope(status: int, kind: str, code: str | None, message: str) -> Any:
    return {"error": {"message": message, "type": kind}}


def _grok_envelope(status: int, kind: str, code: str | None, message: str) -> Any:
    return {"code": kind, "error": message}


def _minimax_envelope(status: int, kind: str, code: str | None, message: str) -> Any:
    error = {"type": kind, "message": message, "http_code": str(status)}
    return {"type": "error", "error": error, "request_id": uuid.uuid4().hex}


def _anthropic_envelope(status: int, kind: str, code: str | None, message: str) -> Any:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": random_id("req_011")}


def _google_envelope(status: int, kind: str, code: str | None, message: str) -> Any:
    return {"error": {"code": status, "message": message, "status": kind}}


_PROVIDERS: dict[str, tuple[_Table, _Envelope, str]] = {  # table, envelope, type for unlisted statuses
    "openai": (_OPENAI, _openai_envelope, "server_error"),
    "deepseek": (_DEEPSEEK, _openai_envelope, "server_error"),
    "qwen": (_QWEN, _qwen_envelope, "internal_error"),
    "kimi": (_KIMI, _kimi_envelope, "server_error"),
    "grok": (_GROK, _grok_envelope, "Internal error"),
    "minimax": (_MINIMAX, _minimax_envelope, "server_error"),
    "anthropic": (_ANTHROPIC, _anthropic_envelope, "api_error"),
    "google": (_GOOGLE, _google_envelope, "INTERNAL"),
}
_MISSING_KEY: dict[str, tuple[int, str]] = {
    "openai": (401, "You didn't provide an API key. You need to provide your API key in an Authorization header "
                    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
                    "https://platform.openai.com/account/api-keys."),
    "anthropic": (401, "x-api-key header is required"),
    "minimax": (401, "login fail: Please carry the API secret key in the 'Authorization' field of the request "
                     "header (1004)"),
}
# The error an overloaded provider sends mid-stream, when it is not its plain 500.
_IN_BAND = {"google": (503, _GOOGLE[503]), "kimi": (503, _KIMI[503]), "minimax": (500, _MINIMAX[503])}
# Statuses a bad key really gets, where it is not 401.
_AUTH_STATUS = {"grok": 400, "google": 400}
_MINIMAX_CODES = {
    1000: "unknown error", 1001: "request timeout", 1002: "rate limit exceeded(RPM)", 1004: "login fail",
    1008: "insufficient balance", 1013: "internal service error", 1027: "output new_sensitive",
    1039: "token limit", 2013: "invalid params",
}


def error_reply(provider: str, status: int, *, model: str = "", key: str = "") -> Reply:
    """The provider's real error response for `status` (with `retry-after: 7` on 429)."""
    headers = {"retry-after": str(RETRY_AFTER_SECONDS)} if status == 429 else {}
    if provider == "openai" and status == 400:
        return json_reply(400, _OPENAI_400)
    if provider == "google" and status == 429:
        body = copy.deepcopy(_GOOGLE_429)
        for detail in body["error"]["details"]:
            if detail.get("@type", "").endswith("RetryInfo"):
                detail["retryDelay"] = f"{RETRY_AFTER_SECONDS}s"
        return json_reply(429, body, headers)
    table, envelope, fallback = _PROVIDERS[provider]
    kind, code, message = table.get(status, (fallback, None, f"fake-upstream error {status}"))
    body = envelope(status, kind, code, message.format(model=model, key=_mask(key)))
    if provider == "google" and status == 401:
        status = body["error"]["code"] = 400
        body["error"]["details"] = [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
            "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"},
        }]
    return json_reply(_AUTH_STATUS.get(provider, status) if status == 401 else status, body, headers)


def auth_error(provider: str, *, key: str | None) -> Reply:
    """What the provider answers to a missing (`key=None`) or wrong key."""
    if key is None and provider == "google":
        return error_reply(provider, 403)
    if key is None and provider in _MISSING_KEY:
        status, message = _MISSING_KEY[provider]
        table, envelope, _ = _PROVIDERS[provider]
        kind, code, _ = table[401]
        return json_reply(status, envelope(status, kind, None if provider == "openai" else code, message))
    return error_reply(provider, 401, key=key or "")


def stream_error_frame(provider: str) -> bytes:
    """The in-band error a provider sends inside an already-200 stream: Anthropic's `event: error` overload, or
    the provider's error envelope as a `data:` frame (MiniMax's cluster-overload 2064 keeps http_code 500)."""
    if provider == "anthropic":
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return sse_event("error", error)
    table, envelope, _ = _PROVIDERS[provider]
    status, (kind, code, message) = _IN_BAND.get(provider, (500, table[500]))
    return sse_data(envelope(status, kind, code, message), crlf=provider == "google")


def minimax_base_resp(code: int, *, model: str) -> dict[str, Any]:
    """MiniMax's HTTP-200 failure: an empty completion whose `base_resp.status_code` carries the error."""
    return {
        "id": uuid.uuid4().hex, "choices": None, "created": 0, "model": model, "object": "chat.completion",
        "usage": {"total_tokens": 0, "total_characters": 0}, "input_sensitive": False, "output_sensitive": False,
        "input_sensitive_type": 0, "output_sensitive_type": 0, "output_sensitive_int": 0,
        "base_resp": {"status_code": code, "status_msg": _MINIMAX_CODES.get(code, "unknown error")},
    }


def _mask(key: str) -> str:
    return f"{key[:3]}***{key[-2:]}" if len(key) > 6 else "***"
