from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import Engine, delete, select, update

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.book import Reservation
from clearmaas.billing.ledger import add_credit, reconcile, workspace_summary
from clearmaas.billing.redis_book import RedisBook
from clearmaas.billing.usage_log import write_batch
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, workspaces
from tests.billing.conftest import REDIS_URL
from tests.billing.support import PRICES, funded_key, usage_item


def charge(engine: Engine, key: KeyRecord, cost: int) -> str:
    request_id = uuid.uuid4().hex
    item = usage_item(
        request_id=request_id,
        created_at=datetime.now(UTC),
        endpoint="anthropic_messages",
        status=200,
        workspace_id=key.workspace_id,
        key_id=key.id,
        cost_micros=cost,
    )
    write_batch(engine, [item])
    return request_id


def test_add_credit_records_an_entry_and_moves_the_balance_together(engine: Engine) -> None:
    key = funded_key(engine)
    with engine.connect() as c:
        before = c.execute(select(workspaces.c.updated_at).where(workspaces.c.id == key.workspace_id)).scalar_one()
    credit = add_credit(engine, "acme", 12_500_000, reason="invoice 42", actor="ops")
    again = add_credit(engine, "acme", 1)
    assert (credit.amount_micros, credit.balance_micros, credit.live) == (12_500_000, 12_500_000, None)
    assert again.balance_micros == 12_500_001 and again.entry_id != credit.entry_id
    with engine.connect() as c:
        entry = c.execute(select(ledger_entries).where(ledger_entries.c.id == credit.entry_id)).one()._mapping
        updated = c.execute(select(workspaces.c.updated_at).where(workspaces.c.id == key.workspace_id)).scalar_one()
    assert (entry["kind"], entry["amount_micros"], entry["reason"], entry["actor"]) == (
        "credit",
        12_500_000,
        "invoice 42",
        "ops",
    )
    assert before is None or updated > before
    assert reconcile(engine) == []


def test_add_credit_refuses_unknown_workspaces_and_non_positive_amounts(engine: Engine) -> None:
    with pytest.raises(WorkspaceNotFound):
        add_credit(engine, "ghost", 1)
    funded_key(engine)
    with pytest.raises(ValueError):
        add_credit(engine, "acme", 0)


def test_summary_shows_balance_spend_and_keys(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=5_000_000, credit_limit_micros=1_000_000)
    charge(engine, key, 1_234)
    charge(engine, key, 0)
    summary = workspace_summary(engine, "acme")
    assert (summary.balance_micros, summary.credited_micros, summary.charged_micros) == (
        5_000_000 - 1_234,
        5_000_000,
        1_234,
    )
    assert summary.requests == 2
    assert summary.reserved_micros is None and summary.live_balance_micros is None
    assert [(k.id, k.credit_limit_micros, k.spent_micros) for k in summary.keys] == [(key.id, 1_000_000, 1_234)]
    with pytest.raises(WorkspaceNotFound):
        workspace_summary(engine, "ghost")


def test_reconcile_detects_a_tampered_balance(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    charge(engine, key, 700)
    assert reconcile(engine) == []
    with engine.begin() as c:
        c.execute(update(workspaces).values(balance_micros=workspaces.c.balance_micros + 5_000_000))
    problems = reconcile(engine)
    assert problems == [
        "workspace acme: balance_micros is 5999300 but its ledger sums to 999300 (difference +5.000000 USD)"
    ]


def test_reconcile_detects_a_tampered_key_spend(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    charge(engine, key, 700)
    with engine.begin() as c:
        c.execute(update(api_keys).values(spent_micros=0))
    assert reconcile(engine) == [f"key {key.id}: spent_micros is 0 but its charges sum to 700"]


def test_reconcile_detects_a_usage_record_without_its_charge_and_a_charge_without_its_record(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    lost_charge = charge(engine, key, 300)
    lost_record = charge(engine, key, 400)
    with engine.begin() as c:
        c.execute(delete(ledger_entries).where(ledger_entries.c.request_id == lost_charge))
        c.execute(delete(usage_records).where(usage_records.c.request_id == lost_record))
    problems = reconcile(engine)
    assert f"1 usage records disagree with their charge: {lost_charge} (cost 300, charged 0)" in problems
    assert f"1 charges have no usage record: {lost_record}" in problems
    assert any(p.startswith("workspace acme: balance_micros is") for p in problems)
    assert any(
        p.startswith(f"workspace {key.workspace_id}: charges sum to 400 but usage records cost 300") for p in problems
    )


@pytest.mark.redis
async def test_with_redis_the_summary_shows_the_live_balance_and_reservations(
    engine: Engine, redis_client: Redis, redis_prefix: str
) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    book = RedisBook(engine, Redis.from_url(REDIS_URL), prefix=redis_prefix, tick=3600)
    await book.load()
    try:
        held = Reservation(uuid.uuid4().hex, key.workspace_id, key.id, 5_000, "m", PRICES, 0.0)
        await book.reserve(held, credit_limit_micros=None, deadline=1e12)
        settled = Reservation(uuid.uuid4().hex, key.workspace_id, key.id, 5_000, "m", PRICES, 0.0)
        await book.reserve(settled, credit_limit_micros=None, deadline=1e12)
        book.settle(settled, 2_000)  # not yet in the database
        await book.flush(retarget=False)  # the tick: the charge reaches Redis, the lease shrinks to what is held
        summary = workspace_summary(engine, "acme", redis_url=REDIS_URL, redis_prefix=redis_prefix)
        assert (summary.balance_micros, summary.live_balance_micros, summary.reserved_micros) == (
            1_000_000,
            998_000,
            5_000,
        )
        credit = add_credit(engine, "acme", 1_000, redis_url=REDIS_URL, redis_prefix=redis_prefix)
        assert credit.live is True
        summary = workspace_summary(engine, "acme", redis_url=REDIS_URL, redis_prefix=redis_prefix)
        assert summary.live_balance_micros == 999_000
    finally:
        await book.close()


def test_reconcile_reads_one_snapshot_while_a_gateway_keeps_writing(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=100_000_000)
    stop = threading.Event()

    def gateway() -> None:
        while not stop.is_set():
            charge(engine, key, 11)

    writer = threading.Thread(target=gateway)
    writer.start()
    try:
        results = [reconcile(engine) for _ in range(30)]
    finally:
        stop.set()
        writer.join()
    assert results == [[]] * 30
    assert workspace_summary(engine, "acme").requests > 0
