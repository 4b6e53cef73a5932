"""The Redis counter: server-clock windows, key expiry, failing open, and one budget shared by several
processes."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
from pathlib import Path

import pytest
from redis.asyncio import Redis

from clearmaas.accounts.workspaces import create_workspace
from clearmaas.errors import RateLimited
from clearmaas.limits import LimitCache, Limiter, Limits
from clearmaas.limits.counters import NOT_COUNTED
from clearmaas.limits.redis_counter import RedisCounter
from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import upgrade
from tests.limits import redis_worker
from tests.limits.conftest import REDIS_URL
from tests.store.postgres import sqlite_url

pytestmark = pytest.mark.redis

WS = "ws_acme"


async def server_time(client: Redis) -> float:
    seconds, micros = await client.time()
    return seconds + micros / 1e6


async def window_with_room(client: Redis, length: float, room: float) -> None:
    """Wait until at least `room` seconds of the current window (on the Redis clock) remain."""
    into = await server_time(client) % length
    if length - into < room:
        await asyncio.sleep(length - into + 0.01)


async def test_retry_after_and_expiry_follow_the_redis_clock(redis_client: Redis, key_prefix: str) -> None:
    limiter = Limiter(RedisCounter(redis_client, key_prefix=key_prefix), LimitCache(None))
    limiter.limits.put(WS, Limits(rpm=1))
    await window_with_room(redis_client, 60, 3)
    before = 60 - await server_time(redis_client) % 60
    await limiter.admit(WS, tokens=0)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(WS, tokens=0)
    after = 60 - await server_time(redis_client) % 60
    assert math.ceil(after) <= (refused.value.retry_after or 0) <= math.ceil(before)
    # The counts vanish a second after their window ends instead of piling up.
    ttl_ms = await redis_client.pttl(key_prefix + WS)
    # (+1 ms: the script counts whole milliseconds of the server clock, `before` its microseconds.)
    assert 0 < ttl_ms <= before * 1000 + 1000 + 1


async def test_a_new_window_starts_from_zero(redis_client: Redis, key_prefix: str) -> None:
    limiter = Limiter(RedisCounter(redis_client, key_prefix=key_prefix, window_seconds=1), LimitCache(None))
    limiter.limits.put(WS, Limits(rpm=2, tpm=100))
    await window_with_room(redis_client, 1, 0.5)
    await limiter.admit(WS, tokens=60)
    await limiter.admit(WS, tokens=40)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(WS, tokens=0)
    assert refused.value.retry_after == 1
    await asyncio.sleep(refused.value.retry_after)
    await limiter.admit(WS, tokens=100)
    assert await limiter.counter.usage(WS) == (1, 100)


async def test_an_unreachable_redis_admits_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    counter = RedisCounter.from_url("redis://127.0.0.1:1/0", backoff=30)
    limiter = Limiter(counter, LimitCache(None))
    limiter.limits.put(WS, Limits(rpm=1))
    with caplog.at_level(logging.WARNING, logger="clearmaas.limits"):
        for _ in range(5):
            assert await limiter.admit(WS, tokens=1) == NOT_COUNTED
        await limiter.adjust(WS, estimated=1, actual=5)
    await limiter.stop()
    assert len([r for r in caplog.records if "Redis failed" in r.getMessage()]) == 1


def hammer_from_processes(
    tmp_path: Path, key_prefix: str, limits: Limits, *, processes: int, attempts: int, tokens: int
) -> list[tuple[int, int, int]]:
    """Each process's (admitted, unused requests, unused tokens): what it still held when it was done."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    engine = create_engine_for(url)
    try:
        workspace = create_workspace(engine, "acme", rpm_limit=limits.rpm, tpm_limit=limits.tpm)
    finally:
        engine.dispose()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(
            target=redis_worker.run,
            args=(url, REDIS_URL, key_prefix, workspace.id, attempts, tokens, barrier, results),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    assert all(isinstance(outcome, tuple) for outcome in outcomes), outcomes
    return outcomes


# A process leases allowance ahead of its requests (beyond each request at most 1/16 of what the window has
# left), so one that is done first may still hold a little of the budget while the others are refused. It
# gives that back when it stops, maybe after the others are done too: the processes together admit at most
# the limit, and at least the limit less what was left unused that way.


async def test_three_processes_share_one_request_budget(redis_client: Redis, key_prefix: str, tmp_path: Path) -> None:
    await window_with_room(redis_client, 3600, 60)
    outcomes = await asyncio.to_thread(
        hammer_from_processes, tmp_path, key_prefix, Limits(rpm=450), processes=3, attempts=200, tokens=3
    )
    admitted = [count for count, _, _ in outcomes]
    unused = sum(requests for _, requests, _ in outcomes)
    assert sum(admitted) <= 450 <= sum(admitted) + unused, outcomes
    # 600 attempts for 450 requests: no two processes could have used the budget up alone.
    assert min(admitted) >= 50 - unused, outcomes
    # The shared counts include leased allowance while the processes run; stopping, each gave back what it
    # held unused, so they are exactly what was admitted.
    assert await redis_client.hmget(key_prefix + (await _only_key(redis_client, key_prefix)), ["r", "t"]) == [
        str(sum(admitted)).encode(),
        str(3 * sum(admitted)).encode(),
    ]


async def test_three_processes_share_one_token_budget(redis_client: Redis, key_prefix: str, tmp_path: Path) -> None:
    await window_with_room(redis_client, 3600, 60)
    outcomes = await asyncio.to_thread(
        hammer_from_processes, tmp_path, key_prefix, Limits(tpm=3000), processes=3, attempts=200, tokens=7
    )
    admitted = [count for count, _, _ in outcomes]
    unused = sum(tokens for _, _, tokens in outcomes)
    # Refused when fewer than 7 tokens were left (3000 = 428 * 7 + 4).
    assert 7 * sum(admitted) <= 3000 < 7 * sum(admitted) + unused + 7, outcomes
    # Each process asks for 1400 tokens, so all three take part in using up 3000.
    assert 7 * min(admitted) >= 3000 - 2 * 1400 - 7 - unused, outcomes
    assert await redis_client.hget(key_prefix + (await _only_key(redis_client, key_prefix)), "t") == str(
        7 * sum(admitted)
    ).encode()


async def _only_key(client: Redis, key_prefix: str) -> str:
    keys = [key async for key in client.scan_iter(match=key_prefix + "*")]
    assert len(keys) == 1
    key: bytes = keys[0]
    return key.decode().removeprefix(key_prefix)
