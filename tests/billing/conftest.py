from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from clearmaas.store.migrate import upgrade
from tests.store.postgres import scratch_postgres

# A database number of its own, and a fresh key prefix per test, so nothing collides with other suites.
REDIS_URL = "redis://127.0.0.1:6379/9"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_postgres() as url:
        upgrade(url)
        yield url


@pytest.fixture
def redis_prefix() -> str:
    return f"clearmaas-test:billing:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client(redis_prefix: str) -> AsyncIterator[Redis]:
    """A client of the machine's Redis; the test's keys are deleted afterwards."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield client
    keys = [key async for key in client.scan_iter(match=redis_prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def redis_keys_cleanup(redis_prefix: str) -> Iterator[None]:
    """Skips without Redis; deletes the test's keys afterwards (synchronous, for use from async fixtures)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except (redis.ConnectionError, OSError) as exc:
        client.close()
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield
    keys = list(client.scan_iter(match=redis_prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()
