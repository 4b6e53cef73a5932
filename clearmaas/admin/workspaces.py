"""Admin endpoints for workspaces: list, create, show (balance, reserved, spend, limits) and change the rate
limits. Workspaces are named in paths by their unique name, as on the command line."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TypedDict

from sqlalchemy import Engine, select

from clearmaas.accounts.workspaces import create_workspace, get_workspace
from clearmaas.admin.endpoint import AdminCall, Endpoint
from clearmaas.admin.fields import iso, usd
from clearmaas.billing.ledger import WorkspaceSummary, workspace_summary
from clearmaas.billing.service import Billing
from clearmaas.limits.store import KEEP, MAX_RPM, MAX_TPM, Keep, set_limits
from clearmaas.store.schema import workspaces

__all__ = ["ENDPOINTS", "WorkspaceDetail", "WorkspaceItem"]

log = logging.getLogger("clearmaas.admin")

_BASE = "/admin/v1/workspaces"


class WorkspaceItem(TypedDict):
    id: str
    name: str
    created_at: str | None
    rpm_limit: int | None
    tpm_limit: int | None
    balance_usd: str | None


class WorkspaceDetail(WorkspaceItem):
    reserved_usd: str | None
    credited_usd: str | None
    spent_usd: str | None
    requests: int


def _items(engine: Engine) -> list[WorkspaceItem]:
    query = select(
        workspaces.c.id,
        workspaces.c.name,
        workspaces.c.created_at,
        workspaces.c.rpm_limit,
        workspaces.c.tpm_limit,
        workspaces.c.balance_micros,
    ).order_by(workspaces.c.name)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        WorkspaceItem(
            id=row.id,
            name=row.name,
            created_at=iso(row.created_at),
            rpm_limit=row.rpm_limit,
            tpm_limit=row.tpm_limit,
            balance_usd=usd(int(row.balance_micros)),
        )
        for row in rows
    ]


def _summary(engine: Engine, name: str) -> tuple[WorkspaceSummary, datetime]:
    created = get_workspace(engine, name).created_at
    return workspace_summary(engine, name), created


async def _detail(call: AdminCall, name: str) -> WorkspaceDetail:
    summary, created = await call.run(_summary, call.engine, name)
    reserved = None
    billing = call.gateway.billing
    if isinstance(billing, Billing):  # not when billing is switched off
        try:
            # The running book knows the calls in flight: this process's (memory book) or every replica's (Redis).
            reserved = await billing.book.reserved_micros(summary.id)
        except Exception:
            log.warning("reading the reserved amount of workspace %s failed", name, exc_info=True)
    return WorkspaceDetail(
        id=summary.id,
        name=summary.name,
        created_at=iso(created),
        rpm_limit=summary.rpm_limit,
        tpm_limit=summary.tpm_limit,
        balance_usd=usd(summary.balance_micros),
        reserved_usd=usd(reserved),
        credited_usd=usd(summary.credited_micros),
        spent_usd=usd(summary.charged_micros),
        requests=summary.requests,
    )


async def list_workspaces(call: AdminCall) -> dict[str, list[WorkspaceItem]]:
    return {"data": await call.run(_items, call.engine)}


async def create_workspace_(call: AdminCall) -> WorkspaceDetail:
    body = await call.body(allowed=("name", "rpm_limit", "tpm_limit"))
    name = body.text("name", required=True, max_length=64)
    assert name is not None
    workspace = await call.run(
        create_workspace,
        call.engine,
        name,
        rpm_limit=body.whole("rpm_limit", maximum=MAX_RPM),
        tpm_limit=body.whole("tpm_limit", maximum=MAX_TPM),
    )
    return await _detail(call, workspace.name)


async def get_workspace_(call: AdminCall) -> WorkspaceDetail:
    return await _detail(call, call.path("workspace"))


async def update_workspace(call: AdminCall) -> WorkspaceDetail:
    body = await call.body(allowed=("rpm_limit", "tpm_limit"))
    name = call.path("workspace")
    rpm: int | None | Keep = body.whole("rpm_limit", maximum=MAX_RPM) if body.has("rpm_limit") else KEEP
    tpm: int | None | Keep = body.whole("tpm_limit", maximum=MAX_TPM) if body.has("tpm_limit") else KEEP
    await call.run(set_limits, call.engine, name, rpm=rpm, tpm=tpm)
    return await _detail(call, name)


_TAG = "Workspaces"
_ONE = f"{_BASE}/{{workspace}}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", _BASE, list_workspaces, "List workspaces", _TAG, response="WorkspaceList"),
    Endpoint(
        "POST",
        _BASE,
        create_workspace_,
        "Create a workspace",
        _TAG,
        request="WorkspaceCreate",
        response="WorkspaceDetail",
        status=201,
        errors=(400, 409),
    ),
    Endpoint(
        "GET",
        _ONE,
        get_workspace_,
        "Show a workspace: balance, reserved, credited, spent, requests, limits",
        _TAG,
        response="WorkspaceDetail",
        errors=(404,),
        description="`reserved_usd` is what calls in flight hold: this process's with the in-memory book, every "
        "replica's with Redis.",
    ),
    Endpoint(
        "PATCH",
        _ONE,
        update_workspace,
        "Change a workspace's rate limits",
        _TAG,
        request="WorkspaceUpdate",
        response="WorkspaceDetail",
        errors=(400, 404),
        description="Absent fields are unchanged; null removes a limit. Running gateways apply it within about a "
        "second.",
    ),
)
