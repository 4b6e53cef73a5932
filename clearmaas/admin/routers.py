"""Admin endpoints for a workspace's named routers `clearmaas/{name}`, over the routing package's repository:
list, create, show, change and delete. Running gateways pick a change up within about a second (their router
caches watch `updated_at`)."""

from __future__ import annotations

from typing import TypedDict

from clearmaas.admin.endpoint import AdminCall, Endpoint
from clearmaas.admin.fields import Body
from clearmaas.errors import InvalidRequest, ModelNotFound
from clearmaas.routing.names import ROUTER_PREFIX, RouterRef
from clearmaas.routing.routers import (
    InvalidRouter,
    ModelCheck,
    RouterDef,
    create_router,
    delete_router,
    get_router,
    list_routers,
    update_router,
)
from clearmaas.routing.strategies import STRATEGIES

__all__ = ["ENDPOINTS", "RouterView"]

_FIELDS = ("name", "patterns", "strategy", "default_model", "enabled")


class RouterView(TypedDict):
    name: str
    model: str
    patterns: list[str]
    strategy: str
    default_model: str | None
    enabled: bool
    builtin: bool


def _view(router: RouterDef) -> RouterView:
    return RouterView(
        name=router.name,
        model=ROUTER_PREFIX + router.name,
        patterns=list(router.patterns),
        strategy=router.strategy,
        default_model=router.default_model,
        enabled=router.enabled,
        builtin=router.builtin,
    )


def _model_check(call: AdminCall) -> ModelCheck:
    """Refuse a default model this gateway's catalogue (with the config's aliases) cannot resolve."""
    resolver = call.gateway.routing.resolver

    def check(model: str) -> None:
        try:
            found = resolver.resolve(model)
        except ModelNotFound as exc:
            raise InvalidRouter(f"default model {model!r}: {exc.message}") from None
        if isinstance(found, RouterRef):
            raise InvalidRouter(f"default model {model!r} names a router, not a model")

    return check


def _patterns(body: Body) -> list[str] | None:
    """`patterns` as an array of globs, or one comma- or newline-separated string (as the dashboard form sends)."""
    value = body.raw("patterns")
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidRequest("'patterns' must be an array of model globs or one comma-separated string.", param="patterns")


async def list_routers_(call: AdminCall) -> dict[str, list[RouterView]]:
    found = await call.run(list_routers, call.engine, call.path("workspace"))
    return {"data": [_view(router) for router in found]}


async def create_router_(call: AdminCall) -> RouterView:
    body = await call.body(allowed=_FIELDS)
    name = body.text("name", required=True, max_length=50)
    assert name is not None
    enabled = body.flag("enabled")
    router = await call.run(
        create_router,
        call.engine,
        call.path("workspace"),
        name,
        patterns=_patterns(body) or (),
        strategy=body.choice("strategy", STRATEGIES) or "balanced",
        default_model=body.text("default_model"),
        enabled=True if enabled is None else enabled,
        check_model=_model_check(call),
    )
    return _view(router)


async def get_router_(call: AdminCall) -> RouterView:
    return _view(await call.run(get_router, call.engine, call.path("workspace"), call.path("name")))


async def update_router_(call: AdminCall) -> RouterView:
    body = await call.body(allowed=_FIELDS[1:])
    patterns = _patterns(body)
    if body.has("patterns") and patterns is None:
        patterns = []  # null: every model
    default_model = body.text("default_model")
    if body.has("default_model") and default_model is None:
        default_model = ""  # null removes it; `update_router` reads "" as "remove" and None as "unchanged"
    router = await call.run(
        update_router,
        call.engine,
        call.path("workspace"),
        call.path("name"),
        patterns=patterns,
        strategy=body.choice("strategy", STRATEGIES),
        default_model=default_model,
        enabled=body.flag("enabled"),
        check_model=_model_check(call),
    )
    return _view(router)


async def delete_router_(call: AdminCall) -> None:
    await call.run(delete_router, call.engine, call.path("workspace"), call.path("name"))


_TAG = "Routers"
_BASE = "/admin/v1/workspaces/{workspace}/routers"
_ONE = f"{_BASE}/{{name}}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        _BASE,
        list_routers_,
        "List a workspace's named routers (the implicit `auto` included)",
        _TAG,
        response="RouterList",
        errors=(404,),
    ),
    Endpoint(
        "POST",
        _BASE,
        create_router_,
        "Create a named router `clearmaas/{name}`",
        _TAG,
        request="RouterCreate",
        response="Router",
        status=201,
        errors=(400, 404, 409),
    ),
    Endpoint("GET", _ONE, get_router_, "Show a named router", _TAG, response="Router", errors=(404,)),
    Endpoint(
        "PATCH",
        _ONE,
        update_router_,
        "Change a named router",
        _TAG,
        request="RouterUpdate",
        response="Router",
        errors=(400, 404),
        description="Absent fields are unchanged; `default_model: null` removes the default model, "
        "`patterns: null` or `[]` matches every model. Changing the implicit `auto` stores it.",
    ),
    Endpoint("DELETE", _ONE, delete_router_, "Delete a named router", _TAG, status=204, errors=(404,)),
)
