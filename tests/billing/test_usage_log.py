from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing import usage_log
from clearmaas.billing.book import Charge
from clearmaas.billing.ledger import reconcile
from clearmaas.billing.usage_log import UsageItem, UsageLog, write_batch
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, workspaces
from tests.billing.support import funded_key, usage_item


def item(key: KeyRecord, cost: int, **fields: Any) -> UsageItem:
    values: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC),
        "endpoint": "openai_chat",
        "status": 200,
        "workspace_id": key.workspace_id,
        "key_id": key.id,
        "served_model": "anthropic/test-model",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_micros": cost,
        "book_charged": cost > 0,
    }
    values.update(fields)
    return usage_item(**values)


def block_writes(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make every batch write wait (up to 10 s) until the returned event is set."""
    gate = threading.Event()

    def blocked(engine: Engine, items: Sequence[UsageItem]) -> int:
        gate.wait(10)
        return write_batch(engine, items)

    monkeypatch.setattr(usage_log, "write_batch", blocked)
    return gate


async def stuck_log(
    engine: Engine, key: KeyRecord, monkeypatch: pytest.MonkeyPatch, *, max_queue: int
) -> tuple[UsageLog, threading.Event]:
    """A started log whose writer holds one record and is stuck writing it until the event is set."""
    gate = block_writes(monkeypatch)
    log = UsageLog(engine, max_queue=max_queue, max_delay=0.0)
    await log.start()
    await log.put(item(key, 1))
    while log.pending > 0:
        await asyncio.sleep(0.01)
    return log, gate


def money(engine: Engine, key: KeyRecord) -> tuple[int, int, int, int]:
    """(usage records, charge entries, workspace balance, key spend)."""
    with engine.connect() as c:
        return (
            c.execute(select(func.count()).select_from(usage_records)).scalar_one(),
            c.execute(
                select(func.count()).select_from(ledger_entries).where(ledger_entries.c.kind == "charge")
            ).scalar_one(),
            c.execute(select(workspaces.c.balance_micros).where(workspaces.c.id == key.workspace_id)).scalar_one(),
            c.execute(select(api_keys.c.spent_micros).where(api_keys.c.id == key.id)).scalar_one(),
        )


def test_a_batch_writes_records_charges_balance_and_spend_together(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=10_000)
    other = funded_key(engine, balance_micros=0)  # same workspace, second key
    refused = item(key, 0, status=403, error_code="insufficient_user_quota", input_tokens=0, output_tokens=0)
    batch = [item(key, 100), item(key, 250), item(other, 50), refused]
    assert write_batch(engine, batch) == 4
    assert money(engine, key) == (4, 3, 10_000 - 400, 350)
    assert money(engine, other)[3] == 50
    assert reconcile(engine) == []


def test_a_sqlite_batch_gives_the_core_back_while_it_runs_and_only_then(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    yields: list[int] = []
    monkeypatch.setattr(usage_log, "_sched_yield", lambda: yields.append(threading.get_ident()))
    monkeypatch.setattr(usage_log, "_YIELD_AFTER", 0.0)  # every progress call is due
    key = funded_key(sqlite_engine, balance_micros=10**9)
    batch = [item(key, 10) for _ in range(300)]
    assert write_batch(sqlite_engine, batch) == 300
    assert len(yields) >= 10  # a few thousand steps per ten rows: many calls over 300 records and charges
    after = len(yields)
    with sqlite_engine.connect() as connection:  # the same pooled connection, outside a batch
        # A cross join of ~90,000 rows: hundreds of thousands of steps, a progress call every 1,000 if installed.
        connection.exec_driver_sql("SELECT count(*) FROM usage_records, ledger_entries").one()
    assert len(yields) == after
    assert money(sqlite_engine, key) == (300, 300, 10**9 - 3000, 3000)


def test_writing_a_batch_again_charges_nothing_twice(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=10_000)
    batch = [item(key, 100), item(key, 200)]
    assert write_batch(engine, batch) == 2
    assert write_batch(engine, batch) == 0
    duplicate = item(key, 300)
    assert write_batch(engine, [duplicate, duplicate, batch[0]]) == 1
    assert money(engine, key) == (3, 3, 10_000 - 600, 600)
    assert reconcile(engine) == []


async def test_a_batch_retried_after_an_ambiguous_commit_is_charged_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    calls = []

    def commit_then_fail(engine: Engine, items: Sequence[UsageItem]) -> int:
        calls.append(len(items))
        written = write_batch(engine, items)
        if len(calls) == 1:
            raise OperationalError("COMMIT", {}, Exception("connection lost after commit"))
        return written

    monkeypatch.setattr(usage_log, "write_batch", commit_then_fail)
    flushed: list[list[Charge]] = []
    log = UsageLog(engine, on_flushed=flushed.append, retry_delay=0.01, max_delay=0.05)
    await log.start()
    for _ in range(3):
        await log.put(item(key, 100))
    await log.stop()
    assert calls == [3, 3]
    assert money(engine, key) == (3, 3, 10_000 - 300, 300)
    assert [sum(c.micros for c in batch) for batch in flushed] == [300]


async def test_put_waits_for_room_when_the_queue_is_full_and_nothing_is_lost(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(engine, balance_micros=100_000)
    log, gate = await stuck_log(engine, key, monkeypatch, max_queue=3)
    for _ in range(3):
        await asyncio.wait_for(log.put(item(key, 1)), 1)
    assert log.pending == 3
    waiting = asyncio.create_task(log.put(item(key, 1)))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # back-pressure: the fifth record waits instead of being dropped
    gate.set()
    await asyncio.wait_for(waiting, 5)
    await log.stop()
    assert money(engine, key) == (5, 5, 100_000 - 5, 5)


async def test_stop_writes_everything_queued(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=10_000_000)
    log = UsageLog(engine, batch_size=128)
    await log.start()
    for _ in range(1_500):
        await log.put(item(key, 3))
    await log.stop()
    assert money(engine, key) == (1_500, 1_500, 10_000_000 - 4_500, 4_500)
    # A record that arrives after shutdown (a request that outlived it) is written directly.
    await log.put(item(key, 7))
    assert money(engine, key)[0] == 1_501
    assert reconcile(engine) == []


async def test_an_unreachable_database_is_retried_until_it_answers(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    failures = [2]

    def flaky(engine: Engine, items: Sequence[UsageItem]) -> int:
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return write_batch(engine, items)

    monkeypatch.setattr(usage_log, "write_batch", flaky)
    log = UsageLog(engine, retry_delay=0.01)
    await log.start()
    await log.put(item(key, 40))
    await log.stop()
    assert money(engine, key) == (1, 1, 10_000 - 40, 40)
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2


async def test_a_record_the_database_refuses_is_logged_and_does_not_block_the_others(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    poison = item(key, 10, workspace_id="ws_does_not_exist")  # the charge's foreign key fails
    log = UsageLog(engine, max_delay=0.1)
    await log.start()
    for record in (item(key, 1), poison, item(key, 2)):
        await log.put(record)
    await log.stop()
    assert money(engine, key) == (2, 2, 10_000 - 3, 3)
    lost = [r for r in caplog.records if r.levelno == logging.ERROR and "NOT stored" in r.getMessage()]
    assert len(lost) == 1 and poison.request_id in lost[0].getMessage()


async def test_maintenance_runs_between_batches_never_during_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(engine, balance_micros=10_000_000)
    writing = threading.Event()
    overlaps: list[bool] = []
    maintained = asyncio.Event()

    def slow(engine: Engine, items: Sequence[UsageItem]) -> int:
        writing.set()
        try:
            threading.Event().wait(0.02)
            return write_batch(engine, items)
        finally:
            writing.clear()

    async def maintain(*, refresh: bool) -> None:
        overlaps.append(writing.is_set())
        maintained.set()

    monkeypatch.setattr(usage_log, "write_batch", slow)
    log = UsageLog(engine, maintain=maintain, maintain_interval=0.01, max_delay=0.01, batch_size=5)
    await log.start()
    for _ in range(60):
        await log.put(item(key, 1))
        await asyncio.sleep(0.002)
    await asyncio.wait_for(maintained.wait(), 5)
    await log.stop()
    assert overlaps and not any(overlaps)
    assert money(engine, key)[0] == 60


def recording_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []

    def recorded(engine: Engine, items: Sequence[UsageItem]) -> int:
        sizes.append(len(items))
        return write_batch(engine, items)

    monkeypatch.setattr(usage_log, "write_batch", recorded)
    return sizes


async def test_a_burst_arriving_within_the_delay_is_written_as_one_batch(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(sqlite_engine, balance_micros=10_000)
    sizes = recording_batches(monkeypatch)
    log = UsageLog(sqlite_engine, max_delay=0.5)
    await log.start()
    for _ in range(10):
        await log.put(item(key, 1))
        await asyncio.sleep(0.005)
    while log.written < 10:
        await asyncio.sleep(0.01)
    await log.stop()
    assert sizes == [10]


async def test_a_full_batch_is_written_without_waiting_for_the_delay(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(sqlite_engine, balance_micros=10_000)
    sizes = recording_batches(monkeypatch)
    log = UsageLog(sqlite_engine, batch_size=5, max_delay=30)
    await log.start()
    for _ in range(7):
        assert log.offer(item(key, 1))
    async with asyncio.timeout(5):
        while log.written < 5:
            await asyncio.sleep(0.01)
        # The two left over are waiting for the delay; stopping writes them at once.
        await log.stop()
    assert sizes == [5, 2]
    assert money(sqlite_engine, key)[:2] == (7, 7)


async def test_a_full_queue_smaller_than_a_batch_wakes_the_writer(sqlite_engine: Engine) -> None:
    key = funded_key(sqlite_engine, balance_micros=10_000)
    log = UsageLog(sqlite_engine, max_queue=3, batch_size=500, max_delay=30)
    await log.start()
    async with asyncio.timeout(5):
        for _ in range(8):
            await log.put(item(key, 1))  # waits for room; the writer must not wait out its delay
        while log.written < 6:
            await asyncio.sleep(0.01)
        await log.stop()
    assert log.written == 8


async def test_offer_queues_without_waiting_and_declines_when_full_or_stopped(sqlite_engine: Engine) -> None:
    key = funded_key(sqlite_engine, balance_micros=10_000)
    log = UsageLog(sqlite_engine, max_queue=2)
    assert log.offer(item(key, 1)) and log.offer(item(key, 1))
    refused = item(key, 1)
    assert not log.offer(refused)
    assert log.pending == 2
    await log.start()
    await log.put(refused)  # what a caller does when offer declines: wait for room
    await log.stop()
    assert log.written == 3
    late = item(key, 1)
    assert not log.offer(late)  # after stop: not queued (nothing would write it) ...
    await log.put(late)  # ... put writes it directly
    assert money(sqlite_engine, key)[:2] == (4, 4)


async def test_maintenance_runs_while_no_record_arrives(sqlite_engine: Engine) -> None:
    calls: list[bool] = []

    async def maintain(*, refresh: bool) -> None:
        calls.append(refresh)

    log = UsageLog(sqlite_engine, maintain=maintain, maintain_interval=0.02)
    await log.start()
    async with asyncio.timeout(5):
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        await log.stop()
    assert calls[:3] == [True, True, True]


async def test_stop_during_a_write_does_not_wait_out_the_delay(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(sqlite_engine, balance_micros=10_000)
    gate = block_writes(monkeypatch)
    log = UsageLog(sqlite_engine, batch_size=5, max_delay=30)
    await log.start()
    for _ in range(5):
        assert log.offer(item(key, 1))
    while log.pending > 0:  # the writer has taken the batch and is stuck writing it
        await asyncio.sleep(0.01)
    for _ in range(2):
        assert log.offer(item(key, 1))
    stopping = asyncio.create_task(log.stop())
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.wait_for(stopping, 5)
    assert money(sqlite_engine, key)[:2] == (7, 7)


async def test_producers_waiting_for_room_lose_nothing_when_the_log_stops(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(sqlite_engine, balance_micros=100_000)
    log, gate = await stuck_log(sqlite_engine, key, monkeypatch, max_queue=2)
    assert log.offer(item(key, 1)) and log.offer(item(key, 1))
    waiting = [asyncio.create_task(log.put(item(key, 1))) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)
    # A record offered while others wait for room queues behind them, not ahead.
    assert not log.offer(item(key, 1))
    stopping = asyncio.create_task(log.stop())
    await asyncio.sleep(0.05)
    gate.set()
    async with asyncio.timeout(5):
        await stopping
        await asyncio.gather(*waiting)
    assert money(sqlite_engine, key) == (8, 8, 100_000 - 8, 8)
