"""The admin API's route table: every admin endpoint under `/admin/v1`, in one tuple (the order Starlette
matches in, and the order of the OpenAPI document), bound behind the admin token."""

from __future__ import annotations

from typing import Final

from starlette.routing import Route

from clearmaas.admin import credits, keys, members, prices, routers, usage, workspaces
from clearmaas.admin.auth import AdminGuard
from clearmaas.admin.endpoint import Endpoint, bind
from clearmaas.settings import Settings

__all__ = ["ENDPOINTS", "admin_routes"]

ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    *workspaces.ENDPOINTS,
    *members.ENDPOINTS,
    *keys.ENDPOINTS,
    *credits.ENDPOINTS,
    *prices.ENDPOINTS,
    *routers.ENDPOINTS,
    *usage.ENDPOINTS,
)


def admin_routes(settings: Settings) -> list[Route]:
    """The routes, guarded by the settings' admin token (raises ConfigError for an unacceptable token).
    Without a token they are still routed, and answer 404 `admin_api_disabled`."""
    guard = AdminGuard.from_settings(settings)
    return [bind(endpoint, guard) for endpoint in ENDPOINTS]
