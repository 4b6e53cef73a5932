"""Admin endpoints for API keys: list a workspace's keys, create one (the raw key is in that answer and never
again), show, change (name, credit limit, model allowlist, expiry) and revoke.

Every change bumps `api_keys.updated_at`, which is what the gateways' key caches watch: a changed limit or a
revocation takes effect within about a second, everywhere. Keys are never deleted: the ledger and the usage
records keep referring to them.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from enum import Enum
from typing import Any, Final, TypedDict

import orjson
from sqlalchemy import Engine, Row, select, update

from clearmaas.accounts.errors import KeyNotFound, WorkspaceNotFound
from clearmaas.accounts.keys import create_key
from clearmaas.admin.endpoint import AdminCall, Endpoint
from clearmaas.admin.errors import Conflict
from clearmaas.admin.fields import Body, iso, usd
from clearmaas.billing.commands import lifetime_arg
from clearmaas.billing.export import parse_moment
from clearmaas.errors import InvalidRequest
from clearmaas.store.schema import api_keys, utc_now, workspaces

__all__ = ["ENDPOINTS", "KEEP", "KeyItem", "get_key_item", "list_key_items", "update_key"]


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
_FIELDS = ("name", "credit_limit_usd", "models", "expires_in", "expires_at")


class KeyItem(TypedDict):
    id: str
    workspace: str
    name: str | None
    prefix: str
    status: str
    created_at: str | None
    updated_at: str | None
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None
    credit_limit_usd: str | None
    spent_usd: str | None
    models: list[str]


_VIEW = select(api_keys, workspaces.c.name.label("workspace_name")).join_from(
    api_keys, workspaces, api_keys.c.workspace_id == workspaces.c.id
)


def _item(row: Row[Any], now: datetime) -> KeyItem:
    m = row._mapping
    expires, revoked = m["expires_at"], m["revoked_at"]
    status = "revoked" if revoked is not None else ("expired" if expires is not None and expires <= now else "active")
    return KeyItem(
        id=m["id"],
        workspace=m["workspace_name"],
        name=m["name"],
        prefix=m["prefix"],
        status=status,
        created_at=iso(m["created_at"]),
        updated_at=iso(m["updated_at"]),
        last_used_at=iso(m["last_used_at"]),
        expires_at=iso(expires),
        revoked_at=iso(revoked),
        credit_limit_usd=usd(m["credit_limit_micros"]),
        spent_usd=usd(int(m["spent_micros"])),
        models=list(orjson.loads(m["model_allowlist"])) if m["model_allowlist"] else [],
    )


def list_key_items(engine: Engine, workspace: str) -> list[KeyItem]:
    """Every key of the workspace, revoked ones included, oldest first; raises WorkspaceNotFound."""
    now = utc_now()
    with engine.connect() as connection:
        if connection.execute(select(workspaces.c.id).where(workspaces.c.name == workspace)).first() is None:
            raise WorkspaceNotFound(f"no workspace named {workspace!r}")
        rows = connection.execute(
            _VIEW.where(workspaces.c.name == workspace).order_by(api_keys.c.created_at, api_keys.c.id)
        ).all()
    return [_item(row, now) for row in rows]


def get_key_item(engine: Engine, key_id: str) -> KeyItem:
    with engine.connect() as connection:
        row = connection.execute(_VIEW.where(api_keys.c.id == key_id)).first()
    if row is None:
        raise KeyNotFound(f"no key with id {key_id!r}")
    return _item(row, utc_now())


def update_key(
    engine: Engine,
    key_id: str,
    *,
    name: str | None | _Keep = KEEP,
    credit_limit_micros: int | None | _Keep = KEEP,
    model_allowlist: list[str] | None | _Keep = KEEP,
    expires_at: datetime | None | _Keep = KEEP,
) -> KeyItem:
    """Change the fields given (None clears one) and bump `updated_at`. Raises KeyNotFound, or Conflict for a
    revoked key (a revocation is final)."""
    values: dict[str, object] = {"updated_at": utc_now()}
    if name is not KEEP:
        values["name"] = name
    if credit_limit_micros is not KEEP:
        values["credit_limit_micros"] = credit_limit_micros
    if model_allowlist is not KEEP:
        values["model_allowlist"] = orjson.dumps(model_allowlist).decode() if model_allowlist else None
    if expires_at is not KEEP:
        values["expires_at"] = expires_at
    with engine.begin() as connection:
        revoked = connection.execute(select(api_keys.c.revoked_at).where(api_keys.c.id == key_id)).first()
        if revoked is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        if revoked.revoked_at is not None:
            raise Conflict(f"key {key_id!r} is revoked; a revoked key cannot be changed", code="key_revoked")
        connection.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
    return get_key_item(engine, key_id)


def revoke(engine: Engine, key_id: str) -> KeyItem:
    """Revoke the key (idempotent); raises KeyNotFound."""
    now = utc_now()
    with engine.begin() as connection:
        found = connection.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first()
        if found is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now, updated_at=now)
        )
    return get_key_item(engine, key_id)


def _expiry(body: Body) -> datetime | None | _Keep:
    """`expires_in` ("1h" to "1y", or "never") or `expires_at` (an ISO time in the future, or null: never)."""
    if body.has("expires_in") and body.has("expires_at"):
        raise InvalidRequest("Send 'expires_in' or 'expires_at', not both.", param="expires_in")
    if body.has("expires_in"):
        text = body.text("expires_in", max_length=16)
        if text is None:
            return None
        try:
            lifetime = lifetime_arg(text)
        except argparse.ArgumentTypeError as exc:
            raise InvalidRequest(f"'expires_in': {exc}", param="expires_in") from None
        return None if lifetime is None else utc_now() + lifetime
    if body.has("expires_at"):
        text = body.text("expires_at", max_length=64)
        if text is None:
            return None
        try:
            moment = parse_moment(text)
        except ValueError as exc:
            raise InvalidRequest(f"'expires_at': {exc}", param="expires_at") from None
        if moment <= utc_now():
            raise InvalidRequest("'expires_at' must be in the future.", param="expires_at")
        return moment
    return KEEP


def _credit_limit(body: Body) -> int | None | _Keep:
    return body.usd("credit_limit_usd", allow_zero=True) if body.has("credit_limit_usd") else KEEP


async def list_keys(call: AdminCall) -> dict[str, list[KeyItem]]:
    return {"data": await call.run(list_key_items, call.engine, call.path("workspace"))}


class CreatedKey(KeyItem):
    api_key: str


async def create_key_(call: AdminCall) -> CreatedKey:
    body = await call.body(allowed=_FIELDS)
    expires = _expiry(body)
    limit = _credit_limit(body)
    record, raw = await call.run(
        create_key,
        call.engine,
        call.path("workspace"),
        name=body.text("name"),
        expires_at=None if expires is KEEP else expires,
        credit_limit_micros=None if limit is KEEP else limit,
        model_allowlist=body.strings("models") or (),
    )
    item = await call.run(get_key_item, call.engine, record.id)
    return CreatedKey(**item, api_key=raw)


async def get_key(call: AdminCall) -> KeyItem:
    return await call.run(get_key_item, call.engine, call.path("key_id"))


async def update_key_(call: AdminCall) -> KeyItem:
    body = await call.body(allowed=_FIELDS)
    return await call.run(
        update_key,
        call.engine,
        call.path("key_id"),
        name=body.text("name") if body.has("name") else KEEP,
        credit_limit_micros=_credit_limit(body),
        model_allowlist=body.strings("models") if body.has("models") else KEEP,
        expires_at=_expiry(body),
    )


async def revoke_key(call: AdminCall) -> KeyItem:
    return await call.run(revoke, call.engine, call.path("key_id"))


_TAG = "Keys"
_LISTED = "/admin/v1/workspaces/{workspace}/keys"
_ONE = "/admin/v1/keys/{key_id}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _LISTED, list_keys, "List a workspace's API keys", _TAG, response="KeyList", errors=(404,)),
    Endpoint(
        "POST",
        _LISTED,
        create_key_,
        "Create an API key; the answer holds the raw key, shown this once",
        _TAG,
        request="KeyCreate",
        response="KeyCreated",
        status=201,
        errors=(400, 404),
    ),
    Endpoint("GET", _ONE, get_key, "Show an API key", _TAG, response="Key", errors=(404,)),
    Endpoint(
        "PATCH",
        _ONE,
        update_key_,
        "Change an API key's name, credit limit, model allowlist or expiry",
        _TAG,
        request="KeyUpdate",
        response="Key",
        errors=(400, 404, 409),
        description="Absent fields are unchanged; null clears one (no name, no limit, every model, never "
        "expires). Running gateways apply it within about a second. A revoked key answers 409 `key_revoked`.",
    ),
    Endpoint(
        "DELETE",
        _ONE,
        revoke_key,
        "Revoke an API key",
        _TAG,
        response="Key",
        errors=(404,),
        description="Idempotent. The key stops working within about a second; its row is kept for the ledger "
        "and the usage records.",
    ),
)
