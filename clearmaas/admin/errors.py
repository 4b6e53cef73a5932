"""The admin API's refusals, and the translation of the repositories' own exceptions into them. They render in
the same OpenAI-style envelope as every gateway error (`{"error": {"message", "type", "code", "param"}}`), but
they are not `GatewayError`s: those are the public API's protocol errors, which every surface must encode.

    AdminError
      AdminAuthFailed     401 invalid_admin_token     missing or wrong admin token, or a client key was sent
      AdminDisabled       404 admin_api_disabled      no admin_token is configured
      ResourceNotFound    404 <kind>_not_found        no such workspace, member, key, router, model or override
      Conflict            409 <reason>                exists already, key revoked, last owner

A bad body field or query parameter is the gateway's own `InvalidRequest` (400 bad_request_body).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from clearmaas.accounts.errors import AccountError, InvalidName, KeyNotFound, WorkspaceExists, WorkspaceNotFound
from clearmaas.errors import GatewayError, InvalidRequest
from clearmaas.routing.routers import InvalidRouter, RouterExists, RouterNotFound

__all__ = ["AdminAuthFailed", "AdminDisabled", "AdminError", "Conflict", "ResourceNotFound", "translate"]


class AdminError(Exception):
    """Base: the admin API refused the request; `status`, `code` and `message` are what the client sees."""

    status: int = 400
    type: str = "clearmaas_api_error"
    code: str = "bad_request_body"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str]:
        return {}


class AdminAuthFailed(AdminError):
    """The admin token is missing or wrong, or a client `sk-clearmaas-` key was offered instead."""

    status = 401
    code = "invalid_admin_token"

    @property
    def headers(self) -> dict[str, str]:
        return {"www-authenticate": 'Bearer realm="clearmaas-admin"'}


class AdminDisabled(AdminError):
    """No admin token is configured, so the admin API does not exist on this gateway."""

    status = 404
    code = "admin_api_disabled"


class ResourceNotFound(AdminError):
    """The workspace, member, key, router, model or price override named in the path does not exist."""

    status = 404
    code = "not_found"


class Conflict(AdminError):
    """The change contradicts what is stored: a duplicate, a revoked key, the last owner."""

    status = 409
    code = "conflict"


def translate(error: AccountError | IntegrityError) -> AdminError | GatewayError:
    """A repository's refusal as the admin error a client should see."""
    message = str(error)
    if isinstance(error, IntegrityError):
        # Another writer got there between our check and our insert (a duplicate), or a row went away.
        return Conflict("The change conflicts with a concurrent change; retry it.", code="conflict")
    if isinstance(error, WorkspaceNotFound):
        return ResourceNotFound(message, code="workspace_not_found")
    if isinstance(error, KeyNotFound):
        return ResourceNotFound(message, code="key_not_found")
    if isinstance(error, RouterNotFound):
        return ResourceNotFound(message, code="router_not_found")
    if isinstance(error, WorkspaceExists):
        return Conflict(message, code="workspace_exists", param="name")
    if isinstance(error, RouterExists):
        return Conflict(message, code="router_exists", param="name")
    if isinstance(error, InvalidName):
        return InvalidRequest(message, param="name")
    if isinstance(error, InvalidRouter):
        return InvalidRequest(message)
    return InvalidRequest(message)
