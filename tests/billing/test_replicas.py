from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from clearmaas.billing.ledger import reconcile
from clearmaas.billing.redis_book import RedisKeys
from clearmaas.store.database import create_engine_for
from clearmaas.store.schema import api_keys, ledger_entries, usage_records, workspaces
from tests.billing.conftest import REDIS_URL
from tests.billing.replica import run_replica
from tests.billing.support import funded_key

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BOUND = 1_875  # what each request reserves, and costs


async def test_three_replicas_sharing_redis_and_postgres_never_spend_more_than_the_key_credit(
    pg_url: str, redis_client: Redis, redis_prefix: str
) -> None:
    engine = create_engine_for(pg_url)
    limit = 20 * BOUND + BOUND // 2
    key = funded_key(engine, balance_micros=10_000_000, credit_limit_micros=limit)
    names = RedisKeys(redis_prefix)
    lowest = [limit, 10_000_000]

    async def watch() -> None:
        # Redis's view, read atomically, must never show the credit or the balance below zero.
        while True:
            values = await redis_client.mget(
                [
                    names.spent(key.id),
                    names.key_reserved(key.id),
                    names.balance(key.workspace_id),
                    names.ws_reserved(key.workspace_id),
                ]
            )
            spent, kres, bal, wres = (int(v or 0) for v in values)
            if values[0] is not None:
                lowest[0] = min(lowest[0], limit - spent - kres)
            if values[2] is not None:
                lowest[1] = min(lowest[1], bal - wres)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(3, mp_context=context) as pool:
        ready = manager.Barrier(3)
        results = await asyncio.gather(
            *(
                loop.run_in_executor(pool, run_replica, pg_url, REDIS_URL, redis_prefix, key, requests, ready)
                for requests in (67, 67, 66)
            )
        )
    watcher.cancel()
    served = [count for count, _began, _ended in results]
    assert sum(served) == 20, served
    # The bursts really overlapped: every replica began before any had finished.
    assert max(began for _c, began, _e in results) < min(ended for _c, _b, ended in results)
    assert min(lowest) >= 0
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(usage_records)).scalar_one() == 200
        charges = c.execute(
            select(func.count(), func.sum(ledger_entries.c.amount_micros)).where(ledger_entries.c.kind == "charge")
        ).one()
        assert tuple(charges) == (20, -20 * BOUND)
        assert c.execute(select(api_keys.c.spent_micros).where(api_keys.c.id == key.id)).scalar_one() == 20 * BOUND
        balance = c.execute(select(workspaces.c.balance_micros).where(workspaces.c.id == key.workspace_id)).scalar_one()
        assert balance == 10_000_000 - 20 * BOUND
    live = await redis_client.mget(
        [
            names.balance(key.workspace_id),
            names.ws_reserved(key.workspace_id),
            names.spent(key.id),
            names.key_reserved(key.id),
        ]
    )
    assert [int(v or 0) for v in live] == [10_000_000 - 20 * BOUND, 0, 20 * BOUND, 0]
    assert reconcile(engine, redis_url=REDIS_URL, redis_prefix=redis_prefix) == []
    engine.dispose()
