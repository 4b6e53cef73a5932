"""store/presence.py on both databases: one serving process per database without Redis, dead rows ignored."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import upgrade
from clearmaas.store.presence import STALE_AFTER, AnotherProcessServing, ProcessPresence
from clearmaas.store.schema import gateway_processes, utc_now


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def other_pid() -> Iterator[int]:
    """The pid of a live process other than this one."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(gateway_processes)).scalar_one())


def age_every_row(engine: Engine, by: timedelta) -> None:
    with engine.begin() as connection:
        connection.execute(update(gateway_processes).values(seen_at=utc_now() - by))


def test_the_second_live_process_is_refused_and_leaves_no_row(engine: Engine, other_pid: int) -> None:
    first = ProcessPresence(engine, pid=other_pid)
    first.claim()
    second = ProcessPresence(engine)
    with pytest.raises(AnotherProcessServing) as refused:
        second.claim()
    assert refused.value.peer.pid == other_pid
    assert f"pid {other_pid}" in str(refused.value) and "redis_url" in str(refused.value)
    assert not second.claimed and rows(engine) == 1
    first.leave()
    second.claim()  # the first one left cleanly: the next serves
    assert second.claimed and rows(engine) == 1


def test_a_process_on_another_host_counts_until_it_goes_stale(engine: Engine) -> None:
    ProcessPresence(engine, host="elsewhere", pid=os.getpid()).claim()
    with pytest.raises(AnotherProcessServing):
        ProcessPresence(engine).claim()
    age_every_row(engine, STALE_AFTER + timedelta(seconds=1))
    here = ProcessPresence(engine)
    here.claim()
    assert here.claimed and rows(engine) == 1  # the stale row was deleted


def test_a_dead_pid_on_this_host_does_not_count(engine: Engine) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ProcessPresence(engine, pid=gone.pid).claim()  # a crash: its row stays, fresh
    ProcessPresence(engine).claim()
    assert rows(engine) == 1


def test_this_pid_in_an_earlier_row_is_a_previous_life(engine: Engine) -> None:
    # A container restarted after a crash runs the gateway under the same pid (often 1) on the same host.
    ProcessPresence(engine).claim()
    ProcessPresence(engine).claim()
    assert rows(engine) == 1


def test_the_beat_keeps_a_row_alive_and_puts_back_a_deleted_one(engine: Engine, other_pid: int) -> None:
    first = ProcessPresence(engine, pid=other_pid)
    first.claim()
    age_every_row(engine, STALE_AFTER - timedelta(seconds=2))
    first.beat()
    age_every_row(engine, timedelta(0))
    with engine.begin() as connection:
        connection.execute(gateway_processes.delete())
    first.beat()
    assert rows(engine) == 1
    with pytest.raises(AnotherProcessServing):
        ProcessPresence(engine).claim()


async def test_start_claims_beats_and_stop_leaves(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clearmaas.store.presence.BEAT_INTERVAL", 0.01)
    presence = ProcessPresence(engine)
    await presence.start()
    assert presence.claimed and rows(engine) == 1
    with engine.connect() as connection:
        before = connection.execute(select(gateway_processes.c.seen_at)).scalar_one()
    await asyncio.sleep(0.3)
    with engine.connect() as connection:
        after = connection.execute(select(gateway_processes.c.seen_at)).scalar_one()
    assert after > before
    await presence.stop()
    assert not presence.claimed and rows(engine) == 0
