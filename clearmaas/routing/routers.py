"""Named routers `clearmaas/{name}` (routing__named-routers.md): their definition and validation, the repository
functions over the `routers` table, and the in-process `RouterCache` the request path reads.

Every workspace has `clearmaas/auto` (routing__auto-router.md: empty pattern, cheapest) without a stored row; a
stored `auto` row overrides it. Deleting a router keeps its row as a tombstone (strategy `deleted`), so that a
cache refreshing only rows changed since its last pass sees the deletion, and so that a deleted `auto` stays
deleted. Choosing among models is `strategies.py`'s job; nothing here knows the catalogue beyond an optional check.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update
from sqlalchemy.exc import IntegrityError

from clearmaas.accounts.errors import AccountError, WorkspaceNotFound
from clearmaas.routing.strategies import DEFAULT_STRATEGY, STRATEGIES, Strategy
from clearmaas.store.refresh import RefreshLoop
from clearmaas.store.schema import new_id, routers, utc_now, workspaces

__all__ = [
    "AUTO_ROUTER",
    "RESERVED_NAME",
    "InvalidRouter",
    "RouterCache",
    "RouterDef",
    "RouterError",
    "RouterExists",
    "RouterNotFound",
    "create_router",
    "delete_router",
    "get_router",
    "list_routers",
    "load_routers",
    "parse_patterns",
    "update_router",
    "validate_name",
]

log = logging.getLogger("clearmaas.routing")

_NAME = re.compile(r"[a-z0-9_-]{1,50}")
RESERVED_NAME = "clearmaas"
_TOMBSTONE = "deleted"
_PATTERN_SPLIT = re.compile(r"[,\r\n]+")
_MAX_PATTERNS = 100
_MAX_PATTERN_LENGTH = 200
_MAX_MODEL_LENGTH = 200


class RouterError(AccountError):
    """A router operation was refused; `str(error)` says why (an operator's error, like a workspace's)."""


class InvalidRouter(RouterError):
    """A router name, pattern, strategy or default model is not acceptable."""


class RouterNotFound(RouterError):
    """The workspace has no router by that name."""


class RouterExists(RouterError):
    """The workspace already has a router by that name."""


@dataclass(frozen=True, slots=True)
class RouterDef:
    """One router. `patterns` are globs over catalogue ids, matched case-insensitively; empty matches every model.
    `builtin` marks the implicit `auto` of a workspace that stored none."""

    name: str
    patterns: tuple[str, ...] = ()
    strategy: Strategy = DEFAULT_STRATEGY
    default_model: str | None = None
    enabled: bool = True
    builtin: bool = False

    def matches(self, model_id: str) -> bool:
        if not self.patterns:
            return True
        folded = model_id.casefold()
        return any(fnmatchcase(folded, pattern.casefold()) for pattern in self.patterns)


AUTO_ROUTER = RouterDef(name="auto", strategy="cheapest", builtin=True)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRouter(f"invalid router name {name!r}: use 1 to 50 lowercase letters, digits, '_' or '-'")
    if name == RESERVED_NAME:
        raise InvalidRouter(f"the router name {RESERVED_NAME!r} is reserved")
    return name


def parse_patterns(value: str | Sequence[str]) -> tuple[str, ...]:
    """Globs from comma- or newline-separated text (or a list of such texts); blanks dropped, order kept."""
    texts = [value] if isinstance(value, str) else list(value)
    found: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise InvalidRouter(f"router patterns must be strings, got {type(text).__name__}")
        for part in _PATTERN_SPLIT.split(text):
            pattern = part.strip()
            if not pattern:
                continue
            if len(pattern) > _MAX_PATTERN_LENGTH or not pattern.isprintable():
                raise InvalidRouter(
                    f"invalid model pattern {pattern[:60]!r}: at most {_MAX_PATTERN_LENGTH} printable characters"
                )
            if pattern not in found:
                found.append(pattern)
    if len(found) > _MAX_PATTERNS:
        raise InvalidRouter(f"a router takes at most {_MAX_PATTERNS} model patterns")
    return tuple(found)


def _strategy(value: str) -> Strategy:
    for strategy in STRATEGIES:
        if value == strategy:
            return strategy
    raise InvalidRouter(f"unknown strategy {value!r}: use one of {', '.join(STRATEGIES)}")


ModelCheck = Callable[[str], None]


def _default_model(value: str | None, check: ModelCheck | None) -> str | None:
    if value is None or not value.strip():
        return None
    model = value.strip()
    if len(model) > _MAX_MODEL_LENGTH or not model.isprintable():
        raise InvalidRouter(f"invalid default model {model[:60]!r}")
    if model.casefold().startswith("clearmaas/"):
        raise InvalidRouter("a router's default model must be a model, not another router")
    if check is not None:
        check(model)
    return model


def _stored_strategy(value: str) -> Strategy:
    try:
        return _strategy(value)
    except InvalidRouter:
        # Written by hand into the table, or by a newer version: route rather than fail every request.
        log.warning("router strategy %r is unknown; using %s", value, DEFAULT_STRATEGY)
        return DEFAULT_STRATEGY


def _definition(row: Row[Any]) -> RouterDef | None:
    m = row._mapping
    if m["strategy"] == _TOMBSTONE:
        return None
    return RouterDef(
        name=m["name"],
        patterns=tuple(p for p in (m["patterns"] or "").split("\n") if p),
        strategy=_stored_strategy(m["strategy"]),
        default_model=m["default_model"],
        enabled=bool(m["enabled"]),
    )


def _values(router: RouterDef) -> dict[str, Any]:
    return {
        "patterns": "\n".join(router.patterns) or None,
        "strategy": router.strategy,
        "default_model": router.default_model,
        "enabled": 1 if router.enabled else 0,
        "updated_at": utc_now(),
    }


def _workspace_id(connection: Connection, workspace: str) -> str:
    found = connection.execute(select(workspaces.c.id).where(workspaces.c.name == workspace)).scalar()
    if found is None:
        raise WorkspaceNotFound(f"no workspace named {workspace!r}")
    return str(found)


def _stored(connection: Connection, workspace_id: str, name: str) -> Row[Any] | None:
    query = select(routers).where(routers.c.workspace_id == workspace_id, routers.c.name == name)
    return connection.execute(query).first()


def _insert(connection: Connection, workspace_id: str, name: str, values: dict[str, Any]) -> None:
    connection.execute(
        routers.insert().values(
            id=new_id("rtr"), workspace_id=workspace_id, name=name, created_at=values["updated_at"], **values
        )
    )


def _update(connection: Connection, row: Row[Any], values: dict[str, Any]) -> None:
    connection.execute(update(routers).where(routers.c.id == row._mapping["id"]).values(**values))


def create_router(
    engine: Engine,
    workspace: str,
    name: str,
    *,
    patterns: str | Sequence[str] = (),
    strategy: str = DEFAULT_STRATEGY,
    default_model: str | None = None,
    enabled: bool = True,
    check_model: ModelCheck | None = None,
) -> RouterDef:
    """A new router in the workspace named `workspace`. `check_model` may reject the default model (raise
    InvalidRouter). Raises InvalidRouter, RouterExists (`auto` always exists) or WorkspaceNotFound."""
    router = RouterDef(
        name=validate_name(name),
        patterns=parse_patterns(patterns),
        strategy=_strategy(strategy),
        default_model=_default_model(default_model, check_model),
        enabled=enabled,
    )
    try:
        with engine.begin() as connection:
            workspace_id = _workspace_id(connection, workspace)
            row = _stored(connection, workspace_id, name)
            values = _values(router)
            if (row is None and name == AUTO_ROUTER.name) or (row is not None and _definition(row) is not None):
                raise RouterExists(f"workspace {workspace!r} already has a router named {name!r}; use update")
            if row is None:
                _insert(connection, workspace_id, name, values)
            else:  # a tombstone: the name is free again
                _update(connection, row, {**values, "created_at": values["updated_at"]})
    except IntegrityError as exc:  # another process created it between the check and the insert
        raise RouterExists(f"workspace {workspace!r} already has a router named {name!r}") from exc
    return router


def update_router(
    engine: Engine,
    workspace: str,
    name: str,
    *,
    patterns: str | Sequence[str] | None = None,
    strategy: str | None = None,
    default_model: str | None = None,
    enabled: bool | None = None,
    check_model: ModelCheck | None = None,
) -> RouterDef:
    """Change the fields given (None = unchanged; `default_model=""` removes it). Updating the implicit `auto`
    stores it. Raises InvalidRouter, RouterNotFound or WorkspaceNotFound."""
    with engine.begin() as connection:
        workspace_id = _workspace_id(connection, workspace)
        row = _stored(connection, workspace_id, name)
        current = _definition(row) if row is not None else (AUTO_ROUTER if name == AUTO_ROUTER.name else None)
        if current is None:
            raise RouterNotFound(f"workspace {workspace!r} has no router named {name!r}")
        router = RouterDef(
            name=name,
            patterns=current.patterns if patterns is None else parse_patterns(patterns),
            strategy=current.strategy if strategy is None else _strategy(strategy),
            default_model=(
                current.default_model if default_model is None else _default_model(default_model, check_model)
            ),
            enabled=current.enabled if enabled is None else enabled,
        )
        if row is None:
            _insert(connection, workspace_id, name, _values(router))
        else:
            _update(connection, row, _values(router))
    return router


def delete_router(engine: Engine, workspace: str, name: str) -> None:
    """Delete the router (`auto` included). Raises RouterNotFound or WorkspaceNotFound."""
    tombstone = {"patterns": None, "strategy": _TOMBSTONE, "default_model": None, "enabled": 0, "updated_at": utc_now()}
    with engine.begin() as connection:
        workspace_id = _workspace_id(connection, workspace)
        row = _stored(connection, workspace_id, name)
        if row is None and name == AUTO_ROUTER.name:
            _insert(connection, workspace_id, name, tombstone)
            return
        if row is None or _definition(row) is None:
            raise RouterNotFound(f"workspace {workspace!r} has no router named {name!r}")
        _update(connection, row, tombstone)


def get_router(engine: Engine, workspace: str, name: str) -> RouterDef:
    """Raises RouterNotFound or WorkspaceNotFound."""
    with engine.connect() as connection:
        workspace_id = _workspace_id(connection, workspace)
        row = _stored(connection, workspace_id, name)
    found = _definition(row) if row is not None else (AUTO_ROUTER if name == AUTO_ROUTER.name else None)
    if found is None:
        raise RouterNotFound(f"workspace {workspace!r} has no router named {name!r}")
    return found


def list_routers(engine: Engine, workspace: str) -> list[RouterDef]:
    """The workspace's routers by name, the implicit `auto` included unless stored or deleted."""
    with engine.connect() as connection:
        workspace_id = _workspace_id(connection, workspace)
        rows = list(connection.execute(select(routers).where(routers.c.workspace_id == workspace_id)))
    names = {row._mapping["name"] for row in rows}
    found = [d for d in map(_definition, rows) if d is not None]
    if AUTO_ROUTER.name not in names:
        found.append(AUTO_ROUTER)
    return sorted(found, key=lambda d: d.name)


def load_routers(engine: Engine, since: datetime | None = None) -> list[tuple[str, str, RouterDef | None]]:
    """(workspace id, name, definition or None when deleted) of every row, or of those changed after `since`."""
    query = select(routers)
    if since is not None:
        query = query.where(routers.c.updated_at > since)
    with engine.connect() as connection:
        rows = connection.execute(query)
        return [(row._mapping["workspace_id"], row._mapping["name"], _definition(row)) for row in rows]


class RouterCache:
    """Every workspace's routers in memory: `get` is a dict lookup. A background task re-reads the rows changed
    recently every `refresh_interval` seconds (and everything now and then), like `accounts/key_cache.py`."""

    def __init__(
        self,
        engine: Engine,
        *,
        refresh_interval: float = 1.0,
        overlap: float = 30.0,
        full_reload_interval: float = 300.0,
    ) -> None:
        self._engine = engine
        self._refresh_interval = refresh_interval
        # As in the key cache: a writer's transaction can commit after our query although its `updated_at`
        # (its own clock) falls before it, so each pass re-reads a window reaching back `overlap` seconds.
        self._overlap = timedelta(seconds=overlap)
        self._full_every = max(1, round(full_reload_interval / refresh_interval))
        self._routers: dict[str, dict[str, RouterDef | None]] = {}
        self._refreshed_at: datetime | None = None
        self._passes = 0
        self._loop = RefreshLoop(
            self._tick, interval=refresh_interval, name="router-cache", what="router cache"
        )

    def get(self, workspace_id: str, name: str) -> RouterDef | None:
        """The router as stored (disabled ones included), the implicit `auto`, or None."""
        stored = self._routers.get(workspace_id)
        if stored is not None and name in stored:
            return stored[name]
        return AUTO_ROUTER if name == AUTO_ROUTER.name else None

    async def load(self) -> int:
        """Read every row, replacing what is cached; returns how many rows were read."""
        started = utc_now()
        rows = await asyncio.to_thread(load_routers, self._engine)
        fresh: dict[str, dict[str, RouterDef | None]] = {}
        for workspace_id, name, definition in rows:
            fresh.setdefault(workspace_id, {})[name] = definition
        self._routers = fresh
        self._refreshed_at = started
        return len(rows)

    async def refresh(self) -> int:
        """One pass over the rows changed recently (a full load the first time); returns how many were read."""
        if self._refreshed_at is None:
            return await self.load()
        started = utc_now()
        rows = await asyncio.to_thread(load_routers, self._engine, self._refreshed_at - self._overlap)
        for workspace_id, name, definition in rows:
            self._routers.setdefault(workspace_id, {})[name] = definition
        self._refreshed_at = started
        return len(rows)

    async def start(self) -> None:
        """Load everything (the first requests need it), then keep refreshing in the background."""
        if not self._loop.running:
            await self.load()
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _tick(self) -> None:
        self._passes += 1
        # A full reload now and then also forgets rows removed behind our back (a workspace deleted).
        await (self.load() if self._passes % self._full_every == 0 else self.refresh())
