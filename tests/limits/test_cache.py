"""Limits come from the workspaces table: loaded in one query, refreshed in the background, and never read
per request (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from clearmaas.accounts.errors import WorkspaceNotFound
from clearmaas.accounts.workspaces import create_workspace
from clearmaas.errors import RateLimited
from clearmaas.limits import KEEP, UNLIMITED, LimitCache, Limiter, Limits, MemoryCounter, set_limits
from clearmaas.limits.store import MAX_RPM, changed_since, load_all
from clearmaas.store.schema import utc_now, workspaces


@pytest.fixture
def queries(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def updated_at(engine: Engine, name: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(workspaces.c.updated_at).where(workspaces.c.name == name)).scalar_one()


def test_set_limits_changes_only_what_is_given_and_bumps_updated_at(engine: Engine) -> None:
    created = create_workspace(engine, "acme")
    assert updated_at(engine, "acme") is None
    before = utc_now()
    workspace = set_limits(engine, "acme", rpm=60)
    assert (workspace.id, workspace.rpm_limit, workspace.tpm_limit) == (created.id, 60, None)
    first = updated_at(engine, "acme")
    assert first is not None and first >= before
    workspace = set_limits(engine, "acme", tpm=100_000)
    assert (workspace.rpm_limit, workspace.tpm_limit) == (60, 100_000)
    assert updated_at(engine, "acme") >= first
    workspace = set_limits(engine, "acme", rpm=None, tpm=KEEP)
    assert (workspace.rpm_limit, workspace.tpm_limit) == (None, 100_000)
    assert load_all(engine) == {created.id: Limits(rpm=None, tpm=100_000)}


def test_set_limits_refuses_bad_input(engine: Engine) -> None:
    create_workspace(engine, "acme")
    with pytest.raises(WorkspaceNotFound):
        set_limits(engine, "nobody", rpm=5)
    for bad in (0, -1, MAX_RPM + 1):
        with pytest.raises(ValueError):
            set_limits(engine, "acme", rpm=bad)
    assert load_all(engine) == {}


def test_changed_since_sees_new_and_changed_workspaces(engine: Engine) -> None:
    old = create_workspace(engine, "old", rpm_limit=5)
    since = utc_now()
    time.sleep(0.01)
    new = create_workspace(engine, "new", tpm_limit=50)
    plain = create_workspace(engine, "plain")
    assert changed_since(engine, since) == {new.id: Limits(tpm=50), plain.id: UNLIMITED}
    set_limits(engine, "old", rpm=None)
    assert changed_since(engine, since)[old.id] == UNLIMITED
    assert changed_since(engine, utc_now() + timedelta(seconds=1)) == {}


async def test_start_loads_every_limit_in_one_query(engine: Engine, queries: list[str]) -> None:
    acme = create_workspace(engine, "acme", rpm_limit=10, tpm_limit=1000)
    create_workspace(engine, "free")
    queries.clear()
    cache = LimitCache(engine)
    await cache.start()
    try:
        assert len(queries) == 1
        assert len(cache) == 1
        assert cache.get(acme.id) == Limits(rpm=10, tpm=1000)
        assert cache.get("ws_missing") == UNLIMITED
    finally:
        await cache.stop()


async def test_admitting_never_touches_the_database(engine: Engine, queries: list[str]) -> None:
    acme = create_workspace(engine, "acme", rpm_limit=100)
    limiter = Limiter(MemoryCounter(), LimitCache(engine, refresh_interval=3600))
    await limiter.start()
    try:
        queries.clear()
        for _ in range(100):
            admission = await limiter.admit(acme.id, tokens=10)
            await limiter.adjust(acme.id, estimated=10, actual=5, admission=admission)
            await limiter.admit("ws_unknown", tokens=10)
        with pytest.raises(RateLimited):
            await limiter.admit(acme.id, tokens=10)
        assert queries == []
    finally:
        await limiter.stop()


async def test_refresh_follows_changes_made_elsewhere(engine: Engine) -> None:
    acme = create_workspace(engine, "acme", rpm_limit=10)
    cache = LimitCache(engine)
    await cache.load()
    set_limits(engine, "acme", rpm=20, tpm=500)
    beta = create_workspace(engine, "beta", rpm_limit=3)
    create_workspace(engine, "gamma")
    assert await cache.refresh() >= 3
    assert cache.get(acme.id) == Limits(rpm=20, tpm=500)
    assert cache.get(beta.id) == Limits(rpm=3)
    set_limits(engine, "acme", rpm=None, tpm=None)
    await cache.refresh()
    assert cache.get(acme.id) == UNLIMITED
    assert len(cache) == 1


async def test_a_cli_change_is_enforced_within_about_a_second(engine: Engine) -> None:
    acme = create_workspace(engine, "acme")
    limiter = Limiter(MemoryCounter(), LimitCache(engine))  # the default one-second refresh
    await limiter.start()
    try:
        for _ in range(5):
            await limiter.admit(acme.id, tokens=1)
        await asyncio.to_thread(set_limits, engine, "acme", rpm=2)
        changed = time.monotonic()
        while limiter.limits.get(acme.id).rpm != 2:
            assert time.monotonic() - changed < 2.5, "the new limit was not picked up"
            await asyncio.sleep(0.05)
        await limiter.admit(acme.id, tokens=1)
        await limiter.admit(acme.id, tokens=1)
        with pytest.raises(RateLimited):
            await limiter.admit(acme.id, tokens=1)
    finally:
        await limiter.stop()


async def test_a_failing_refresh_keeps_the_limits_it_has(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    acme = create_workspace(engine, "acme", rpm_limit=7)
    cache = LimitCache(engine, refresh_interval=0.02)
    await cache.start()
    try:
        engine.dispose()

        def broken(*args: Any) -> None:
            raise ConnectionError("database down")

        event.listen(engine, "do_connect", broken)
        try:
            await asyncio.sleep(0.1)
        finally:
            event.remove(engine, "do_connect", broken)
        assert cache.get(acme.id) == Limits(rpm=7)
        assert "rate-limit cache refresh failed" in caplog.text
    finally:
        await cache.stop()
