"""Exporting usage records as JSON lines or CSV, filtered by workspace, time, key and model.

Costs are written twice, exactly: `cost_micros` (an integer) and `cost_usd` (a decimal string such as
"0.001234"), never a float. Rows are streamed from the database, so an export of any size runs in constant
memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
from sqlalchemy import Engine, Select, or_, select

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.billing.money import format_usd
from clearmaas.store.schema import usage_records, workspaces

__all__ = ["EXPORT_FIELDS", "ExportFilter", "export_usage", "iter_usage", "parse_moment"]

ExportFormat = Literal["jsonl", "csv"]

EXPORT_FIELDS: tuple[str, ...] = (
    "request_id",
    "created_at",
    "workspace",
    "key_id",
    "model",
    "requested_model",
    "served_model",
    "router",
    "fallback_level",
    "endpoint",
    "stream",
    "status",
    "error_code",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "server_tool_calls",
    "cost_micros",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "client_disconnected",
)


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Every field narrows the export; None means no filter. `since` is inclusive, `until` exclusive;
    `model` matches either the requested or the served model id."""

    workspace: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    key_id: str | None = None
    model: str | None = None


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; one without a time zone is UTC. Raises ValueError."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time (use e.g. 2026-11-01 or 2026-11-01T12:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _query(engine: Engine, where: ExportFilter) -> Select[Any]:
    query = select(usage_records, workspaces.c.name.label("workspace")).outerjoin(
        workspaces, workspaces.c.id == usage_records.c.workspace_id
    )
    if where.workspace is not None:
        with engine.connect() as connection:
            workspace_id = connection.execute(
                select(workspaces.c.id).where(workspaces.c.name == where.workspace)
            ).scalar()
        if workspace_id is None:
            raise WorkspaceNotFound(f"no workspace named {where.workspace!r}")
        query = query.where(usage_records.c.workspace_id == workspace_id)
    if where.since is not None:
        query = query.where(usage_records.c.created_at >= where.since)
    if where.until is not None:
        query = query.where(usage_records.c.created_at < where.until)
    if where.key_id is not None:
        query = query.where(usage_records.c.key_id == where.key_id)
    if where.model is not None:
        query = query.where(
            or_(usage_records.c.served_model == where.model, usage_records.c.requested_model == where.model)
        )
    return query.order_by(usage_records.c.created_at, usage_records.c.request_id)


def iter_usage(engine: Engine, where: ExportFilter = ExportFilter()) -> Iterator[dict[str, Any]]:
    """The matching records, oldest first, as export rows (the keys of `EXPORT_FIELDS`)."""
    query = _query(engine, where)
    with engine.connect() as connection:
        for row in connection.execution_options(stream_results=True, yield_per=500).execute(query):
            m = row._mapping
            cost = int(m["cost_micros"])
            yield {
                "request_id": m["request_id"],
                "created_at": m["created_at"].isoformat().replace("+00:00", "Z"),
                "workspace": m["workspace"],
                "key_id": m["key_id"],
                "model": m["served_model"] or m["requested_model"],
                "requested_model": m["requested_model"],
                "served_model": m["served_model"],
                "router": m["router"],
                "fallback_level": m["fallback_level"],
                "endpoint": m["endpoint"],
                "stream": bool(m["stream"]),
                "status": m["status"],
                "error_code": m["error_code"],
                "input_tokens": int(m["input_tokens"]),
                "cache_read_tokens": int(m["cache_read_tokens"]),
                "cache_write_tokens": int(m["cache_write_tokens"]),
                "output_tokens": int(m["output_tokens"]),
                "reasoning_tokens": int(m["reasoning_tokens"]),
                "server_tool_calls": orjson.loads(m["server_tool_calls"]) if m["server_tool_calls"] else {},
                "cost_micros": cost,
                "cost_usd": format_usd(cost),
                "latency_ms": m["latency_ms"],
                "ttft_ms": m["ttft_ms"],
                "client_disconnected": bool(m["client_disconnected"]),
            }


def export_usage(engine: Engine, out: TextIO, *, format: ExportFormat, where: ExportFilter = ExportFilter()) -> int:
    """Write the matching records to `out`; returns how many. Raises WorkspaceNotFound."""
    count = 0
    if format == "jsonl":
        for record in iter_usage(engine, where):
            out.write(orjson.dumps(record).decode())
            out.write("\n")
            count += 1
        return count
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in iter_usage(engine, where):
        record["server_tool_calls"] = (
            orjson.dumps(record["server_tool_calls"]).decode() if record["server_tool_calls"] else ""
        )
        writer.writerow(record)
        count += 1
    return count
