from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from clearmaas.accounts import key_cache
from clearmaas.accounts.key_cache import KeyCache, is_usable
from clearmaas.accounts.keys import KeyRecord, changed_since, create_key, generate_key, hash_key, revoke_key
from clearmaas.accounts.workspaces import create_workspace


@pytest.fixture
def queries(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine runs during the test."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def key(engine: Engine) -> tuple[KeyRecord, str]:
    create_workspace(engine, "acme")
    return create_key(engine, "acme", name="app")


async def test_a_known_key_is_served_without_touching_the_database(
    engine: Engine, key: tuple[KeyRecord, str], queries: list[str]
) -> None:
    record, raw = key
    cache = KeyCache(engine)
    assert await cache.lookup(raw) == record
    assert len(queries) >= 1
    queries.clear()
    for _ in range(500):
        assert await cache.lookup(raw) == record
    assert queries == []


async def test_concurrent_misses_for_one_key_load_it_once(
    engine: Engine, key: tuple[KeyRecord, str], queries: list[str]
) -> None:
    record, raw = key
    cache = KeyCache(engine)
    results = await asyncio.gather(*(cache.lookup(raw) for _ in range(50)))
    assert results == [record] * 50
    assert len([q for q in queries if "api_keys" in q]) == 1
    assert len(cache) == 1


async def test_malformed_keys_never_reach_the_database(engine: Engine, queries: list[str]) -> None:
    cache = KeyCache(engine)
    for bad in ("", "Bearer x", "sk-other-123", "sk-clearmaas-short", "sk-clearmaas-" + "a" * 300):
        assert await cache.lookup(bad) is None
    assert queries == []


async def test_unknown_keys_are_remembered_briefly(engine: Engine, queries: list[str]) -> None:
    cache = KeyCache(engine, negative_ttl=0.2)
    unknown = generate_key()
    for _ in range(20):
        assert await cache.lookup(unknown) is None
    assert len(queries) == 1
    await asyncio.sleep(0.25)
    assert await cache.lookup(unknown) is None
    assert len(queries) == 2


async def test_the_negative_cache_is_bounded(engine: Engine, queries: list[str]) -> None:
    cache = KeyCache(engine, max_negative=2)
    first, second, third = generate_key(), generate_key(), generate_key()
    for raw in (first, second, third):
        assert await cache.lookup(raw) is None
    assert len(queries) == 3
    assert await cache.lookup(third) is None  # still remembered
    assert len(queries) == 3
    assert await cache.lookup(first) is None  # evicted when the third arrived
    assert len(queries) == 4


async def test_a_key_created_after_a_miss_is_found_once_the_refresh_sees_it(engine: Engine) -> None:
    create_workspace(engine, "acme")
    cache = KeyCache(engine, negative_ttl=60)
    record, raw = create_key(engine, "acme")
    # Simulate a lookup that raced the insert: the hash is remembered as absent.
    cache._remember_absent(hash_key(raw))
    assert await cache.lookup(raw) is None
    await cache.refresh()
    assert await cache.lookup(raw) == record


async def test_database_errors_on_a_miss_propagate_and_are_not_cached(
    engine: Engine, key: tuple[KeyRecord, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record, raw = key

    def broken(engine: Engine, key_hash: str) -> KeyRecord | None:
        raise ConnectionError("database down")

    monkeypatch.setattr(key_cache, "find_by_hash", broken)
    cache = KeyCache(engine)
    with pytest.raises(ConnectionError):
        await cache.lookup(raw)
    monkeypatch.undo()
    assert await cache.lookup(raw) == record


async def test_revocation_and_expiry_reach_the_cached_record(engine: Engine, key: tuple[KeyRecord, str]) -> None:
    record, raw = key
    cache = KeyCache(engine)
    cached = await cache.lookup(raw)
    assert cached is not None and is_usable(cached, datetime.now(UTC))
    revoke_key(engine, record.id)
    assert await cache.lookup(raw) == cached  # nothing changes before a refresh
    assert await cache.refresh() >= 1
    refreshed = await cache.lookup(raw)
    assert refreshed is not None and refreshed.revoked_at is not None
    assert not is_usable(refreshed, datetime.now(UTC))


async def test_expired_keys_are_returned_but_not_usable(engine: Engine) -> None:
    create_workspace(engine, "acme")
    past = datetime.now(UTC) - timedelta(minutes=1)
    record, raw = create_key(engine, "acme", expires_at=past)
    found = await KeyCache(engine).lookup(raw)
    assert found == record and not is_usable(found, datetime.now(UTC))


async def test_revocation_by_another_process_is_seen_within_about_a_second(
    engine: Engine, key: tuple[KeyRecord, str], db_url: str
) -> None:
    record, raw = key
    cache = KeyCache(engine, refresh_interval=1.0)
    await cache.start()
    try:
        assert (await cache.lookup(raw)) == record
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARMAAS_")}
        env["CLEARMAAS_DATABASE_URL"] = db_url
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "clearmaas", "keys", "revoke", record.id],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        revoked_by_cli = time.monotonic()
        while True:
            seen = await cache.lookup(raw)
            assert seen is not None
            if seen.revoked_at is not None:
                break
            assert time.monotonic() - revoked_by_cli < 2.5, "revocation not picked up"
            await asyncio.sleep(0.02)
    finally:
        await cache.stop()


async def test_the_refresh_loop_survives_a_failing_database(
    engine: Engine, key: tuple[KeyRecord, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    record, raw = key
    real = changed_since
    failures = 0

    def flaky(engine: Engine, since: datetime) -> list[tuple[str, KeyRecord]]:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise ConnectionError("database restarting")
        return real(engine, since)

    monkeypatch.setattr(key_cache, "changed_since", flaky)
    cache = KeyCache(engine, refresh_interval=0.05)
    assert await cache.lookup(raw) == record
    await cache.start()
    try:
        revoke_key(engine, record.id)
        for _ in range(100):
            seen = await cache.lookup(raw)
            if seen is not None and seen.revoked_at is not None:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the refresh loop stopped after a failure")
    finally:
        await cache.stop()
    assert failures == 2
    assert "key cache refresh failed" in caplog.text


async def test_stop_ends_the_refresh(engine: Engine, queries: list[str]) -> None:
    cache = KeyCache(engine, refresh_interval=0.02)
    await cache.start()
    for _ in range(500):  # a loaded machine can take a while over the first query
        if queries:
            break
        await asyncio.sleep(0.02)
    await cache.stop()
    assert queries, "the loop should have refreshed while running"
    await asyncio.sleep(0.2)  # a query already handed to its thread when stop came may still finish
    count = len(queries)
    await asyncio.sleep(0.3)  # a running loop would have refreshed ~15 times
    assert len(queries) == count
    await cache.stop()  # stopping twice is harmless
