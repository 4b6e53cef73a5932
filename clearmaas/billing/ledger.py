"""The ledger as operators see it: adding credit, a workspace's money at a glance, and the reconciliation that
proves balances, charges and usage records agree.

Every balance change is a ledger entry written in the same transaction as the balance update; running
gateways pick credits up within about a second (memory book: its periodic re-read; Redis book: applied at
once here, and by every replica's periodic sync otherwise). Synchronous: called from the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from sqlalchemy import Connection, Engine, func, select, update

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.billing.money import format_usd
from clearmaas.billing.redis_state import (
    DEFAULT_PREFIX,
    RedisKeys,
    apply_credit_sync,
    overdue_reservations_sync,
    read_live_sync,
)
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, utc_now, workspaces

__all__ = ["Credit", "KeySpend", "WorkspaceSummary", "add_credit", "reconcile", "workspace_summary"]

# How many individual request ids a reconciliation names before summarising.
_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Credit:
    """A credit just recorded. `live` is whether it reached the Redis balance now (None: no Redis)."""

    entry_id: int
    workspace_id: str
    workspace_name: str
    amount_micros: int
    balance_micros: int
    live: bool | None


@dataclass(frozen=True, slots=True)
class KeySpend:
    id: str
    name: str | None
    prefix: str
    credit_limit_micros: int | None
    spent_micros: int
    revoked: bool


@dataclass(frozen=True, slots=True)
class WorkspaceSummary:
    """A workspace's money. `reserved_micros` and `live_balance_micros` are known only with Redis (a memory
    book lives inside each gateway process)."""

    id: str
    name: str
    balance_micros: int
    credited_micros: int  # credits, refunds and adjustments
    charged_micros: int  # charges, as a positive amount
    requests: int
    rpm_limit: int | None
    tpm_limit: int | None
    keys: tuple[KeySpend, ...]
    live_balance_micros: int | None = None
    reserved_micros: int | None = None


def _workspace_row(connection: Connection, name: str) -> tuple[str, int, int | None, int | None]:
    row = connection.execute(
        select(workspaces.c.id, workspaces.c.balance_micros, workspaces.c.rpm_limit, workspaces.c.tpm_limit).where(
            workspaces.c.name == name
        )
    ).first()
    if row is None:
        raise WorkspaceNotFound(f"no workspace named {name!r}")
    return str(row.id), int(row.balance_micros), row.rpm_limit, row.tpm_limit


def add_credit(
    engine: Engine,
    workspace: str,
    usd_micros: int,
    *,
    reason: str | None = None,
    actor: str | None = None,
    redis_url: str | None = None,
    redis_prefix: str = DEFAULT_PREFIX,
) -> Credit:
    """Credit the workspace named `workspace`: a ledger entry and the balance update in one transaction,
    then (with `redis_url`) the live Redis balance. Raises WorkspaceNotFound, or ValueError for an amount
    that is not positive."""
    if usd_micros <= 0:
        raise ValueError("a credit must be a positive amount")
    now = utc_now()
    with engine.begin() as connection:
        workspace_id, _balance, _rpm, _tpm = _workspace_row(connection, workspace)
        inserted = connection.execute(
            ledger_entries.insert().values(
                workspace_id=workspace_id,
                kind="credit",
                amount_micros=usd_micros,
                reason=reason,
                actor=actor,
                created_at=now,
            )
        ).inserted_primary_key
        assert inserted is not None
        entry_id = int(inserted[0])
        # `updated_at` tells replicas' sync (and the rate-limit caches) that this workspace changed.
        connection.execute(
            update(workspaces)
            .where(workspaces.c.id == workspace_id)
            .values(balance_micros=workspaces.c.balance_micros + usd_micros, updated_at=now)
        )
        balance = connection.execute(
            select(workspaces.c.balance_micros).where(workspaces.c.id == workspace_id)
        ).scalar_one()
    live: bool | None = None
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        try:
            live = apply_credit_sync(client, RedisKeys(redis_prefix), workspace_id, entry_id, usd_micros)
        except (redis.RedisError, OSError):
            live = False  # the replicas' periodic sync applies it from the ledger
        finally:
            client.close()
    return Credit(entry_id, workspace_id, workspace, usd_micros, int(balance), live)


def workspace_summary(
    engine: Engine, name: str, *, redis_url: str | None = None, redis_prefix: str = DEFAULT_PREFIX
) -> WorkspaceSummary:
    """Raises WorkspaceNotFound."""
    with _snapshot(engine) as connection:
        workspace_id, balance, rpm, tpm = _workspace_row(connection, name)
        charged, credited = 0, 0
        for kind, total in connection.execute(
            select(ledger_entries.c.kind, func.sum(ledger_entries.c.amount_micros))
            .where(ledger_entries.c.workspace_id == workspace_id)
            .group_by(ledger_entries.c.kind)
        ):
            if kind == "charge":
                charged -= int(total)
            else:
                credited += int(total)
        requests = connection.execute(
            select(func.count()).select_from(usage_records).where(usage_records.c.workspace_id == workspace_id)
        ).scalar_one()
        keys = tuple(
            KeySpend(
                id=row.id,
                name=row.name,
                prefix=row.prefix,
                credit_limit_micros=row.credit_limit_micros,
                spent_micros=int(row.spent_micros),
                revoked=row.revoked_at is not None,
            )
            for row in connection.execute(
                select(api_keys)
                .where(api_keys.c.workspace_id == workspace_id)
                .order_by(api_keys.c.created_at, api_keys.c.id)
            )
        )
    live, reserved = None, None
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        try:
            live, reserved = read_live_sync(client, RedisKeys(redis_prefix), workspace_id)
        finally:
            client.close()
    return WorkspaceSummary(
        workspace_id, name, balance, credited, charged, int(requests), rpm, tpm, keys, live, reserved
    )


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose statements all see one snapshot, so a batch committed by a running
    gateway between two statements cannot show up as a difference."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection
            return
        if connection.dialect.name == "sqlite" and not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            # pysqlite starts no transaction for SELECTs; an explicit deferred BEGIN pins the WAL snapshot
            # at the first read until the connection rolls back.
            connection.exec_driver_sql("BEGIN")
        yield connection


def _sums(connection: Connection, query: object) -> dict[str, int]:
    return {str(key): int(total) for key, total in connection.execute(query) if key is not None}  # type: ignore[call-overload]


def reconcile(
    engine: Engine,
    *,
    redis_url: str | None = None,
    redis_prefix: str = DEFAULT_PREFIX,
    now: float | None = None,
    grace: float = 60.0,
) -> list[str]:
    """Every disagreement, in words; an empty list means the books are clean. Checks that each workspace's
    balance is the sum of its ledger, that its charges sum to its usage records' costs (and request by
    request), that each key's spend is the sum of its charges, and (with Redis) that no reservation is
    more than `grace` seconds past its deadline."""
    problems: list[str] = []
    with _snapshot(engine) as connection:
        ledger_total = _sums(
            connection,
            select(ledger_entries.c.workspace_id, func.sum(ledger_entries.c.amount_micros)).group_by(
                ledger_entries.c.workspace_id
            ),
        )
        for ws_id, name, balance in connection.execute(
            select(workspaces.c.id, workspaces.c.name, workspaces.c.balance_micros).order_by(workspaces.c.name)
        ):
            expected = ledger_total.get(ws_id, 0)
            if balance != expected:
                problems.append(
                    f"workspace {name}: balance_micros is {balance} but its ledger sums to {expected} "
                    f"(difference {format_usd(balance - expected, sign=True)} USD)"
                )
        charges = _sums(
            connection,
            select(ledger_entries.c.workspace_id, -func.sum(ledger_entries.c.amount_micros))
            .where(ledger_entries.c.kind == "charge")
            .group_by(ledger_entries.c.workspace_id),
        )
        costs = _sums(
            connection,
            select(usage_records.c.workspace_id, func.sum(usage_records.c.cost_micros)).group_by(
                usage_records.c.workspace_id
            ),
        )
        for ws_id in sorted(set(charges) | set(costs)):
            if charges.get(ws_id, 0) != costs.get(ws_id, 0):
                problems.append(
                    f"workspace {ws_id}: charges sum to {charges.get(ws_id, 0)} but usage records cost "
                    f"{costs.get(ws_id, 0)}"
                )
        key_charges = _sums(
            connection,
            select(ledger_entries.c.key_id, -func.sum(ledger_entries.c.amount_micros))
            .where(ledger_entries.c.kind == "charge")
            .group_by(ledger_entries.c.key_id),
        )
        for key_id, spent in connection.execute(select(api_keys.c.id, api_keys.c.spent_micros).order_by(api_keys.c.id)):
            if spent != key_charges.get(key_id, 0):
                problems.append(
                    f"key {key_id}: spent_micros is {spent} but its charges sum to {key_charges.get(key_id, 0)}"
                )
        problems.extend(_request_mismatches(connection))
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        try:
            overdue = overdue_reservations_sync(client, RedisKeys(redis_prefix), (now or time.time()) - grace)
        finally:
            client.close()
        if overdue:
            problems.append(
                f"{len(overdue)} reservations are past their deadline and still held: {', '.join(overdue[:_SHOWN])}"
            )
    return problems


def _request_mismatches(connection: Connection) -> list[str]:
    """Requests whose usage record and charge disagree, or that have one without the other."""
    charge = ledger_entries.alias("charge")
    missing_or_wrong = connection.execute(
        select(usage_records.c.request_id, usage_records.c.cost_micros, charge.c.amount_micros)
        .outerjoin(charge, (charge.c.request_id == usage_records.c.request_id) & (charge.c.kind == "charge"))
        .where(usage_records.c.cost_micros != func.coalesce(-charge.c.amount_micros, 0))
        .order_by(usage_records.c.request_id)
    ).all()
    orphans = (
        connection.execute(
            select(charge.c.request_id)
            .outerjoin(usage_records, usage_records.c.request_id == charge.c.request_id)
            .where(charge.c.kind == "charge", usage_records.c.request_id.is_(None))
            .order_by(charge.c.request_id)
        )
        .scalars()
        .all()
    )
    problems = []
    if missing_or_wrong:
        shown = ", ".join(
            f"{rid} (cost {cost}, charged {-(amount or 0)})" for rid, cost, amount in missing_or_wrong[:_SHOWN]
        )
        problems.append(f"{len(missing_or_wrong)} usage records disagree with their charge: {shown}")
    if orphans:
        problems.append(f"{len(orphans)} charges have no usage record: {', '.join(map(str, orphans[:_SHOWN]))}")
    return problems
