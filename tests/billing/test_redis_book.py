from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import Engine, event

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.book import Reservation
from clearmaas.billing.ledger import add_credit, reconcile
from clearmaas.billing.redis_book import RedisBook, _read_snapshot
from tests.billing.conftest import REDIS_URL
from tests.billing.support import PRICES, funded_key

pytestmark = pytest.mark.redis

FAR = 1e12
BookFactory = Callable[..., Coroutine[Any, Any, RedisBook]]


def reservation(key: KeyRecord, amount: int) -> Reservation:
    return Reservation(uuid.uuid4().hex, key.workspace_id, key.id, amount, "anthropic/test-model", PRICES, time.time())


@pytest.fixture
async def make_book(engine: Engine, redis_client: Redis, redis_prefix: str) -> AsyncIterator[BookFactory]:
    books: list[RedisBook] = []

    async def make(**options: Any) -> RedisBook:
        book = RedisBook(engine, Redis.from_url(REDIS_URL), prefix=redis_prefix, **options)
        await book.load()
        books.append(book)
        return book

    yield make
    for book in books:
        await book.close()


@pytest.fixture
def queries(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def live(redis_client: Redis, book: RedisBook, key: KeyRecord) -> tuple[int, int, int, int]:
    """(balance, workspace reserved, key spent, key reserved) as stored in Redis."""
    values = await redis_client.mget(
        [
            book.keys.balance(key.workspace_id),
            book.keys.ws_reserved(key.workspace_id),
            book.keys.spent(key.id),
            book.keys.key_reserved(key.id),
        ]
    )
    return tuple(int(v or 0) for v in values)  # type: ignore[return-value]


async def test_reserve_settle_release(engine: Engine, make_book: BookFactory, redis_client: Redis) -> None:
    key = funded_key(engine, balance_micros=1_000, credit_limit_micros=800)
    book = await make_book()
    first, second = reservation(key, 500), reservation(key, 300)
    assert await book.reserve(first, credit_limit_micros=800, deadline=FAR) is None
    assert await book.reserve(reservation(key, 301), credit_limit_micros=800, deadline=FAR) == "key_credit"
    assert await book.reserve(reservation(key, 501), credit_limit_micros=None, deadline=FAR) == "balance"
    assert await book.reserve(second, credit_limit_micros=800, deadline=FAR) is None
    assert await live(redis_client, book, key) == (1_000, 800, 0, 800)
    assert await book.reserved_micros(key.workspace_id) == 800

    assert await book.settle(first, 650) is True  # above its bound: charged anyway
    assert await book.settle(first, 650) is False  # never twice
    assert await book.release(second) is True
    assert await book.release(second) is False
    assert await live(redis_client, book, key) == (350, 0, 650, 0)
    assert await book.reserve(reservation(key, 151), credit_limit_micros=800, deadline=FAR) == "key_credit"


async def test_a_workspace_first_seen_after_start_is_initialised_once_from_the_database(
    engine: Engine, make_book: BookFactory, queries: list[str]
) -> None:
    book = await make_book()
    key = funded_key(engine, workspace="newcomer", balance_micros=5_000)
    queries.clear()
    assert await book.reserve(reservation(key, 100), credit_limit_micros=None, deadline=FAR) is None
    assert len(queries) == 2  # the workspace's snapshot and the key's spend, each once
    queries.clear()
    for _ in range(20):
        assert await book.reserve(reservation(key, 100), credit_limit_micros=None, deadline=FAR) is None
    assert queries == []


async def test_a_credit_reaches_redis_exactly_once_whoever_applies_it(
    engine: Engine, make_book: BookFactory, redis_client: Redis, redis_prefix: str
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    book = await make_book()
    credit = add_credit(engine, "acme", 2_000, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    assert credit.live is True
    assert (await live(redis_client, book, key))[0] == 3_000
    # The periodic sync sees the same entry and leaves it alone.
    await book.maintain(refresh=True)
    await book.maintain(refresh=True)
    assert (await live(redis_client, book, key))[0] == 3_000
    # A credit added without Redis configured is applied by the sync, once.
    add_credit(engine, "acme", 500)
    await book.maintain(refresh=True)
    await book.maintain(refresh=True)
    assert (await live(redis_client, book, key))[0] == 3_500


async def test_initialising_from_a_snapshot_taken_before_a_credit_does_not_lose_or_double_it(
    engine: Engine, make_book: BookFactory, redis_client: Redis, redis_prefix: str
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    book = await make_book()
    await redis_client.delete(book.keys.balance(key.workspace_id), book.keys.applied(key.workspace_id))
    stale = _read_snapshot(engine, [key.workspace_id])
    # The CLI commits while Redis has no balance for the workspace: it cannot apply the credit itself.
    assert add_credit(engine, "acme", 2_000, redis_url=REDIS_URL, redis_prefix=redis_prefix).live is False
    await book._initialise(stale, {})
    assert (await live(redis_client, book, key))[0] == 1_000
    await book.maintain(refresh=True)
    assert (await live(redis_client, book, key))[0] == 3_000


async def test_initialising_after_a_credit_marks_it_as_included(
    engine: Engine, make_book: BookFactory, redis_client: Redis, redis_prefix: str
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    book = await make_book()
    await redis_client.delete(book.keys.balance(key.workspace_id), book.keys.applied(key.workspace_id))
    add_credit(engine, "acme", 2_000)
    assert await book.reserve(reservation(key, 10), credit_limit_micros=None, deadline=FAR) is None
    await book.maintain(refresh=True)
    assert (await live(redis_client, book, key))[:2] == (3_000, 10)


async def test_overdue_reservations_are_released_and_reconcile_reports_them_until_then(
    engine: Engine, make_book: BookFactory, redis_client: Redis, redis_prefix: str
) -> None:
    key = funded_key(engine, balance_micros=1_000, credit_limit_micros=1_000)
    book = await make_book(housekeeping_interval=3600)
    overdue, late = reservation(key, 400), reservation(key, 400)
    await book.reserve(overdue, credit_limit_micros=1_000, deadline=time.time() - 120)
    await book.reserve(late, credit_limit_micros=1_000, deadline=time.time() - 120)
    problems = reconcile(engine, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    assert len(problems) == 1 and problems[0].startswith("2 reservations are past their deadline")
    assert await book.sweep() == 2
    assert await live(redis_client, book, key) == (1_000, 0, 0, 0)
    assert reconcile(engine, redis_url=REDIS_URL, redis_prefix=redis_prefix) == []
    # A late settlement still bills what was generated, without releasing a second time.
    assert await book.settle(late, 250) is True
    assert await book.release(overdue) is True
    assert await live(redis_client, book, key) == (750, 0, 250, 0)


async def test_a_crashed_replicas_reservations_are_released_when_its_heartbeat_stops(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    crashed = await make_book(housekeeping_interval=3600, heartbeat_ttl=0.2)
    survivor = await make_book(housekeeping_interval=3600)
    await crashed.reserve(reservation(key, 600), credit_limit_micros=None, deadline=FAR)
    assert await survivor.sweep() == 0  # still alive
    assert await survivor.reserve(reservation(key, 600), credit_limit_micros=None, deadline=FAR) == "balance"
    await redis_client.delete(crashed.keys.alive(crashed.owner))  # its process died; the key would expire
    assert await survivor.sweep() == 1
    assert not await redis_client.sismember(survivor.keys.owners, crashed.owner)
    assert await survivor.reserve(reservation(key, 600), credit_limit_micros=None, deadline=FAR) is None


async def test_a_restarted_replica_keeps_the_shared_balance(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    first = await make_book()
    held = reservation(key, 100)
    await first.reserve(held, credit_limit_micros=None, deadline=FAR)
    await first.settle(held, 100)
    # The charge has not reached the database (no usage log here); a new replica must not reset Redis from it.
    second = await make_book()
    assert (await live(redis_client, second, key))[0] == 900
