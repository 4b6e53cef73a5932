"""build_app(settings): the ASGI application. Every route, and the error handling, on one screen."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clearmaas.admin import admin_routes, serve_openapi
from clearmaas.errors import GatewayError, InternalError, RouteNotFound
from clearmaas.relay.gateway import Gateway
from clearmaas.settings import Settings
from clearmaas.surfaces import anthropic_messages, openai_chat
from clearmaas.surfaces.anthropic_messages.handlers import count_tokens, create_message
from clearmaas.surfaces.models.handlers import get_model, list_models
from clearmaas.surfaces.openai_chat.handlers import create_chat_completion
from clearmaas.web.responses import json_response

__all__ = ["build_app"]

log = logging.getLogger("clearmaas.web")


async def health(request: Request) -> Response:
    return json_response(b'{"status":"ok"}')


def _render(request: Request, error: GatewayError) -> Response:
    """An error in the envelope of the protocol the path belongs to."""
    surface = anthropic_messages.SURFACE if request.url.path.startswith("/v1/messages") else openai_chat.SURFACE
    encoded = surface.encode_error(error)
    return json_response(encoded.body, status=encoded.status, headers=encoded.headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error: GatewayError = RouteNotFound(f"Method {request.method} is not allowed on {request.url.path}.")
        error.status = 405
        return _render(request, error)
    return _render(request, RouteNotFound(f"No endpoint at {request.method} {request.url.path}."))


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _render(request, InternalError("The gateway failed to handle the request."))


def build_app(settings: Settings, *, gateway: Gateway | None = None) -> Starlette:
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/chat/completions", create_chat_completion, methods=["POST"]),
        Route("/v1/messages", create_message, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
        Route("/openapi.json", serve_openapi, methods=["GET"]),
        *admin_routes(settings),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.gateway = gateway or Gateway.from_settings(settings)
        await app.state.gateway.start()
        try:
            yield
        finally:
            await app.state.gateway.stop()

    return Starlette(
        routes=routes,
        # Error handling is outermost: Starlette puts the Exception handler in ServerErrorMiddleware, around
        # everything else, so no traceback ever reaches a client.
        exception_handlers={HTTPException: _http_exception, Exception: _unhandled},
        lifespan=lifespan,
    )
