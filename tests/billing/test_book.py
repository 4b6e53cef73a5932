from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.book import Charge, MemoryBook, Reservation
from clearmaas.billing.ledger import add_credit
from clearmaas.billing.usage_log import book_charges, write_batch
from tests.billing.support import PRICES, funded_key, usage_item

FAR = 1e12  # a deadline that never passes


def reservation(key: KeyRecord, amount: int) -> Reservation:
    return Reservation(
        id=uuid.uuid4().hex,
        workspace_id=key.workspace_id,
        key_id=key.id,
        amount_micros=amount,
        model_id="anthropic/test-model",
        prices=PRICES,
        created=0.0,
    )


def committed(engine: Engine, key: KeyRecord, cost: int) -> Charge:
    """Write a charge the way the usage log does, and return what it tells the book."""
    item = usage_item(
        request_id=uuid.uuid4().hex,
        created_at=datetime.now(UTC),
        endpoint="openai_chat",
        status=200,
        workspace_id=key.workspace_id,
        key_id=key.id,
        cost_micros=cost,
        book_charged=True,
    )
    assert write_batch(engine, [item]) == 1
    [charge] = book_charges([item])
    return charge


async def loaded(engine: Engine, **options: object) -> MemoryBook:
    book = MemoryBook(engine, **options)  # type: ignore[arg-type]
    await book.load()
    return book


async def test_reserve_takes_from_balance_and_refuses_what_it_cannot_cover(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000)
    book = await loaded(engine)
    assert book.available(key.workspace_id) == 1_000
    first = reservation(key, 600)
    assert await book.reserve(first, credit_limit_micros=None, deadline=FAR) is None
    assert book.available(key.workspace_id) == 400
    assert await book.reserve(reservation(key, 401), credit_limit_micros=None, deadline=FAR) == "balance"
    assert await book.reserve(reservation(key, 400), credit_limit_micros=None, deadline=FAR) is None
    assert book.available(key.workspace_id) == 0
    assert await book.reserved_micros(key.workspace_id) == 1_000


async def test_the_key_credit_is_checked_and_a_refusal_takes_nothing(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=10_000, credit_limit_micros=500)
    book = await loaded(engine)
    assert await book.reserve(reservation(key, 300), credit_limit_micros=500, deadline=FAR) is None
    assert await book.reserve(reservation(key, 201), credit_limit_micros=500, deadline=FAR) == "key_credit"
    assert book.available(key.workspace_id) == 10_000 - 300
    assert book.remaining_credit(key.id, 500) == 200


async def test_release_gives_everything_back_once(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000, credit_limit_micros=1_000)
    book = await loaded(engine)
    held = reservation(key, 700)
    await book.reserve(held, credit_limit_micros=1_000, deadline=FAR)
    assert book.release(held) is True
    assert book.release(held) is False
    assert book.available(key.workspace_id) == 1_000
    assert book.remaining_credit(key.id, 1_000) == 1_000
    assert book.active_reservations == 0


async def test_settle_charges_the_actual_cost_and_releases_the_rest(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000, credit_limit_micros=800)
    book = await loaded(engine)
    held = reservation(key, 700)
    await book.reserve(held, credit_limit_micros=800, deadline=FAR)
    assert book.settle(held, 250) is True
    assert book.available(key.workspace_id) == 750
    assert book.spent(key.id) == 250
    assert book.remaining_credit(key.id, 800) == 550
    # Settling again is a no-op for the book: the charge is never counted twice.
    assert book.settle(held, 250) is False
    assert book.available(key.workspace_id) == 750


async def test_a_cost_above_the_bound_is_charged_and_then_blocks_new_reservations(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000)
    book = await loaded(engine)
    held = reservation(key, 900)
    await book.reserve(held, credit_limit_micros=None, deadline=FAR)
    book.settle(held, 1_200)
    assert book.available(key.workspace_id) == -200
    assert await book.reserve(reservation(key, 0), credit_limit_micros=None, deadline=FAR) == "balance"


async def test_flushing_and_rereading_never_count_a_charge_twice_or_not_at_all(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=10_000)
    book = await loaded(engine)
    held = reservation(key, 1_000)
    await book.reserve(held, credit_limit_micros=None, deadline=FAR)
    book.settle(held, 300)
    assert book.available(key.workspace_id) == 9_700
    # Re-read before the usage log wrote the charge: the database does not have it, "unflushed" does.
    await book.maintain(refresh=True)
    assert book.available(key.workspace_id) == 9_700 and book.spent(key.id) == 300
    # The usage log commits it and says so; then a re-read sees it in the database, and only there.
    book.flushed([committed(engine, key, 300)])
    assert book.available(key.workspace_id) == 9_700 and book.spent(key.id) == 300
    await book.maintain(refresh=True)
    assert book.available(key.workspace_id) == 9_700 and book.spent(key.id) == 300


async def test_credit_added_elsewhere_is_usable_after_a_refresh(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=100)
    book = await loaded(engine)
    assert await book.reserve(reservation(key, 500), credit_limit_micros=None, deadline=FAR) == "balance"
    add_credit(engine, "acme", 1_000)
    await book.maintain(refresh=True)
    assert book.available(key.workspace_id) == 1_100
    assert await book.reserve(reservation(key, 500), credit_limit_micros=None, deadline=FAR) is None


async def test_a_workspace_created_after_start_is_picked_up_by_the_refresh(engine: Engine) -> None:
    book = await loaded(engine)
    key = funded_key(engine, workspace="late", balance_micros=2_000)
    assert await book.reserve(reservation(key, 1), credit_limit_micros=None, deadline=FAR) == "balance"
    await book.maintain(refresh=True)
    assert await book.reserve(reservation(key, 2_000), credit_limit_micros=None, deadline=FAR) is None


async def test_the_sweeper_releases_overdue_reservations_and_a_late_settle_still_charges(engine: Engine) -> None:
    now = [1_000.0]
    key = funded_key(engine, balance_micros=1_000, credit_limit_micros=1_000)
    book = await loaded(engine, clock=lambda: now[0], keep_expired=60.0)
    stuck, late, fresh = reservation(key, 300), reservation(key, 300), reservation(key, 300)
    await book.reserve(stuck, credit_limit_micros=1_000, deadline=1_010.0)
    await book.reserve(late, credit_limit_micros=1_000, deadline=1_010.0)
    await book.reserve(fresh, credit_limit_micros=1_000, deadline=2_000.0)
    now[0] = 1_011.0
    await book.maintain(refresh=False)
    assert book.active_reservations == 1
    assert book.available(key.workspace_id) == 700
    # What was generated is billed even though the sweeper gave the reservation back.
    assert book.settle(late, 120) is True
    assert book.available(key.workspace_id) == 580 and book.spent(key.id) == 120
    assert book.release(stuck) is True
    assert book.available(key.workspace_id) == 580
    # Expired reservations are forgotten after `keep_expired`.
    now[0] = 1_100.0
    assert book.sweep() == 0
    assert book.settle(stuck, 50) is False


async def test_a_new_book_starts_without_the_old_ones_reservations(engine: Engine) -> None:
    key = funded_key(engine, balance_micros=1_000)
    crashed = await loaded(engine)
    await crashed.reserve(reservation(key, 1_000), credit_limit_micros=None, deadline=FAR)
    assert crashed.available(key.workspace_id) == 0
    restarted = await loaded(engine)
    assert restarted.available(key.workspace_id) == 1_000
    assert await restarted.reserved_micros(key.workspace_id) == 0
