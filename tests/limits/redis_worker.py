"""One gateway-like process for the cross-process test: loads the limits from the database, waits for its
siblings, then tries `attempts` admissions through Redis as fast as it can; reports how many were admitted
and the allowance it still held unused (requests, tokens) before stopping."""

from __future__ import annotations

import asyncio
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from clearmaas.errors import RateLimited
from clearmaas.limits import LimitCache, Limiter
from clearmaas.limits.redis_counter import RedisCounter
from clearmaas.store.database import create_engine_for


async def _hammer(
    db_url: str, redis_url: str, key_prefix: str, workspace_id: str, attempts: int, tokens: int, barrier: Barrier
) -> tuple[int, int, int]:
    engine = create_engine_for(db_url)
    counter = RedisCounter.from_url(redis_url, key_prefix=key_prefix, window_seconds=3600)
    limiter = Limiter(counter, LimitCache(engine))
    await limiter.start()
    try:
        assert not limiter.limits.get(workspace_id).unlimited
        await asyncio.to_thread(barrier.wait, 30)

        async def attempt() -> int:
            try:
                await limiter.admit(workspace_id, tokens=tokens)
            except RateLimited:
                return 0
            return 1

        admitted = 0
        for _ in range(attempts // 20):
            admitted += sum(await asyncio.gather(*(attempt() for _ in range(20))))
        return (admitted, *counter.allowance(workspace_id))
    finally:
        await limiter.stop()
        engine.dispose()


def run(
    db_url: str,
    redis_url: str,
    key_prefix: str,
    workspace_id: str,
    attempts: int,
    tokens: int,
    barrier: Barrier,
    results: Queue[tuple[int, int, int] | str],
) -> None:
    try:
        results.put(asyncio.run(_hammer(db_url, redis_url, key_prefix, workspace_id, attempts, tokens, barrier)))
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise
