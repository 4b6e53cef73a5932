"""The admin HTTP API (`/admin/v1/...`): workspaces, members, keys, credits, prices, routers and usage, behind
the operator's admin token; and the gateway's OpenAPI document."""

from clearmaas.admin.auth import AdminGuard
from clearmaas.admin.openapi import openapi_document, serve_openapi
from clearmaas.admin.routes import ENDPOINTS, admin_routes

__all__ = ["ENDPOINTS", "AdminGuard", "admin_routes", "openapi_document", "serve_openapi"]
