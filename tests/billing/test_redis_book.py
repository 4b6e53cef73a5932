from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import Engine, event

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.book import Reservation
from clearmaas.billing.ledger import add_credit, reconcile
from clearmaas.billing.redis_book import BookUnavailable, RedisBook
from clearmaas.billing.redis_state import read_snapshot
from clearmaas.limits import Limits
from clearmaas.limits.redis_counter import RedisCounter
from tests.billing.conftest import REDIS_URL
from tests.billing.support import PRICES, funded_key

pytestmark = pytest.mark.redis

FAR = 1e12
RIDER_LIMITS = Limits(rpm=10**6, tpm=10**12)
BookFactory = Callable[..., Coroutine[Any, Any, RedisBook]]


def reservation(key: KeyRecord, amount: int) -> Reservation:
    return Reservation(uuid.uuid4().hex, key.workspace_id, key.id, amount, "anthropic/test-model", PRICES, time.time())


@pytest.fixture
async def make_book(engine: Engine, redis_client: Redis, redis_prefix: str) -> AsyncIterator[BookFactory]:
    books: list[RedisBook] = []

    async def make(**options: Any) -> RedisBook:
        options.setdefault("tick", 3600)  # the tests push with `flush()` unless they ask for a live tick
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


def count_pushes(book: RedisBook) -> list[int]:
    """Counts the book's push scripts from now on, in the returned list's only item."""
    pushes = [0]
    queue = book._queue_push

    def counted(*args: Any) -> None:
        pushes[0] += 1
        queue(*args)

    book._queue_push = counted  # type: ignore[method-assign]
    return pushes


async def owe(book: RedisBook, key: KeyRecord, cost: int, *, bound: int = 1_000) -> None:
    """A call reserved from `key`'s lease and settled at `cost`: what the next push owes Redis."""
    held = reservation(key, bound)
    assert await book.reserve(held, credit_limit_micros=None, deadline=FAR) is None
    book.settle(held, cost)


async def busy_rider(book: RedisBook, key: KeyRecord, prefix: str) -> RedisCounter:
    """A rate-limit counter riding on `book`'s tick, with 100 admissions in `key`'s workspace around one tick
    (which also loads its script), so the next tick tops its allowance up."""
    counter = RedisCounter(Redis.from_url(REDIS_URL), key_prefix=f"{prefix}rl:", window_seconds=3600)
    book.carry(counter.ride())
    await counter.start()
    book._next_housekeeping = FAR  # no heartbeat or sweep in these ticks
    for round_ in range(2):
        for _ in range(50):
            await counter.admit(key.workspace_id, RIDER_LIMITS, 100)
        if round_ == 0:
            await book._tick_once()
    return counter


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


def count_sends(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """What every Redis connection sends from now on: one entry per round-trip (a pipeline is one)."""
    sent: list[bytes] = []
    send = Connection.send_packed_command

    async def counted(self: Connection, command: Any, check_health: bool = True) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        await send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    return sent


async def test_a_tick_pushes_every_lease_in_one_round_trip(
    engine: Engine, make_book: BookFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [funded_key(engine, balance_micros=10**9) for _ in range(3)]
    book = await make_book()
    for key in keys:
        await owe(book, key, 400)
    sent = count_sends(monkeypatch)
    await book.flush()
    # One pipeline of three pushes, and no SCRIPT EXISTS before it (a registered script in a pipeline asks).
    assert len(sent) == 1 and sent[0].count(b"EVALSHA") == 3, sent


async def test_a_push_redis_does_not_know_the_script_of_is_loaded_and_sent_again(
    engine: Engine, make_book: BookFactory, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    book = await make_book()
    await owe(book, key, 400)
    real = book._push.sha
    book._push.sha = "0" * 40  # what EVALSHA meets after Redis restarted or flushed its scripts
    sent = count_sends(monkeypatch)
    await book.flush()
    assert book._push.sha == real
    assert len(sent) == 3  # refused with NOSCRIPT (nothing applied), SCRIPT LOAD, the pipeline again
    balance, _reserved, spent, _key_reserved = await live(redis_client, book, key)
    assert (balance, spent) == (10_000 - 400, 400)  # charged once


async def test_the_book_tick_carries_the_rate_limiter_in_the_same_round_trip(
    engine: Engine, make_book: BookFactory, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(engine, balance_micros=10**9)
    book = await make_book()
    counter = await busy_rider(book, key, redis_prefix)
    try:
        assert not counter._loop.running  # its settling rides on the book's tick
        await owe(book, key, 400)
        state = counter._states[key.workspace_id]
        before = state.requests
        sent = count_sends(monkeypatch)
        await book._tick_once()
        # One pipeline: the lease's push and the workspace's allowance top-up.
        assert len(sent) == 1 and sent[0].count(b"EVALSHA") == 2, sent
        assert state.busy is None and state.requests > before
        assert await counter.usage(key.workspace_id) == (100, 10_000)
    finally:
        await counter.close()


async def test_a_carried_tick_that_fails_leaves_the_rate_limiter_as_it_was_and_failing_open(
    engine: Engine, make_book: BookFactory, redis_client: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(engine, balance_micros=10**9)
    book = await make_book()
    counter = await busy_rider(book, key, redis_prefix)
    try:
        await owe(book, key, 400)  # a lease with a cost to push: the book retries its own part
        state = counter._states[key.workspace_id]
        held = (state.requests, state.tokens, state.held_requests, state.held_tokens)

        async def unreachable(self: Any, raise_on_error: bool = True) -> list[Any]:
            raise RedisConnectionError("Redis is down (test)")

        monkeypatch.setattr(Pipeline, "execute", unreachable)
        await book._tick_once()  # the book retries its pushes and gives up; the limiter is settled at once
        assert state.busy is None
        assert (state.requests, state.tokens, state.held_requests, state.held_tokens) == held
        assert not counter._available()  # backing off: admits uncounted rather than failing requests
        monkeypatch.undo()
        await book.flush()  # Redis back: the cost is pushed once
        assert (await live(redis_client, book, key))[2] == 400
    finally:
        await counter.close()


async def test_an_idle_lease_reserves_exactly_each_bound_and_gives_everything_back(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=1_000, credit_limit_micros=800)
    book = await make_book()
    first, second = reservation(key, 500), reservation(key, 300)
    assert await book.reserve(first, credit_limit_micros=800, deadline=FAR) is None
    assert await book.reserve(reservation(key, 301), credit_limit_micros=800, deadline=FAR) == "key_credit"
    assert await book.reserve(reservation(key, 501), credit_limit_micros=None, deadline=FAR) == "balance"
    assert await book.reserve(second, credit_limit_micros=800, deadline=FAR) is None
    # Nothing beyond the two bounds is held: there was no rate to lease ahead of.
    assert await live(redis_client, book, key) == (1_000, 800, 0, 800)
    assert await book.reserved_micros(key.workspace_id) == 800

    assert book.settle(first, 650) is True  # above its bound: charged anyway
    assert book.settle(first, 650) is False  # never twice
    assert book.release(second) is True
    assert book.release(second) is False
    # Settling is local; the tick pushes the charge and, since the refusals squeezed the workspace, gives the
    # lease's headroom back at once.
    assert await live(redis_client, book, key) == (1_000, 800, 0, 800)
    await book.flush()
    assert await live(redis_client, book, key) == (350, 0, 650, 0)
    assert await book.reserve(reservation(key, 151), credit_limit_micros=800, deadline=FAR) == "key_credit"


async def test_a_busy_lease_reserves_in_memory_and_every_cost_reaches_redis(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=10_000_000_000)
    book = await make_book()
    pushes = count_pushes(book)
    held: list[Reservation] = []
    for n in range(2_000):
        held.append(reservation(key, 1_000))
        assert await book.reserve(held[-1], credit_limit_micros=None, deadline=FAR) is None
        if len(held) > 20:  # 20 calls in flight
            assert book.settle(held.pop(0), 700) is True
        if n % 100 == 99:
            await book.flush()  # a tick every 100 calls
    assert pushes[0] < 80  # about one per tick, and a few while the rate builds up
    for reservation_ in held:
        book.settle(reservation_, 700)
    await book.flush()
    await book.flush()
    assert await live(redis_client, book, key) == (10_000_000_000 - 2_000 * 700, 0, 2_000 * 700, 0)


async def test_take_now_decides_from_the_lease_alone_and_never_calls_redis(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=10_000_000)
    book = await make_book()
    pushes = count_pushes(book)
    fresh = reservation(key, 1_000)
    # No lease yet: nothing is taken, and the awaited path is the one that asks Redis.
    assert book.take_now(fresh, credit_limit_micros=None, deadline=FAR) is False
    assert pushes[0] == 0 and await book.reserved_micros(key.workspace_id) in (None, 0)
    assert await book.reserve(fresh, credit_limit_micros=None, deadline=FAR) is None
    for _ in range(20):  # a rate for the tick to lease ahead of
        book.settle(fresh, 100)
        fresh = reservation(key, 1_000)
        assert await book.reserve(fresh, credit_limit_micros=None, deadline=FAR) is None
    await book.flush()
    before = pushes[0]
    taken = [reservation(key, 1_000) for _ in range(5)]
    assert all(book.take_now(r, credit_limit_micros=None, deadline=FAR) for r in taken)
    assert pushes[0] == before  # decided in memory
    for r in [*taken, fresh]:
        assert book.settle(r, 100) is True
    await book.flush()
    await book.flush()
    assert await live(redis_client, book, key) == (10_000_000 - 26 * 100, 0, 26 * 100, 0)


async def test_a_push_whose_reply_was_lost_applies_once(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    book = await make_book()
    await owe(book, key, 400)
    lease = book._lease(key.workspace_id, key.id)
    lease.retarget()
    push = lease.pending = lease.plan()
    assert await book._send([lease]) is not None
    held_after = await live(redis_client, book, key)
    lease.pending = push  # as if the reply had been lost: the same push again
    assert await book._send([lease]) is not None
    assert await live(redis_client, book, key) == held_after
    assert held_after[0::2] == (9_600, 400)  # charged once


async def test_redis_unreachable_on_the_hot_path_refuses_then_resends_the_push_once(
    engine: Engine, make_book: BookFactory, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    book = await make_book()
    first = reservation(key, 1_000)
    assert await book.reserve(first, credit_limit_micros=None, deadline=FAR) is None
    book.settle(first, 1_000)
    pipeline = book._pipeline

    async def down(*args: Any) -> Any:
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(book, "_pipeline", down)
    with pytest.raises(BookUnavailable):
        await book.reserve(reservation(key, 2_000), credit_limit_micros=None, deadline=FAR)
    monkeypatch.setattr(book, "_pipeline", pipeline)
    assert await book.reserve(reservation(key, 2_000), credit_limit_micros=None, deadline=FAR) is None
    # The charge the failed push carried was applied exactly once.
    balance, reserved, spent, _ = await live(redis_client, book, key)
    assert (balance, spent) == (9_000, 1_000) and reserved >= 2_000


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
    stale = read_snapshot(engine, [key.workspace_id])
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
    # Reserved: the lease holds the call's bound and one more as headroom (`Lease.plan`).
    assert (await live(redis_client, book, key))[:2] == (3_000, 20)


async def test_calls_that_never_settle_are_released_locally_and_still_charged_if_settled_late(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=1_000, credit_limit_micros=1_000)
    book = await make_book()
    overdue, late = reservation(key, 400), reservation(key, 400)
    await book.reserve(overdue, credit_limit_micros=1_000, deadline=time.time() - 120)
    await book.reserve(late, credit_limit_micros=1_000, deadline=time.time() - 120)
    assert book.sweep_local() == 2
    await book.flush()
    await book.flush()
    assert await live(redis_client, book, key) == (1_000, 0, 0, 0)
    # A late settlement still bills what was generated, without releasing a second time.
    assert book.settle(late, 250) is True
    assert book.release(overdue) is True
    await book.flush()
    assert await live(redis_client, book, key) == (750, 0, 250, 0)


async def test_leases_past_their_deadline_are_released_and_reconcile_reports_them_until_then(
    engine: Engine, make_book: BookFactory, redis_client: Redis, redis_prefix: str
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    book = await make_book(lease_ttl=-120)  # every lease's deadline is already past
    held = reservation(key, 400)
    await book.reserve(held, credit_limit_micros=None, deadline=FAR)
    problems = reconcile(engine, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    assert len(problems) == 1 and problems[0].startswith("1 reservations are past their deadline")
    assert await book.sweep() == 1
    assert await live(redis_client, book, key) == (1_000, 0, 0, 0)
    assert reconcile(engine, redis_url=REDIS_URL, redis_prefix=redis_prefix) == []
    # The call was still running: its cost is charged when it settles, and nothing is released twice.
    book.settle(held, 250)
    await book.flush()
    await book.flush()
    assert await live(redis_client, book, key) == (750, 0, 250, 0)


async def test_a_crashed_replicas_leases_are_released_when_its_heartbeat_stops(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    crashed = await make_book(heartbeat_ttl=0.2)
    survivor = await make_book(refusal_retries=0)
    await crashed.reserve(reservation(key, 600), credit_limit_micros=None, deadline=FAR)
    assert await survivor.sweep() == 0  # still alive
    assert await survivor.reserve(reservation(key, 600), credit_limit_micros=None, deadline=FAR) == "balance"
    await redis_client.delete(crashed.keys.alive(crashed.owner))  # its process died; the key would expire
    assert await survivor.sweep() == 1
    assert not await redis_client.sismember(survivor.keys.owners, crashed.owner)
    assert await survivor.reserve(reservation(key, 600), credit_limit_micros=None, deadline=FAR) is None


async def test_idle_headroom_on_one_replica_does_not_turn_away_another(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=100_000)
    hoarder = await make_book(tick=0.05)
    other = await make_book(tick=0.05)
    # A burst on the first replica: its lease grows ahead of its rate.
    for _ in range(3):
        held = [reservation(key, 1_000) for _ in range(30)]
        for r in held:
            assert await hoarder.reserve(r, credit_limit_micros=None, deadline=FAR) is None
        for r in held:
            hoarder.settle(r, 1_000)
        await asyncio.sleep(0.06)
    await hoarder.flush()
    remaining = 100_000 - 90 * 1_000
    # Now the other replica wants all that is left; the hoarder's idle headroom comes back for it.
    assert await other.reserve(reservation(key, remaining), credit_limit_micros=None, deadline=FAR) is None
    assert await other.reserve(reservation(key, 1), credit_limit_micros=None, deadline=FAR) == "balance"


async def test_three_replicas_in_a_burst_serve_exactly_what_the_credit_covers(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    bound = 1_875
    limit = 20 * bound + bound // 2
    key = funded_key(engine, balance_micros=10_000_000, credit_limit_micros=limit)
    books = [await make_book(tick=0.05) for _ in range(3)]
    lowest = limit

    async def serve(book: RedisBook) -> bool:
        nonlocal lowest
        held = reservation(key, bound)
        if await book.reserve(held, credit_limit_micros=limit, deadline=FAR) is not None:
            return False
        spent, kres = (int(v or 0) for v in await redis_client.mget([book.keys.spent(key.id), book.keys.key_reserved(key.id)]))
        lowest = min(lowest, limit - spent - kres)
        await asyncio.sleep(random.random() / 50)
        book.settle(held, bound)
        return True

    served = await asyncio.gather(*(serve(books[n % 3]) for n in range(200)))
    assert sum(served) == 20
    assert lowest >= 0
    for book in books:
        await book.flush()
        await book.flush()
    assert await live(redis_client, books[0], key) == (10_000_000 - 20 * bound, 0, 20 * bound, 0)


async def test_a_restarted_replica_keeps_the_shared_balance(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=1_000)
    first = await make_book()
    held = reservation(key, 100)
    await first.reserve(held, credit_limit_micros=None, deadline=FAR)
    first.settle(held, 100)
    await first.flush()
    # The charge has not reached the database (no usage log here); a new replica must not reset Redis from it.
    second = await make_book()
    assert (await live(redis_client, second, key))[0] == 900


async def test_closing_pushes_what_is_owed_and_gives_every_lease_back(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=1_000_000)
    book = await make_book()
    for _ in range(50):
        held = reservation(key, 1_000)
        await book.reserve(held, credit_limit_micros=None, deadline=FAR)
        book.settle(held, 300)
    await book.close()
    assert await live(redis_client, book, key) == (1_000_000 - 50 * 300, 0, 50 * 300, 0)


async def test_a_lease_forgotten_while_idle_and_made_again_still_pushes(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=10_000)
    book = await make_book()
    for cost in (300, 200):
        held = reservation(key, 1_000)
        assert await book.reserve(held, credit_limit_micros=None, deadline=FAR) is None
        book.settle(held, cost)
        for _ in range(3):
            await book.flush()
        assert (key.workspace_id, key.id) not in book._leases  # idle: forgotten
    # Redis still has the first lease object's record; the second one's pushes must not pass for replays.
    assert await live(redis_client, book, key) == (9_500, 0, 500, 0)


async def test_a_call_asking_again_after_a_refusal_never_holds_credit_on_a_forgotten_lease(
    engine: Engine, make_book: BookFactory, redis_client: Redis
) -> None:
    key = funded_key(engine, balance_micros=10_000, credit_limit_micros=1_000)
    a, b = await make_book(tick=0.05), await make_book()
    held = reservation(key, 700)
    assert await b.reserve(held, credit_limit_micros=1_000, deadline=FAR) is None
    mine = reservation(key, 500)
    # Refused for the key's credit while B holds some: A waits three ticks and asks again. Meanwhile its
    # own tick forgets its lease, which holds nothing.
    waiting = asyncio.create_task(a.reserve(mine, credit_limit_micros=1_000, deadline=FAR))
    await asyncio.sleep(0.06)
    assert not waiting.done()
    assert b.release(held) is True
    await b.flush()
    await b.flush()  # squeezed by A's refusal, B's lease gives its headroom back
    assert await asyncio.wait_for(waiting, 5) is None
    assert a.settle(mine, 400) is True
    # Every cost and every unused credit of A's reserve reaches Redis: nothing stays held for a lease that
    # no tick pushes.
    for _ in range(40):
        if await live(redis_client, a, key) == (10_000 - 400, 0, 400, 0):
            break
        await asyncio.sleep(0.05)
    assert await live(redis_client, a, key) == (10_000 - 400, 0, 400, 0)
