"""Admin endpoints for money in: add credit to a workspace (a ledger entry and the balance, in one transaction),
and page through a workspace's ledger (credits, charges, refunds, adjustments), newest first.

Running gateways see a credit within about a second (the memory book re-reads balances; with Redis it is
applied to the live balance at once).
"""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import Engine, Row, select

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.admin.endpoint import AdminCall, Endpoint, Param
from clearmaas.admin.fields import iso, usd
from clearmaas.billing.ledger import Credit, add_credit
from clearmaas.errors import InvalidRequest
from clearmaas.store.schema import ledger_entries, workspaces

__all__ = ["ENDPOINTS", "LedgerEntry", "ledger_page"]

KINDS = ("credit", "charge", "refund", "adjustment")
_DEFAULT_ACTOR = "admin-api"


class LedgerEntry(TypedDict):
    id: int
    kind: str
    amount_usd: str | None
    reason: str | None
    actor: str | None
    request_id: str | None
    key_id: str | None
    created_at: str | None


class LedgerPage(TypedDict):
    data: list[LedgerEntry]
    has_more: bool
    next_cursor: str | None


def _entry(row: Row[Any]) -> LedgerEntry:
    m = row._mapping
    return LedgerEntry(
        id=int(m["id"]),
        kind=m["kind"],
        amount_usd=usd(int(m["amount_micros"])),
        reason=m["reason"],
        actor=m["actor"],
        request_id=m["request_id"],
        key_id=m["key_id"],
        created_at=iso(m["created_at"]),
    )


def ledger_page(engine: Engine, workspace: str, *, kind: str | None, limit: int, before: int | None) -> LedgerPage:
    """Up to `limit` entries with an id below `before`, newest first; raises WorkspaceNotFound."""
    with engine.connect() as connection:
        workspace_id = connection.execute(select(workspaces.c.id).where(workspaces.c.name == workspace)).scalar()
        if workspace_id is None:
            raise WorkspaceNotFound(f"no workspace named {workspace!r}")
        query = select(ledger_entries).where(ledger_entries.c.workspace_id == workspace_id)
        if kind is not None:
            query = query.where(ledger_entries.c.kind == kind)
        if before is not None:
            query = query.where(ledger_entries.c.id < before)
        rows = connection.execute(query.order_by(ledger_entries.c.id.desc()).limit(limit + 1)).all()
    entries = [_entry(row) for row in rows[:limit]]
    more = len(rows) > limit
    return LedgerPage(data=entries, has_more=more, next_cursor=str(entries[-1]["id"]) if more else None)


def _add(
    engine: Engine, workspace: str, micros: int, reason: str | None, actor: str, redis_url: str | None
) -> tuple[Credit, LedgerEntry]:
    credit = add_credit(engine, workspace, micros, reason=reason, actor=actor, redis_url=redis_url)
    with engine.connect() as connection:
        row = connection.execute(select(ledger_entries).where(ledger_entries.c.id == credit.entry_id)).one()
    return credit, _entry(row)


async def add_credits(call: AdminCall) -> dict[str, object]:
    body = await call.body(allowed=("amount_usd", "reason", "actor"))
    micros = body.usd("amount_usd", required=True)
    assert micros is not None
    reason = body.text("reason", max_length=1000)
    actor = body.text("actor") or _DEFAULT_ACTOR
    credit, entry = await call.run(
        _add, call.engine, call.path("workspace"), micros, reason, actor, call.settings.redis_url
    )
    return {"entry": entry, "balance_usd": usd(credit.balance_micros)}


async def list_ledger(call: AdminCall) -> LedgerPage:
    kind = call.query.text("kind")
    if kind is not None and kind not in KINDS:
        raise InvalidRequest(f"'kind' must be one of: {', '.join(KINDS)}.", param="kind")
    cursor = call.query.text("cursor", max_length=20)
    if cursor is not None and not cursor.isdigit():
        raise InvalidRequest("'cursor' must be a next_cursor value from a previous page.", param="cursor")
    return await call.run(
        ledger_page,
        call.engine,
        call.path("workspace"),
        kind=kind,
        limit=call.query.whole("limit", default=100, maximum=1000),
        before=int(cursor) if cursor is not None else None,
    )


_TAG = "Credits"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/admin/v1/workspaces/{workspace}/credits",
        add_credits,
        "Add credit to a workspace",
        _TAG,
        request="CreditCreate",
        response="CreditAdded",
        status=201,
        errors=(400, 404),
        description="Writes a `credit` ledger entry and raises the balance in one transaction. Running gateways "
        "apply it within about a second.",
    ),
    Endpoint(
        "GET",
        "/admin/v1/workspaces/{workspace}/ledger",
        list_ledger,
        "List a workspace's ledger entries, newest first",
        _TAG,
        response="LedgerPage",
        errors=(400, 404),
        query=(
            Param("kind", "Only entries of this kind: credit, charge, refund or adjustment."),
            Param("limit", "Entries per page, 1 to 1000 (default 100).", type="integer"),
            Param("cursor", "The `next_cursor` of the previous page."),
        ),
    ),
)
