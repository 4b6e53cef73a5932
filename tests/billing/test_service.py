from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.book import MemoryBook
from clearmaas.billing.ledger import add_credit, reconcile
from clearmaas.billing.service import Billing, reservation_ttl
from clearmaas.billing.usage_log import UsageLog
from clearmaas.canonical.usage import Usage
from clearmaas.errors import InsufficientQuota, ModelPriceError
from clearmaas.relay.record import CallRecord
from clearmaas.settings import ProviderSettings, Settings, TimeoutSettings
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, workspaces
from tests.billing.conftest import REDIS_URL
from tests.billing.support import CATALOGUE, MODEL, call_record, funded_key, usage_item

BillingFactory = Callable[..., Coroutine[Any, Any, Billing]]

# input 100 at the dearest input price + 100 output: 100×3.75 + 100×15 = 1875 micro-dollars.
BOUND = 1_875
# A usage that costs exactly the bound (all input written to the cache).
FULL = Usage(cache_write_tokens=100, output_tokens=100)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_billing(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[BillingFactory]:
    started: list[Billing] = []
    if request.param == "redis":
        request.getfixturevalue("redis_keys_cleanup")  # skips without Redis, and cleans the prefix up afterwards

    async def make(**options: Any) -> Billing:
        settings = Settings(data_dir=tmp_path, redis_url=REDIS_URL if request.param == "redis" else None)
        billing = Billing.from_settings(settings, engine, CATALOGUE, redis_prefix=redis_prefix, **options)
        await billing.start()
        started.append(billing)
        return billing

    yield make
    for billing in started:
        await billing.stop()


def totals(engine: Engine, key: KeyRecord) -> dict[str, int]:
    with engine.connect() as c:
        return {
            "records": c.execute(select(func.count()).select_from(usage_records)).scalar_one(),
            "charges": c.execute(
                select(func.count()).select_from(ledger_entries).where(ledger_entries.c.kind == "charge")
            ).scalar_one(),
            "charged": -c.execute(
                select(func.coalesce(func.sum(ledger_entries.c.amount_micros), 0)).where(
                    ledger_entries.c.kind == "charge"
                )
            ).scalar_one(),
            "balance": c.execute(
                select(workspaces.c.balance_micros).where(workspaces.c.id == key.workspace_id)
            ).scalar_one(),
            "spent": c.execute(select(api_keys.c.spent_micros).where(api_keys.c.id == key.id)).scalar_one(),
        }


async def serve(billing: Billing, key: KeyRecord, usage: Usage, *, check: Callable[[], None] = lambda: None) -> bool:
    """One request as the relay makes it: reserve, 'call upstream', settle; a refusal is logged too."""
    record = call_record(key, usage)
    try:
        reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    except InsufficientQuota as exc:
        record.status, record.error_code, record.usage = exc.status, exc.code, Usage()
        await billing.settle(None, record)
        return False
    check()
    await asyncio.sleep(random.random() / 100)
    await billing.settle(reservation, record)
    check()
    return True


async def test_two_hundred_concurrent_requests_never_spend_more_than_the_key_credit(
    engine: Engine, make_billing: BillingFactory
) -> None:
    limit = 20 * BOUND + BOUND // 2
    key = funded_key(engine, balance_micros=10_000_000, credit_limit_micros=limit)
    billing = await make_billing()

    def never_negative() -> None:
        if isinstance(billing.book, MemoryBook):
            assert billing.book.remaining_credit(key.id, limit) >= 0
            assert billing.book.available(key.workspace_id) >= 0

    served = await asyncio.gather(*(serve(billing, key, FULL, check=never_negative) for _ in range(200)))
    await billing.stop()
    assert sum(served) == 20
    assert totals(engine, key) == {
        "records": 200, "charges": 20, "charged": 20 * BOUND, "balance": 10_000_000 - 20 * BOUND, "spent": 20 * BOUND,
    }  # fmt: skip
    assert reconcile(engine) == []


async def test_two_hundred_concurrent_requests_never_overdraw_the_workspace(
    engine: Engine, make_billing: BillingFactory
) -> None:
    key = funded_key(engine, balance_micros=20 * BOUND + BOUND - 1)
    second = funded_key(engine)
    billing = await make_billing()
    served = await asyncio.gather(*(serve(billing, (key, second)[i % 2], FULL) for i in range(200)))
    await billing.stop()
    assert sum(served) == 20
    assert totals(engine, key)["balance"] == BOUND - 1
    assert reconcile(engine) == []


async def test_mixed_outcomes_settle_to_exactly_what_was_generated(
    engine: Engine, make_billing: BillingFactory
) -> None:
    limit = 60 * BOUND
    key = funded_key(engine, balance_micros=10_000_000, credit_limit_micros=limit)
    billing = await make_billing()
    rng = random.Random(7)
    expected = 0

    async def one() -> None:
        nonlocal expected
        record = call_record(key)
        try:
            reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
        except InsufficientQuota:
            return
        await asyncio.sleep(rng.random() / 200)
        outcome = rng.choice(["complete", "disconnected", "failed", "failed_in_stream"])
        if outcome == "failed":  # upstream error before any output
            record.status, record.error_code = 502, "upstream_error"
            await billing.release(reservation)
            return
        generated = rng.randint(0, 100)
        record.usage = Usage(input_tokens=100, output_tokens=generated)
        record.client_disconnected = outcome == "disconnected"
        expected += 100 * 3 + generated * 15
        await billing.settle(reservation, record)

    await asyncio.gather(*(one() for _ in range(200)))
    await billing.stop()
    result = totals(engine, key)
    assert result["charged"] == result["spent"] == expected <= limit
    assert reconcile(engine) == []


async def test_refused_and_failed_requests_are_logged_without_charge(
    engine: Engine, make_billing: BillingFactory
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    billing = await make_billing()
    unauthenticated = call_record(key, status=401, error_code="invalid_api_key")
    unauthenticated.workspace_id = unauthenticated.key_id = None
    await billing.settle(None, unauthenticated)  # workspace unknown: nothing to log
    await billing.settle(None, call_record(key, status=429, error_code="rate_limit_exceeded"))
    reservation = await billing.reserve(key, MODEL, input_tokens=10, max_output_tokens=10)
    await billing.settle(reservation, call_record(key, status=502, error_code="upstream_error"))
    await billing.stop()
    assert totals(engine, key) == {"records": 2, "charges": 0, "charged": 0, "balance": 10_000, "spent": 0}
    with engine.connect() as c:
        statuses = sorted(c.execute(select(usage_records.c.status, usage_records.c.cost_micros)).all())
    assert statuses == [(429, 0), (502, 0)]


async def test_the_usage_record_carries_the_call(engine: Engine, make_billing: BillingFactory) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    billing = await make_billing()
    usage = Usage(
        input_tokens=100,
        cache_read_tokens=1_000,
        output_tokens=50,
        reasoning_tokens=20,
        server_tool_calls={"web_search": 1},
    )
    record = call_record(key, usage, router="cheap", fallback_level=1, stream=True, client_disconnected=True)
    record.mark_first_byte()
    reservation = await billing.reserve(key, MODEL, input_tokens=1_100, max_output_tokens=100)
    await billing.settle(reservation, record)
    await billing.stop()
    with engine.connect() as c:
        row = c.execute(select(usage_records)).one()._mapping
    assert row["request_id"] == record.request_id and row["key_id"] == key.id
    assert (row["router"], row["fallback_level"], row["stream"], row["client_disconnected"]) == ("cheap", 1, 1, 1)
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (
        100,
        1_000,
        50,
        20,
    )
    assert row["server_tool_calls"] == '{"web_search":1}'
    # 100×3 + 1000×0.3 + 50×15 = 1350, plus one Anthropic web search at $0.01.
    assert row["cost_micros"] == 1_350 + 10_000
    assert row["ttft_ms"] is not None and row["latency_ms"] >= row["ttft_ms"]


async def test_reserve_bounds_output_by_the_model_and_refuses_an_unpriced_model(
    engine: Engine, make_billing: BillingFactory
) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    billing = await make_billing()
    capped = await billing.reserve(key, MODEL, input_tokens=0, max_output_tokens=10**9)
    unset = await billing.reserve(key, MODEL, input_tokens=0, max_output_tokens=None)
    assert capped.amount_micros == unset.amount_micros == MODEL.max_output_tokens * 15
    assert (capped.model_id, capped.prices, capped.key_id) == (MODEL.id, MODEL.prices, key.id)
    with pytest.raises(ModelPriceError):
        await billing.reserve(key, replace(MODEL, prices=None), input_tokens=1, max_output_tokens=1)
    with pytest.raises(InsufficientQuota) as refused:
        await billing.reserve(key, MODEL, input_tokens=10**9, max_output_tokens=1)
    assert (refused.value.status, refused.value.code) == (403, "insufficient_user_quota")


async def test_reserve_now_holds_what_fits_and_leaves_a_refusal_to_reserve(
    engine: Engine, make_billing: BillingFactory
) -> None:
    key = funded_key(engine, balance_micros=3 * BOUND)
    billing = await make_billing()
    # The memory book decides everything here; a Redis book once its lease covers the bound (after `reserve`
    # topped it up), so ask the awaited way first as the relay does when `reserve_now` says None.
    first = billing.reserve_now(key, MODEL, input_tokens=100, max_output_tokens=100) or await billing.reserve(
        key, MODEL, input_tokens=100, max_output_tokens=100
    )
    assert first.amount_micros == BOUND
    held = [first]
    while (reservation := billing.reserve_now(key, MODEL, input_tokens=100, max_output_tokens=100)) is not None:
        held.append(reservation)
        assert len(held) <= 3  # never more than the balance covers
    assert len(held) <= 3
    while len(held) < 3:
        held.append(await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100))
    # Nothing is left: the fast path takes nothing and the awaited path says why.
    assert billing.reserve_now(key, MODEL, input_tokens=100, max_output_tokens=100) is None
    with pytest.raises(InsufficientQuota):
        await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    with pytest.raises(ModelPriceError):
        billing.reserve_now(key, replace(MODEL, prices=None), input_tokens=1, max_output_tokens=1)
    for reservation in held:
        await billing.settle(reservation, call_record(key, usage=FULL))
    await billing.stop()
    assert totals(engine, key)["records"] == 3
    assert reconcile(engine) == []


async def test_a_credit_added_by_another_process_is_usable_within_about_a_second(
    engine: Engine, make_billing: BillingFactory
) -> None:
    key = funded_key(engine, balance_micros=100)
    billing = await make_billing()
    with pytest.raises(InsufficientQuota):
        await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    add_credit(engine, "acme", 1_000_000)  # as the CLI does, without touching Redis
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
            break
        except InsufficientQuota:
            assert loop.time() - started < 2.5
            await asyncio.sleep(0.05)


# -- settling inline, and the slow path of a full queue ------------------------------------------------------


async def held_billing(engine: Engine, *, max_queue: int) -> Billing:
    """A memory-book `Billing` whose usage-log writer is NOT started: its queue fills and stays full until the
    test starts the writer, so a settle's slow path is taken deterministically."""
    book = MemoryBook(engine)
    usage_log = UsageLog(engine, on_flushed=book.flushed, maintain=book.maintain, max_queue=max_queue)
    billing = Billing(book=book, usage_log=usage_log, catalogue=CATALOGUE)
    await book.load()
    return billing


def fill_queue(billing: Billing, key: KeyRecord) -> int:
    """Queue cost-0 records of other requests until the queue is full; returns how many."""
    count = 0
    while billing.usage_log.offer(
        usage_item(request_id=uuid.uuid4().hex, created_at=datetime.now(UTC), endpoint="openai_chat", status=429,
                  workspace_id=key.workspace_id, key_id=key.id)
    ):  # fmt: skip
        count += 1
    return count


def stored(engine: Engine, request_id: str) -> tuple[int, int]:
    """(usage records, ledger charges) stored for one request."""
    with engine.connect() as c:
        records = c.execute(
            select(func.count()).select_from(usage_records).where(usage_records.c.request_id == request_id)
        ).scalar_one()
        charges = c.execute(
            select(func.count()).select_from(ledger_entries).where(ledger_entries.c.request_id == request_id)
        ).scalar_one()
    return records, charges


async def test_a_settle_with_room_in_the_queue_runs_inline_and_charges_once(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    billing = await held_billing(engine, max_queue=10)
    book = billing.book
    assert isinstance(book, MemoryBook)
    reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    record = call_record(key, FULL)
    settling = billing.settle(reservation, record)
    # One step completes it: no task, no shield, nothing to wait for, so nothing a cancellation could cut short.
    with pytest.raises(StopIteration):
        settling.send(None)
    assert (book.spent(key.id), book.available(key.workspace_id)) == (BOUND, 1_000_000 - BOUND)
    assert book.active_reservations == 0 and billing.usage_log.pending == 1
    # Settling the same call again charges the book nothing more, and its record is stored once.
    await billing.settle(reservation, record)
    assert book.spent(key.id) == BOUND
    await billing.usage_log.start()
    await billing.stop()
    assert_charged_once(engine, key, record, records=1)


def assert_charged_once(engine: Engine, key: KeyRecord, record: CallRecord, *, records: int) -> None:
    """The call's record is stored once with one ledger charge of BOUND, out of `records` records in all, and
    the books reconcile."""
    assert stored(engine, record.request_id) == (1, 1)
    assert totals(engine, key) == {
        "records": records, "charges": 1, "charged": BOUND, "balance": 1_000_000 - BOUND, "spent": BOUND,
    }  # fmt: skip
    assert reconcile(engine) == []


async def test_release_runs_inline(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    billing = await held_billing(engine, max_queue=10)
    book = billing.book
    assert isinstance(book, MemoryBook)
    reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    assert book.available(key.workspace_id) == 1_000_000 - BOUND
    with pytest.raises(StopIteration):
        billing.release(reservation).send(None)
    assert book.available(key.workspace_id) == 1_000_000 and book.active_reservations == 0


async def test_a_settle_cancelled_while_the_queue_is_full_still_charges_and_logs_once(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    billing = await held_billing(engine, max_queue=2)
    book = billing.book
    assert isinstance(book, MemoryBook)
    assert fill_queue(billing, key) == 2
    reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    record = call_record(key, FULL)
    caller = asyncio.create_task(billing.settle(reservation, record))
    await asyncio.sleep(0)
    # The charge is made before anything waits; the record waits for room in the queue.
    assert not caller.done() and book.spent(key.id) == BOUND and billing.usage_log.pending == 2
    caller.cancel()  # the client hung up
    with pytest.raises(asyncio.CancelledError):
        await caller
    await billing.usage_log.start()
    await billing.stop()
    assert_charged_once(engine, key, record, records=3)


async def test_stop_waits_for_a_settle_waiting_for_room_in_the_queue(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    billing = await held_billing(engine, max_queue=1)
    fill_queue(billing, key)
    reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    record = call_record(key, FULL)
    caller = asyncio.create_task(billing.settle(reservation, record))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    stopping = asyncio.create_task(billing.stop())
    await asyncio.sleep(0.05)
    # The queue cannot drain without its writer: stop must not flush and close while that record waits.
    assert not stopping.done()
    await billing.usage_log.start()
    await asyncio.wait_for(stopping, timeout=10)
    assert stored(engine, record.request_id) == (1, 1)
    assert totals(engine, key)["spent"] == BOUND
    assert reconcile(engine) == []


async def test_a_settle_after_stop_is_still_written(engine: Engine, make_billing: BillingFactory) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    billing = await make_billing()
    reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    await billing.stop()
    record = call_record(key, FULL)
    await billing.settle(reservation, record)
    assert stored(engine, record.request_id) == (1, 1)


async def test_reservation_ids_are_unique_within_and_across_processes(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    # Two Billing objects stand for two replicas (each process has its own).
    replicas = [await held_billing(engine, max_queue=1), await held_billing(engine, max_queue=1)]
    ids = [
        (await billing.reserve(key, MODEL, input_tokens=1, max_output_tokens=1)).id
        for billing in replicas
        for _ in range(50)
    ]
    assert len(set(ids)) == 100
    assert len({reservation_id.rpartition(".")[0] for reservation_id in ids}) == 2


def test_the_usage_row_gets_every_field_of_the_call(engine: Engine) -> None:
    # Distinct values everywhere, so a value landing in the wrong column would show.
    usage = Usage(input_tokens=11, cache_read_tokens=12, cache_write_tokens=13, output_tokens=14,
                  reasoning_tokens=15, server_tool_calls={"web_search": 16})  # fmt: skip
    record = CallRecord(request_id="req-1", endpoint="anthropic_messages", started=100.0, key_id="key-1",
                        workspace_id="ws-1", requested_model="asked", served_model="served", router="cheap",
                        fallback_level=2, stream=True, status=499, error_code="cut", usage=usage,
                        first_byte=100.25, finished=101.5, client_disconnected=True)  # fmt: skip
    billing = Billing(book=MemoryBook(engine), usage_log=UsageLog(engine))
    before = time.time()
    item = billing._charge(None, record)  # refused before reserving: logged at cost 0
    assert item is not None and item.record is record and not item.book_charged
    assert before - 1.5 - 0.01 <= item.started_at <= time.time() - 1.5 + 0.01
    row = item.row()
    assert row.pop("created_at") == datetime.fromtimestamp(item.started_at, UTC)
    assert row == {
        "request_id": "req-1", "endpoint": "anthropic_messages", "status": 499, "workspace_id": "ws-1",
        "key_id": "key-1", "requested_model": "asked", "served_model": "served", "router": "cheap",
        "fallback_level": 2, "stream": 1, "error_code": "cut", "input_tokens": 11, "cache_read_tokens": 12,
        "cache_write_tokens": 13, "output_tokens": 14, "reasoning_tokens": 15,
        "server_tool_calls": '{"web_search":16}', "cost_micros": 0, "latency_ms": 1500, "ttft_ms": 250,
        "client_disconnected": 1,
    }  # fmt: skip
    assert record.latency_ms == row["latency_ms"] and record.ttft_ms == row["ttft_ms"]


def test_settling_finishes_a_call_that_was_not_marked_finished(engine: Engine) -> None:
    billing = Billing(book=MemoryBook(engine), usage_log=UsageLog(engine))
    record = CallRecord(request_id="req-2", endpoint="openai_chat", workspace_id="ws-1", started=time.monotonic())
    item = billing._charge(None, record)
    assert item is not None and record.finished is not None and item.row()["latency_ms"] >= 0


def test_the_reservation_timeout_outlasts_the_longest_attempt() -> None:
    assert reservation_ttl(Settings()) == 1_800
    slow = Settings(providers={"openai": ProviderSettings(timeouts=TimeoutSettings(total=3_600))})
    assert reservation_ttl(slow) == 7_200
