"""Admin endpoints over the usage log: the records themselves, filtered by workspace, key, model and time and
paged newest first; and a summary (totals, per model, per UTC day) of requests, errors, every token bucket
and cost. `model` matches the served or the requested model id, as the CLI's export does."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import orjson
from sqlalchemy import ColumnElement, Engine, Row, Select, String, and_, case, func, or_, select

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.admin.endpoint import AdminCall, Endpoint, Param
from clearmaas.admin.fields import iso, usd
from clearmaas.errors import InvalidRequest
from clearmaas.store.schema import usage_records, workspaces

__all__ = ["ENDPOINTS", "UsageFilter", "UsagePage", "UsageRecord", "UsageSummary", "usage_page", "usage_summary"]

u = usage_records
_TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """None means no filter; `since` is inclusive, `until` exclusive."""

    workspace: str | None = None
    key_id: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _conditions(engine: Engine, where: UsageFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if where.workspace is not None:
        with engine.connect() as connection:
            workspace_id = connection.execute(
                select(workspaces.c.id).where(workspaces.c.name == where.workspace)
            ).scalar()
        if workspace_id is None:
            raise WorkspaceNotFound(f"no workspace named {where.workspace!r}")
        found.append(u.c.workspace_id == workspace_id)
    if where.key_id is not None:
        found.append(u.c.key_id == where.key_id)
    if where.model is not None:
        found.append(or_(u.c.served_model == where.model, u.c.requested_model == where.model))
    if where.since is not None:
        found.append(u.c.created_at >= where.since)
    if where.until is not None:
        found.append(u.c.created_at < where.until)
    return found


class UsageRecord(TypedDict):
    request_id: str
    created_at: str | None
    workspace: str | None
    key_id: str | None
    model: str | None
    requested_model: str | None
    served_model: str | None
    router: str | None
    fallback_level: int | None
    endpoint: str
    stream: bool
    status: int
    error_code: str | None
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    server_tool_calls: dict[str, int]
    cost_usd: str | None
    latency_ms: int | None
    ttft_ms: int | None
    client_disconnected: bool


class UsagePage(TypedDict):
    data: list[UsageRecord]
    has_more: bool
    next_cursor: str | None


def _record(row: Row[Any]) -> UsageRecord:
    m = row._mapping
    return UsageRecord(
        request_id=m["request_id"],
        created_at=iso(m["created_at"]),
        workspace=m["workspace"],
        key_id=m["key_id"],
        model=m["served_model"] or m["requested_model"],
        requested_model=m["requested_model"],
        served_model=m["served_model"],
        router=m["router"],
        fallback_level=m["fallback_level"],
        endpoint=m["endpoint"],
        stream=bool(m["stream"]),
        status=m["status"],
        error_code=m["error_code"],
        input_tokens=int(m["input_tokens"]),
        cache_read_tokens=int(m["cache_read_tokens"]),
        cache_write_tokens=int(m["cache_write_tokens"]),
        output_tokens=int(m["output_tokens"]),
        reasoning_tokens=int(m["reasoning_tokens"]),
        server_tool_calls=orjson.loads(m["server_tool_calls"]) if m["server_tool_calls"] else {},
        cost_usd=usd(int(m["cost_micros"])),
        latency_ms=m["latency_ms"],
        ttft_ms=m["ttft_ms"],
        client_disconnected=bool(m["client_disconnected"]),
    )


def encode_cursor(created_at: datetime, request_id: str) -> str:
    raw = orjson.dumps([created_at.isoformat(), request_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    """Raises InvalidRequest for anything that is not a cursor this API made."""
    try:
        created, request_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        moment = datetime.fromisoformat(created)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        moment = None
    if moment is None or moment.tzinfo is None or not isinstance(request_id, str):
        raise InvalidRequest("'cursor' must be a next_cursor value from a previous page.", param="cursor")
    return moment, request_id


def usage_page(engine: Engine, where: UsageFilter, *, limit: int, after: tuple[datetime, str] | None) -> UsagePage:
    """Up to `limit` records older than the cursor position `after`, newest first."""
    query = select(u, workspaces.c.name.label("workspace")).outerjoin(workspaces, workspaces.c.id == u.c.workspace_id)
    conditions = _conditions(engine, where)
    if after is not None:
        created, request_id = after
        conditions.append(or_(u.c.created_at < created, and_(u.c.created_at == created, u.c.request_id < request_id)))
    query = query.where(*conditions).order_by(u.c.created_at.desc(), u.c.request_id.desc()).limit(limit + 1)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    more = len(rows) > limit
    last = rows[limit - 1]._mapping if more else None
    return UsagePage(
        data=[_record(row) for row in rows[:limit]],
        has_more=more,
        next_cursor=encode_cursor(last["created_at"], last["request_id"]) if last is not None else None,
    )


class Bucket(TypedDict):
    requests: int
    errors: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: str | None


class ModelBucket(Bucket):
    model: str | None


class DayBucket(Bucket):
    date: str


class UsageSummary(TypedDict):
    totals: Bucket
    by_model: list[ModelBucket]
    by_day: list[DayBucket]


def _sums() -> list[ColumnElement[Any]]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(case((u.c.status >= 400, 1), else_=0)), 0).label("errors"),
        *(func.coalesce(func.sum(u.c[name]), 0).label(name) for name in _TOKENS),
        func.coalesce(func.sum(u.c.cost_micros), 0).label("cost_micros"),
    ]


def _bucket(m: Any) -> Bucket:
    return Bucket(
        requests=int(m["requests"]),
        errors=int(m["errors"]),
        input_tokens=int(m["input_tokens"]),
        cache_read_tokens=int(m["cache_read_tokens"]),
        cache_write_tokens=int(m["cache_write_tokens"]),
        output_tokens=int(m["output_tokens"]),
        reasoning_tokens=int(m["reasoning_tokens"]),
        cost_usd=usd(int(m["cost_micros"])),
    )


def _day(engine: Engine) -> ColumnElement[str]:
    """The record's UTC calendar day as `YYYY-MM-DD`."""
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", u.c.created_at), "YYYY-MM-DD", type_=String)
    # SQLite stores the UTC time as text ("2026-11-01 12:00:00.000000"); its first ten characters are the day.
    return func.substr(u.c.created_at, 1, 10, type_=String)


def usage_summary(engine: Engine, where: UsageFilter) -> UsageSummary:
    conditions = _conditions(engine, where)
    model = func.coalesce(u.c.served_model, u.c.requested_model).label("model")
    day = _day(engine).label("day")

    def grouped(column: ColumnElement[Any]) -> Select[Any]:
        return select(column, *_sums()).where(*conditions).group_by(column).order_by(column)

    with engine.connect() as connection:
        totals = connection.execute(select(*_sums()).where(*conditions)).one()
        by_model = connection.execute(grouped(model)).all()
        by_day = connection.execute(grouped(day)).all()
    return UsageSummary(
        totals=_bucket(totals._mapping),
        by_model=[ModelBucket(model=row.model, **_bucket(row._mapping)) for row in by_model],
        by_day=[DayBucket(date=row.day, **_bucket(row._mapping)) for row in by_day],
    )


def _filter(call: AdminCall) -> UsageFilter:
    q = call.query
    return UsageFilter(
        workspace=q.text("workspace", max_length=64),
        key_id=q.text("key", max_length=32),
        model=q.text("model"),
        since=q.moment("since"),
        until=q.moment("until"),
    )


async def list_usage(call: AdminCall) -> UsagePage:
    where = _filter(call)
    cursor = call.query.text("cursor", max_length=400)
    after = decode_cursor(cursor) if cursor is not None else None
    limit = call.query.whole("limit", default=100, maximum=1000)
    return await call.run(usage_page, call.engine, where, limit=limit, after=after)


async def summarize_usage(call: AdminCall) -> UsageSummary:
    return await call.run(usage_summary, call.engine, _filter(call))


_TAG = "Usage"
_FILTERS = (
    Param("workspace", "Only this workspace's records (its name)."),
    Param("key", "Only this key's records (its id)."),
    Param("model", "Only records whose served or requested model is this id."),
    Param("since", "ISO 8601 date or time, inclusive; UTC when it has no zone.", format="date-time"),
    Param("until", "ISO 8601 date or time, exclusive; UTC when it has no zone.", format="date-time"),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/admin/v1/usage",
        list_usage,
        "List usage records, newest first",
        _TAG,
        response="UsagePage",
        errors=(400, 404),
        query=(
            *_FILTERS,
            Param("limit", "Records per page, 1 to 1000 (default 100).", type="integer"),
            Param("cursor", "The `next_cursor` of the previous page."),
        ),
    ),
    Endpoint(
        "GET",
        "/admin/v1/usage/summary",
        summarize_usage,
        "Summarize usage: totals, per model and per UTC day",
        _TAG,
        response="UsageSummary",
        errors=(400, 404),
        query=_FILTERS,
    ),
)
