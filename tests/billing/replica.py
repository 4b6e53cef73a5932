"""One gateway replica's billing, run in a separate process by `test_replicas.py`: it serves a burst of
requests against the shared PostgreSQL and Redis and reports how many it served."""

from __future__ import annotations

import asyncio
import random
import time
from threading import Barrier

from clearmaas.accounts.keys import KeyRecord
from clearmaas.billing.service import Billing
from clearmaas.canonical.usage import Usage
from clearmaas.errors import InsufficientQuota
from clearmaas.settings import Settings
from clearmaas.store.database import create_engine_for
from tests.billing.support import CATALOGUE, MODEL, call_record

__all__ = ["run_replica"]


async def _serve(billing: Billing, key: KeyRecord, usage: Usage) -> bool:
    record = call_record(key, usage)
    try:
        reservation = await billing.reserve(key, MODEL, input_tokens=100, max_output_tokens=100)
    except InsufficientQuota as exc:
        record.status, record.error_code, record.usage = exc.status, exc.code, Usage()
        await billing.settle(None, record)
        return False
    await asyncio.sleep(random.random() / 50)
    await billing.settle(reservation, record)
    return True


async def _main(
    db_url: str, redis_url: str, prefix: str, key: KeyRecord, requests: int, ready: Barrier
) -> tuple[int, float, float]:
    engine = create_engine_for(db_url)
    billing = Billing.from_settings(
        Settings(database_url=db_url, redis_url=redis_url), engine, CATALOGUE, redis_prefix=prefix
    )
    await billing.start()
    try:
        # Every replica starts its burst once all have loaded their books.
        await asyncio.to_thread(ready.wait, 60)
        usage = Usage(cache_write_tokens=100, output_tokens=100)
        began = time.time()
        served = await asyncio.gather(*(_serve(billing, key, usage) for _ in range(requests)))
        ended = time.time()
    finally:
        await billing.stop()
        engine.dispose()
    return sum(served), began, ended


def run_replica(
    db_url: str, redis_url: str, prefix: str, key: KeyRecord, requests: int, ready: Barrier
) -> tuple[int, float, float]:
    """(requests served, when the burst began, when it ended)."""
    return asyncio.run(_main(db_url, redis_url, prefix, key, requests, ready))
