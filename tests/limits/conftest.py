from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from clearmaas.limits import Counter, LimitCache, Limiter, MemoryCounter
from clearmaas.limits.redis_counter import RedisCounter

REDIS_URL = "redis://127.0.0.1:6379/0"
HOUR = 3600


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test (or run) shares."""
    return f"clearmaas-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client(key_prefix: str) -> AsyncIterator[Redis]:
    """A client of the machine's Redis; the test's keys are deleted afterwards."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield client
    keys = [key async for key in client.scan_iter(match=key_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Limiter]:
    """A limiter without a database (limits set with `limiter.limits.put`), once per backend."""
    counter: Counter
    if request.param == "memory":
        counter = MemoryCounter(clock=lambda: 1_000 * 60 + 5.0)
    else:
        client = Redis.from_url(REDIS_URL)
        try:
            await client.ping()
        except (RedisConnectionError, OSError) as exc:
            await client.aclose()
            pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
        # An hour-long window, started at least a few seconds ago, so no test straddles a window boundary.
        seconds, _micros = await client.time()
        if seconds % HOUR > HOUR - 5:
            await asyncio.sleep(HOUR - seconds % HOUR + 0.1)
        counter = RedisCounter.from_url(REDIS_URL, key_prefix=key_prefix, window_seconds=HOUR)
    created = Limiter(counter, LimitCache(None))
    await created.start()
    yield created
    if request.param == "redis":
        keys = [key async for key in client.scan_iter(match=key_prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    await created.stop()
