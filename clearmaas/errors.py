"""Every error the gateway can give a client, as one hierarchy. Each surface renders them in its own wire
envelope (`surfaces/*/errors.py`); nothing here knows a wire format.

    GatewayError
      ClientError
        InvalidRequest          400 bad_request_body        the body or a field is wrong
        ModelPriceError         400 model_price_error       the model has no price
        NotImplementedForModel  400 api_not_implemented     the model or its provider cannot do what was asked
        AuthenticationFailed    401 invalid_api_key         missing, unknown, revoked or expired key
        InsufficientQuota       403 insufficient_user_quota balance or key credit cannot cover the request
        PermissionDenied        403 model_not_allowed       the key may not use this model
        RouteNotFound           404 not_found               no such endpoint
        RequestTooLarge         413 request_too_large       body over the configured limit
        RateLimited             429 rate_limit_exceeded     a workspace limit; carries Retry-After
        ModelNotFound           503 model_not_found         no such model for this account
      UpstreamError                                         the provider failed (type upstream_error)
        UpstreamHTTPError       429 / 502 / provider 4xx    the provider answered with an error status
        UpstreamTimeout         502
        UpstreamConnectError    502
        UpstreamProtocolError   502                         the provider's answer could not be understood
        AllUpstreamsFailed      502                         every entry of a fallback chain failed
      InternalError             500

Messages never contain upstream URLs or keys: `UpstreamHTTPError` messages come from the provider's error
body, scrubbed by `redact`.
"""

from __future__ import annotations

import re

__all__ = [
    "AllUpstreamsFailed",
    "AuthenticationFailed",
    "ClientError",
    "GatewayError",
    "InsufficientQuota",
    "InternalError",
    "InvalidRequest",
    "ModelNotFound",
    "ModelPriceError",
    "NotImplementedForModel",
    "PermissionDenied",
    "RateLimited",
    "RequestTooLarge",
    "RouteNotFound",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamHTTPError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "redact",
]


class GatewayError(Exception):
    """Base of every error a client can see."""

    status: int = 500
    type: str = "clearmaas_api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after is not None:
            return {"retry-after": str(self.retry_after)}
        return {}

    @property
    def retryable(self) -> bool:
        """Whether the next entry of a fallback chain (or a retry) may succeed where this failed."""
        return False


class ClientError(GatewayError):
    """The request cannot be served as sent; retrying it unchanged will not help."""


class InvalidRequest(ClientError):
    """The body is not valid JSON, or a field is missing or wrong; `param` names it."""

    status = 400
    code = "bad_request_body"


class ModelPriceError(ClientError):
    """The model exists but has no price, so it cannot be billed."""

    status = 400
    code = "model_price_error"


class NotImplementedForModel(ClientError):
    """The chosen model or its provider cannot do what the request asks (an endpoint, a feature)."""

    status = 400
    code = "api_not_implemented"


class AuthenticationFailed(ClientError):
    """The API key is missing, unknown, revoked or expired."""

    status = 401
    code = "invalid_api_key"


class InsufficientQuota(ClientError):
    """The workspace balance or the key's credit cannot cover the request."""

    status = 403
    code = "insufficient_user_quota"


class PermissionDenied(ClientError):
    """The key may not use this model."""

    status = 403
    code = "model_not_allowed"


class RouteNotFound(ClientError):
    """No endpoint at this path and method."""

    status = 404
    code = "not_found"


class RequestTooLarge(ClientError):
    """The body is larger than the configured limit."""

    status = 413
    code = "request_too_large"


class RateLimited(ClientError):
    """A workspace rate limit was hit; `retry_after` says how many seconds to wait."""

    status = 429
    code = "rate_limit_exceeded"


class ModelNotFound(ClientError):
    """No such model for this account, or its provider is not configured (503, as the docs say)."""

    status = 503
    code = "model_not_found"


class UpstreamError(GatewayError):
    """The provider failed."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    @property
    def retryable(self) -> bool:
        return True


class UpstreamHTTPError(UpstreamError):
    """The provider answered with an error status.

    429 stays 429 (with Retry-After); 5xx becomes 502; a provider 401/403 is our configuration's fault,
    not the client's, so it becomes 502 too; other 4xx keep their status and the provider's message, with
    `type` naming the provider's protocol family (openai_error, claude_error, gemini_error).
    """

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        family: str = "openai",
        upstream_type: str | None = None,
        upstream_code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(redact(message), param=param, retry_after=retry_after)
        self.upstream_status = upstream_status
        self.upstream_type = upstream_type
        self.upstream_code = upstream_code
        if upstream_status == 429:
            self.status = 429
            self.code = "rate_limit_exceeded"
            if self.retry_after is None:
                self.retry_after = 1
        elif upstream_status >= 500 or upstream_status in (401, 403, 407, 408):
            self.status = 502
            self.code = "upstream_error"
            if upstream_status in (401, 403, 407):
                self.message = "The upstream provider rejected the gateway's credentials."
        else:
            self.status = upstream_status
            self.type = f"{family}_error"
            self.code = upstream_code or upstream_type

    @property
    def retryable(self) -> bool:
        return self.upstream_status == 429 or self.upstream_status >= 500 or self.upstream_status == 408


class UpstreamTimeout(UpstreamError):
    """The provider did not answer in time."""


class UpstreamConnectError(UpstreamError):
    """The provider could not be reached, or the connection broke."""


class UpstreamProtocolError(UpstreamError):
    """The provider's answer could not be understood."""


class AllUpstreamsFailed(UpstreamError):
    """Every entry of a fallback chain failed; `errors` holds each failure in order."""

    def __init__(self, errors: list[GatewayError]) -> None:
        super().__init__("All upstream providers failed.")
        self.errors = errors
        last = errors[-1] if errors else None
        if last is not None and last.status == 429:
            self.retry_after = last.retry_after


class InternalError(GatewayError):
    """A bug in the gateway."""

    status = 500
    code = "internal_error"


_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{10,}|Bearer\s+[A-Za-z0-9._\-]+|https?://[^\s\"']+|key=[^\s&\"']+)"
)


def redact(text: str) -> str:
    """Remove anything that looks like a key or an upstream URL from a provider's message."""
    return _SECRET.sub("[redacted]", text)
