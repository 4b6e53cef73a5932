"""One admin endpoint, declared once: its method and path, its handler, and what the OpenAPI document says about
it (request and response schemas, success status, query parameters, errors). `routes.py` turns the declarations
into Starlette routes and `openapi.py` into the spec, so the two cannot drift apart.

The HTTP binding is here too: check the admin token, hand the handler an `AdminCall`, and encode its result as
JSON, or the refusal in the OpenAI-style error envelope. Handlers never see a request object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Final, Literal, ParamSpec, TypeVar

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clearmaas.accounts.errors import AccountError
from clearmaas.admin.auth import AdminGuard
from clearmaas.admin.errors import AdminError, translate
from clearmaas.admin.fields import Body, Query, parse_body
from clearmaas.errors import GatewayError
from clearmaas.relay.gateway import Gateway
from clearmaas.settings import Settings
from clearmaas.store.database import create_engine_for
from clearmaas.surfaces.openai_chat.errors import encode_error
from clearmaas.web.responses import json_response

__all__ = ["AdminCall", "Endpoint", "Handler", "Param", "bind"]

P = ParamSpec("P")
T = TypeVar("T")

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
# Admin answers carry balances and, once, a raw key: no cache anywhere may keep them.
_NO_STORE: Final = {"cache-control": "no-store"}


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter, as the OpenAPI document describes it."""

    name: str
    description: str
    type: Literal["string", "integer"] = "string"
    format: str | None = None


class AdminCall:
    """What a handler may use: the path parameters, the body and query, the gateway and its database."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.gateway: Gateway = request.app.state.gateway
        self.query = Query(request.query_params)

    @property
    def settings(self) -> Settings:
        return self.gateway.settings

    @property
    def engine(self) -> Engine:
        if self.gateway.engine is not None:
            return self.gateway.engine
        # A gateway assembled by hand (tests, embedding) without an engine: the admin API opens its own.
        state = self._request.app.state
        engine: Engine | None = getattr(state, "admin_engine", None)
        if engine is None:
            engine = state.admin_engine = create_engine_for(self.settings.resolved_database_url)
        return engine

    def path(self, name: str) -> str:
        return str(self._request.path_params[name])

    async def body(self, *, allowed: Collection[str]) -> Body:
        return parse_body(await self._request.body(), allowed=allowed)

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a synchronous repository function off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)


Handler = Callable[[AdminCall], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An admin operation. `handler.__name__` is its operationId; `status` 204 means no body."""

    method: Method
    path: str
    handler: Handler
    summary: str
    tag: str
    request: str | None = None  # the component schema of the JSON body
    response: str | None = None  # the component schema of the success body
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[Param, ...] = ()
    description: str | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


def _error(error: AdminError | GatewayError) -> Response:
    """The refusal in the OpenAI-style envelope every gateway error uses."""
    if isinstance(error, GatewayError):
        encoded = encode_error(error)
        return json_response(encoded.body, status=encoded.status, headers={**encoded.headers, **_NO_STORE})
    body = {"error": {"message": error.message, "type": error.type, "code": error.code, "param": error.param}}
    return json_response(orjson.dumps(body), status=error.status, headers={**error.headers, **_NO_STORE})


def bind(endpoint: Endpoint, guard: AdminGuard) -> Route:
    """The Starlette route serving `endpoint` behind `guard`."""

    async def serve(request: Request) -> Response:
        try:
            guard.check(request.headers)
            result = await endpoint.handler(AdminCall(request))
        except (AdminError, GatewayError) as exc:
            return _error(exc)
        except (AccountError, IntegrityError) as exc:
            return _error(translate(exc))
        if endpoint.status == 204:
            return Response(status_code=204, headers=_NO_STORE)
        return json_response(orjson.dumps(result), status=endpoint.status, headers=_NO_STORE)

    serve.__name__ = endpoint.operation_id
    return Route(endpoint.path, serve, methods=[endpoint.method], name=endpoint.operation_id)
