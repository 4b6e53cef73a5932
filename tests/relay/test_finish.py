"""`Gateway.finish` with the in-process book and counters: the money path of a finished call runs inline (no
task, nothing awaited), charges once, and corrects the rate limiter's token count."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing import Billing, MemoryBook
from clearmaas.billing.disabled import DisabledBilling
from clearmaas.billing.usage_log import UsageLog
from clearmaas.canonical.usage import Usage
from clearmaas.limits import LimitCache, Limiter, Limits, MemoryCounter
from clearmaas.limits.disabled import Unlimited
from clearmaas.relay.gateway import Gateway
from clearmaas.store.schema import ledger_entries, usage_records
from tests.billing.support import CATALOGUE, MODEL, call_record, funded_key

# A key that exists nowhere: with billing off nothing is looked up.
OFFLINE_KEY = KeyRecord("key_1", "ws_1", "ws", None, "p", None, None, None, (), datetime.now(UTC))


def _gateway(billing: Billing | DisabledBilling, limits: Limiter | Unlimited) -> Gateway:
    # Only what `finish` and the limiter calls use; the rest of a Gateway is not needed here.
    gateway = Gateway.__new__(Gateway)
    gateway.billing, gateway.limits = billing, limits
    return gateway


def _run_inline(work: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that must finish in its first step (it never suspends)."""
    with pytest.raises(StopIteration):
        work.send(None)


async def test_finish_charges_logs_and_adjusts_inline(sqlite_engine: Engine) -> None:
    key = funded_key(sqlite_engine, balance_micros=1_000_000)
    book = MemoryBook(sqlite_engine)
    billing = Billing(book=book, usage_log=UsageLog(sqlite_engine, on_flushed=book.flushed), catalogue=CATALOGUE)
    await billing.start()
    limiter = Limiter(MemoryCounter(), LimitCache(None))
    limiter.limits.put(key.workspace_id, Limits(tpm=100_000))
    gateway = _gateway(billing, limiter)
    tasks_before = len(asyncio.all_tasks())

    record = call_record(key, Usage(input_tokens=100, output_tokens=50))
    record.limit_tokens = 5_000
    admission = limiter.admit_now(key.workspace_id, tokens=record.limit_tokens)
    assert admission is not None
    record.admission = admission
    record.reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=1_000)
    _run_inline(gateway.finish(record))

    assert len(asyncio.all_tasks()) == tasks_before  # no settle task was started
    cost = 100 * 3 + 50 * 15
    assert record.reservation is None and book.spent(key.id) == cost and book.active_reservations == 0
    assert await limiter.counter.usage(key.workspace_id) == (1, 150)
    await billing.stop()
    with sqlite_engine.connect() as c:
        assert c.execute(select(func.count()).select_from(usage_records)).scalar_one() == 1
        charged = c.execute(select(ledger_entries.c.amount_micros).where(ledger_entries.c.kind == "charge")).all()
    assert charged == [(-cost,)]


async def test_with_billing_off_finish_does_nothing_and_never_suspends() -> None:
    gateway = _gateway(DisabledBilling(), Unlimited())
    admission = gateway.limits.admit_now("ws", tokens=10)
    assert admission is not None and admission.window is None
    record = call_record(OFFLINE_KEY, Usage(output_tokens=5))
    record.admission = admission
    _run_inline(gateway.finish(record))
    assert record.finished is not None

