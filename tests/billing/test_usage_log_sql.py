"""`write_batch` stores exactly what the SQLAlchemy tables would, and stays idempotent, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing import usage_log
from clearmaas.billing.export import ExportFilter, iter_usage
from clearmaas.billing.ledger import reconcile
from clearmaas.billing.usage_log import UsageItem, UsageLog, write_batch
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, workspaces
from tests.billing.support import funded_key, usage_item

MOMENT = datetime(2026, 11, 20, 9, 15, 30, 123_456, tzinfo=UTC)


def item(key: KeyRecord, cost: int = 0, **fields: Any) -> UsageItem:
    values: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "created_at": MOMENT,
        "endpoint": "openai_chat",
        "status": 200,
        "workspace_id": key.workspace_id,
        "key_id": key.id,
        "requested_model": "clearmaas/auto",
        "served_model": "anthropic/test-model",
        "cost_micros": cost,
        "book_charged": cost > 0,
    }
    values.update(fields)
    return usage_item(**values)


def raw_row(connection: Connection, table: str, request_id: str) -> tuple[Any, ...]:
    """The row as the driver returns it (on SQLite the stored text itself), without its request id and key."""
    result = connection.exec_driver_sql(f"SELECT * FROM {table} WHERE request_id = '{request_id}'")
    names = list(result.keys())
    row = result.one()
    return tuple(value for name, value in zip(names, row, strict=True) if name not in ("request_id", "id"))


def variants(key: KeyRecord) -> list[UsageItem]:
    plus_five = timezone(timedelta(hours=5, minutes=30))
    return [
        item(key, 120, stream=True, client_disconnected=True, server_tool_calls={"web_search": 2, "code": 1}),
        item(key, 0, created_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC), status=403, error_code="quota"),
        item(key, 77, created_at=datetime(2026, 11, 20, 14, 45, 30, 5, tzinfo=plus_five), fallback_level=2),
        item(key, 5, requested_model="m" * 300, router="r" * 80, error_code="e" * 90, latency_ms=1, ttft_ms=0),
        item(key, 9, workspace_id=key.workspace_id, key_id=None, input_tokens=2**40, reasoning_tokens=3),
        item(key, 0, workspace_id=None, key_id=None, requested_model=None, served_model=None, endpoint="e" * 40),
    ]


def test_every_column_is_written_in_the_table_order() -> None:
    assert usage_log._COLUMNS == tuple(usage_records.c.keys())


def test_records_and_charges_are_stored_exactly_as_the_tables_store_them(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=10_000)
    batch = variants(key)
    assert write_batch(engine, batch) == len(batch)
    with engine.begin() as connection:
        for record in batch:
            twin = f"orm-{record.request_id}"
            connection.execute(usage_records.insert(), {**record.row(), "request_id": twin})
            if record.cost_micros and record.workspace_id is not None:
                connection.execute(
                    ledger_entries.insert(),
                    {
                        "workspace_id": record.workspace_id,
                        "kind": "charge",
                        "amount_micros": -record.cost_micros,
                        "request_id": twin,
                        "key_id": record.key_id,
                        "created_at": record.created_at,
                    },
                )
    with engine.connect() as connection:
        for record in batch:
            twin = f"orm-{record.request_id}"
            assert raw_row(connection, "usage_records", record.request_id) == raw_row(
                connection, "usage_records", twin
            )
            if record.cost_micros and record.workspace_id is not None:
                assert raw_row(connection, "ledger_entries", record.request_id) == raw_row(
                    connection, "ledger_entries", twin
                )
        # And read back through the tables, as every other module does.
        stored = {row.request_id: row for row in connection.execute(select(usage_records))}
    first, _, offset, long_text, _, anonymous = batch
    assert stored[first.request_id].created_at == MOMENT
    assert stored[offset.request_id].created_at == datetime(2026, 11, 20, 9, 15, 30, 5, tzinfo=UTC)
    assert stored[first.request_id].server_tool_calls == '{"web_search":2,"code":1}'
    assert (stored[first.request_id].stream, stored[first.request_id].client_disconnected) == (1, 1)
    assert stored[long_text.request_id].requested_model == "m" * 200
    assert stored[long_text.request_id].router == "r" * 64
    assert stored[anonymous.request_id].endpoint == "e" * 32
    assert stored[anonymous.request_id].server_tool_calls is None


def test_the_export_filters_by_time_on_what_the_writer_stored(engine: Engine) -> None:
    key = funded_key(engine)
    hour = datetime(2026, 11, 20, 10, tzinfo=UTC)
    ahead = timezone(timedelta(hours=2))
    batch = [
        item(key, request_id="before", created_at=hour - timedelta(microseconds=1)),
        item(key, request_id="on-the-hour", created_at=hour.astimezone(ahead)),
        item(key, request_id="within", created_at=hour + timedelta(minutes=30, microseconds=7)),
        item(key, request_id="at-the-end", created_at=hour + timedelta(hours=1)),
    ]
    write_batch(engine, batch)

    def ids(**where: Any) -> list[str]:
        return [row["request_id"] for row in iter_usage(engine, ExportFilter(**where))]

    assert ids(since=hour, until=hour + timedelta(hours=1)) == ["on-the-hour", "within"]
    assert ids(since=hour + timedelta(microseconds=1)) == ["within", "at-the-end"]
    assert ids(until=hour) == ["before"]
    assert [row["created_at"] for row in iter_usage(engine, ExportFilter(until=hour + timedelta(seconds=1)))] == [
        "2026-11-20T09:59:59.999999Z",
        "2026-11-20T10:00:00Z",
    ]


def money(engine: Engine, key: KeyRecord) -> tuple[int, int, int, int]:
    with engine.connect() as c:
        return (
            c.execute(select(func.count()).select_from(usage_records)).scalar_one(),
            c.execute(
                select(func.count()).select_from(ledger_entries).where(ledger_entries.c.kind == "charge")
            ).scalar_one(),
            c.execute(select(workspaces.c.balance_micros).where(workspaces.c.id == key.workspace_id)).scalar_one(),
            c.execute(select(api_keys.c.spent_micros).where(api_keys.c.id == key.id)).scalar_one(),
        )


def test_a_batch_partly_stored_before_charges_only_the_new_records(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    first = [item(key, 10) for _ in range(3)]
    assert write_batch(engine, first) == 3
    retried = [*first[1:], item(key, 100), first[1], item(key, 1_000)]
    assert write_batch(engine, retried) == 2
    assert write_batch(engine, retried) == 0
    assert money(engine, key) == (5, 5, 1_000_000 - 1_130, 1_130)
    assert reconcile(engine) == []


def test_a_large_retried_batch_finds_every_stored_record(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    stored = [item(key, 1) for _ in range(1_234)]  # more ids than one `IN (...)` of the SQLite retry takes
    assert write_batch(engine, stored) == 1_234
    assert write_batch(engine, [*stored, item(key, 5)]) == 1
    assert money(engine, key) == (1_235, 1_235, 1_000_000 - 1_239, 1_239)


def test_a_charge_without_a_key_moves_the_balance_only(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000)
    assert write_batch(engine, [item(key, 40, key_id=None), item(key, 60, workspace_id=None)]) == 2
    assert money(engine, key) == (2, 1, 1_000 - 40, 0)
    assert write_batch(engine, []) == 0


def test_request_ids_are_cut_to_the_column_before_they_are_compared(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000)
    long_id = "x" * 64
    assert write_batch(engine, [item(key, 1, request_id=long_id + "a"), item(key, 1, request_id=long_id + "b")]) == 1
    assert write_batch(engine, [item(key, 1, request_id=long_id)]) == 0
    assert money(engine, key) == (1, 1, 999, 1)


def unstorable(key: KeyRecord, cost: int = 0) -> UsageItem:
    """A record whose built-in tool counts cannot be serialised (the one value a call record could hold that
    no column takes)."""
    return item(key, cost, server_tool_calls={"web_search": object()})


def test_an_unstorable_value_fails_the_batch_before_anything_is_stored(engine: Engine) -> None:
    key = funded_key(engine)
    with pytest.raises(SQLAlchemyError, match="cannot be stored"):
        write_batch(engine, [item(key), unstorable(key)])
    assert money(engine, key)[0] == 0


async def test_the_log_drops_only_the_record_it_cannot_store(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    poison = unstorable(key, 3)
    log = UsageLog(engine, max_delay=0.05)
    await log.start()
    for record in (item(key, 1), poison, item(key, 2)):
        await log.put(record)
    await log.stop()
    assert money(engine, key) == (2, 2, 1_000 - 3, 3)
    lost = [r for r in caplog.records if r.levelno == logging.ERROR and "NOT stored" in r.getMessage()]
    assert len(lost) == 1 and poison.request_id in lost[0].getMessage()


def test_an_unknown_workspace_fails_the_batch_and_stores_nothing(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000)
    good = item(key, 1)
    with pytest.raises(SQLAlchemyError):
        write_batch(engine, [good, replace(item(key, 5), workspace_id="ws_does_not_exist")])
    assert money(engine, key) == (0, 0, 1_000, 0)
    assert write_batch(engine, [good]) == 1
