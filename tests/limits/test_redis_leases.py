"""The Redis counter's leased allowance: several counters sharing one budget never admit more than the
limit, a busy workspace rarely asks Redis, an idle one gives its allowance back, windows roll over,
adjustments settle in the background, and a Redis outage fails open."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from clearmaas.errors import RateLimited
from clearmaas.limits import Limits
from clearmaas.limits.counters import NOT_COUNTED
from clearmaas.limits.redis_counter import RedisCounter
from tests.limits.conftest import HOUR, REDIS_URL
from tests.limits.test_redis_counter import window_with_room

pytestmark = pytest.mark.redis

WS = "ws_acme"


class Wiretap:
    """Counts a client's EVALSHA commands and round-trips (single commands and pipelines), and fails them
    as if Redis were down while `down` is set."""

    def __init__(self, client: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.evalsha = 0
        self.round_trips = 0
        self.down = False
        execute_command = client.execute_command
        pipeline = client.pipeline

        async def counted_command(*args: Any, **options: Any) -> Any:
            self._count([args])
            return await execute_command(*args, **options)

        def counted_pipeline(*args: Any, **options: Any) -> Any:
            pipe = pipeline(*args, **options)
            execute = pipe.execute

            async def counted_execute(raise_on_error: bool = True) -> list[Any]:
                self._count([command for command, _ in pipe.command_stack])
                return await execute(raise_on_error=raise_on_error)

            pipe.execute = counted_execute  # type: ignore[method-assign]
            return pipe

        monkeypatch.setattr(client, "execute_command", counted_command)
        monkeypatch.setattr(client, "pipeline", counted_pipeline)

    def _count(self, commands: Sequence[Sequence[Any]]) -> None:
        if self.down:
            raise RedisConnectionError("Redis is down (test)")
        self.round_trips += 1
        self.evalsha += sum(1 for command in commands if command[0] == "EVALSHA")


MakeCounter = Callable[..., Awaitable[tuple[RedisCounter, Wiretap]]]


@pytest.fixture
async def make_counter(
    redis_client: Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeCounter]:
    """Counters sharing the test's key prefix, each with its own client and wiretap; started unless told."""
    made: list[RedisCounter] = []

    async def make(*, start: bool = True, **options: Any) -> tuple[RedisCounter, Wiretap]:
        client = Redis.from_url(REDIS_URL)
        tap = Wiretap(client, monkeypatch)
        options.setdefault("window_seconds", HOUR)
        counter = RedisCounter(client, key_prefix=key_prefix, **options)
        if start:
            await counter.start()
        made.append(counter)
        return counter, tap

    yield make
    for counter in made:
        await counter.close()


async def shared_counts(client: Redis, key_prefix: str) -> tuple[int, int]:
    """The hash's counts: admitted plus leased and not given back."""
    requests, tokens = await client.hmget(key_prefix + WS, ["r", "t"])
    return int(requests or 0), int(tokens or 0)


async def admitted(counter: RedisCounter, limits: Limits, tokens: int) -> int:
    try:
        await counter.admit(WS, limits, tokens)
    except RateLimited:
        return 0
    return 1


async def until(condition: Callable[[], Awaitable[bool]], *, within: float) -> float:
    """Seconds until `condition` holds, failing after `within`."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < within, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("limits", "tokens", "most"),
    [
        pytest.param(Limits(rpm=12), 10, 12, id="rpm-12"),
        pytest.param(Limits(rpm=1000, tpm=10**9), 10, 1000, id="rpm-1000"),
        pytest.param(Limits(tpm=20_000), 10, 2000, id="tpm-20000"),
    ],
)
async def test_three_counters_never_admit_more_than_the_limit_together(
    redis_client: Redis, key_prefix: str, make_counter: MakeCounter, limits: Limits, tokens: int, most: int
) -> None:
    await window_with_room(redis_client, HOUR, 60)
    counters = [(await make_counter())[0] for _ in range(3)]
    total = 0
    # Eight waves of concurrent requests spread over the three, 4 times the limit in all; a pause between
    # waves lets the ticks top up and give back.
    for _ in range(8):
        wave = await asyncio.gather(*(admitted(counters[i % 3], limits, tokens) for i in range(most // 2)))
        total += sum(wave)
        assert total <= most
        await asyncio.sleep(0.02)
    if most <= 16 * 3:
        assert total == most  # a small limit is leased one request at a time: exact
    else:
        assert total >= most * 0.95, total
    # Closed, the counters give back what they hold unused: the shared counts are what was admitted.
    for counter in counters:
        await counter.close()
    assert await shared_counts(redis_client, key_prefix) == (total, total * tokens)


async def test_a_busy_workspace_with_a_huge_limit_rarely_asks_redis(make_counter: MakeCounter) -> None:
    counter, tap = await make_counter()
    limits = Limits(rpm=10_000_000, tpm=100_000_000_000)  # the benchmark's
    for _ in range(100):
        admissions = await asyncio.gather(*(counter.admit(WS, limits, 1000) for _ in range(100)))
        for admission in admissions:
            await counter.adjust(WS, 300 - 1000, window=admission.window)
        await asyncio.sleep(0.005)
    assert all(admission.window is not None for admission in admissions)
    # 10,000 admissions over about ten ticks: a handful of leases while the rate ramps up, one per tick.
    assert tap.evalsha < 100, tap.evalsha
    assert await counter.usage(WS) == (10_000, 3_000_000)


async def test_a_burst_after_a_pause_asks_redis_once_instead_of_ramping_up_again(make_counter: MakeCounter) -> None:
    counter, tap = await make_counter()
    limits = Limits(rpm=10_000_000, tpm=100_000_000_000)

    async def burst() -> int:
        """Round-trips made by 300 requests one after another (one client), ticks included."""
        before = tap.round_trips
        for _ in range(300):
            await counter.admit(WS, limits, 100)
        return tap.round_trips - before

    first = await burst()
    assert first >= 6  # from nothing, the allowance doubles up to the rate: one lease call per doubling
    await asyncio.sleep(0.3)  # idle ticks give the allowance back
    assert await counter.usage(WS) == (300, 30_000)
    assert await burst() <= 2  # one lease call sized from the first burst (and perhaps a tick)


async def test_a_workspace_over_its_limit_is_refused_without_asking_redis_each_time(
    make_counter: MakeCounter,
) -> None:
    counter, tap = await make_counter()
    limits = Limits(rpm=5)
    for _ in range(5):
        await counter.admit(WS, limits, 0)
    before = tap.evalsha
    started = time.monotonic()
    for _ in range(200):
        with pytest.raises(RateLimited) as refused:
            await counter.admit(WS, limits, 0)
        assert 1 <= (refused.value.retry_after or 0) <= HOUR
    ticks = (time.monotonic() - started) / 0.05 + 1
    # Asked again at most once per tick (another counter may have given allowance back meanwhile).
    assert tap.evalsha - before <= ticks + 1


async def test_an_idle_counter_gives_its_allowance_back_within_a_couple_of_ticks(
    redis_client: Redis, key_prefix: str, make_counter: MakeCounter
) -> None:
    await window_with_room(redis_client, HOUR, 60)
    busy, _ = await make_counter()
    other, _ = await make_counter(start=False)
    limits = Limits(rpm=1600)
    for _ in range(4):
        assert sum(await asyncio.gather(*(admitted(busy, limits, 1) for _ in range(50)))) == 50
    requests, _ = await shared_counts(redis_client, key_prefix)
    assert requests > 200  # the busy counter holds allowance beyond what it admitted

    async def given_back() -> bool:
        return (await shared_counts(redis_client, key_prefix))[0] == 200

    # One tick still sees it busy (and may top it up), the next sees it idle and gives everything back.
    assert await until(given_back, within=1.0) < 0.5
    assert sum([await admitted(other, limits, 1) for _ in range(1401)]) == 1400


async def test_a_new_window_drops_the_old_allowance_and_starts_from_zero(
    redis_client: Redis, key_prefix: str, make_counter: MakeCounter
) -> None:
    counter, _ = await make_counter(window_seconds=1)
    limits = Limits(rpm=40, tpm=4000)
    await window_with_room(redis_client, 1, 0.7)
    first = await asyncio.gather(*(counter.admit(WS, limits, 100) for _ in range(40)))
    with pytest.raises(RateLimited) as refused:
        await counter.admit(WS, limits, 0)
    assert refused.value.retry_after == 1
    (window,) = {admission.window for admission in first}
    assert window is not None
    into = await redis_client.time()
    await asyncio.sleep(1 - into[1] / 1e6 + 0.05)
    second = await asyncio.gather(*(counter.admit(WS, limits, 100) for _ in range(40)))
    assert {admission.window for admission in second} == {window + 1}
    # Unused estimate of the first window is not given to the second one.
    await counter.adjust(WS, -100, window=window)
    assert await counter.usage(WS) == (40, 4000)
    with pytest.raises(RateLimited):
        await counter.admit(WS, limits, 0)


async def test_adjustments_are_local_and_settled_by_the_tick(
    redis_client: Redis, key_prefix: str, make_counter: MakeCounter
) -> None:
    await window_with_room(redis_client, HOUR, 60)
    counter, tap = await make_counter()
    limits = Limits(tpm=1000)
    first = await counter.admit(WS, limits, 400)
    calls = tap.evalsha
    await counter.adjust(WS, 250, window=first.window)  # used more than estimated
    assert await counter.usage(WS) == (1, 650)
    second = await counter.admit(WS, limits, 300)
    assert await counter.usage(WS) == (2, 950)
    with pytest.raises(RateLimited):
        await counter.admit(WS, limits, 100)
    await counter.adjust(WS, -300, window=second.window)  # used nothing
    assert await counter.usage(WS) == (2, 650)
    await counter.admit(WS, limits, 100)
    # Without the admission, unused estimate comes back to the current window, never below what was used.
    await counter.adjust(WS, -5000, window=None)
    assert await counter.usage(WS) == (3, 0)
    # Only the admissions the allowance could not cover and the usage readings asked Redis (3 + 4) ...
    assert tap.evalsha - calls <= 7

    # ... and the tick settles the rest: the shared counts become exactly what this counter used.
    async def settled() -> bool:
        return await shared_counts(redis_client, key_prefix) == (3, 0)

    await until(settled, within=1.0)


async def test_overspend_of_an_idle_workspace_reaches_redis(
    redis_client: Redis, key_prefix: str, make_counter: MakeCounter
) -> None:
    await window_with_room(redis_client, HOUR, 60)
    counter, _ = await make_counter()
    other, _ = await make_counter(start=False)
    limits = Limits(tpm=1000)
    admission = await counter.admit(WS, limits, 100)
    await counter.adjust(WS, 800, window=admission.window)  # a long answer: 900 tokens in all

    async def pushed() -> bool:
        return await shared_counts(redis_client, key_prefix) == (1, 900)

    await until(pushed, within=1.0)
    with pytest.raises(RateLimited):
        await other.admit(WS, limits, 101)
    await other.admit(WS, limits, 100)


async def test_while_redis_is_down_the_allowance_is_used_then_requests_go_uncounted(
    make_counter: MakeCounter, caplog: pytest.LogCaptureFixture
) -> None:
    counter, tap = await make_counter(backoff=0.4)
    limits = Limits(rpm=100_000)
    for _ in range(3):
        await asyncio.gather(*(counter.admit(WS, limits, 1) for _ in range(40)))
    tap.down = True
    with caplog.at_level(logging.WARNING, logger="clearmaas.limits"):
        during = [await counter.admit(WS, limits, 1) for _ in range(1000)]
        await asyncio.sleep(0.15)  # failing ticks do not stop the loop or warn again
        during.append(await counter.admit(WS, limits, 1))
    counted = [admission for admission in during if admission.window is not None]
    assert counted, "the allowance already leased is still used"
    assert during[-1] == NOT_COUNTED
    assert len([r for r in caplog.records if "Redis failed" in r.getMessage()]) == 1
    tap.down = False
    await asyncio.sleep(0.4)
    assert (await counter.admit(WS, limits, 1)).window is not None
    # The tick works again: it settles with Redis (a usage reading waits for any call in flight).
    calls = tap.evalsha
    await asyncio.sleep(0.15)
    assert tap.evalsha > calls


async def test_close_gives_back_the_unused_allowance(
    redis_client: Redis, key_prefix: str, make_counter: MakeCounter
) -> None:
    await window_with_room(redis_client, HOUR, 60)
    counter, _ = await make_counter(start=False)
    limits = Limits(rpm=1000, tpm=1_000_000)
    for _ in range(4):
        await asyncio.gather(*(counter.admit(WS, limits, 7) for _ in range(50)))
    requests, tokens = await shared_counts(redis_client, key_prefix)
    assert requests > 200 and tokens > 1400
    await counter.close()
    assert await shared_counts(redis_client, key_prefix) == (200, 1400)


async def test_the_tick_leaves_quiet_workspaces_alone(
    redis_client: Redis, key_prefix: str, make_counter: MakeCounter
) -> None:
    await window_with_room(redis_client, HOUR, 60)
    counter, tap = await make_counter()
    limits = Limits(rpm=1000)
    workspaces = [f"ws_{n}" for n in range(200)]
    for workspace in workspaces:
        await asyncio.gather(*(counter.admit(workspace, limits, 1) for _ in range(3)))

    async def quiet() -> bool:
        return not counter._active

    await until(quiet, within=1.0)
    # Each gave back what it did not use, and a tick now has nothing to look at or send.
    for workspace in workspaces[::20]:
        assert await redis_client.hmget(key_prefix + workspace, ["r"]) == [b"3"]
    calls = tap.round_trips
    await asyncio.sleep(0.2)
    assert tap.round_trips == calls
