"""Which gateway processes serve a database, so that a second one without Redis is refused at start.

Without `redis_url` a gateway keeps reservations, key spend and rate-limit windows in its own memory. Two such
processes on one database (the same SQLite file, or PostgreSQL without Redis) would each let a workspace
spend its whole balance: an overspend nothing in either process can see. So a serving process writes a row
in `gateway_processes` at start (`claim`), refreshes it every second, and deletes it when it stops; a process
that finds another live row older than its own refuses to serve and says why.

A row is dead when its `seen_at` is older than `STALE_AFTER`, or when it names this host and a pid that is no
longer running (a crash, or this container's previous life with the same pid), and is then deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from clearmaas.store.refresh import RefreshLoop
from clearmaas.store.schema import gateway_processes, utc_now

__all__ = ["BEAT_INTERVAL", "STALE_AFTER", "AnotherProcessServing", "Peer", "ProcessPresence"]

log = logging.getLogger("clearmaas.store")

BEAT_INTERVAL = 1.0
STALE_AFTER = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Peer:
    host: str
    pid: int
    started_at: datetime


class AnotherProcessServing(Exception):
    """Another live gateway process serves this database, and state is not shared through Redis."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        super().__init__(
            f"another gateway process (pid {peer.pid} on {peer.host}, started {peer.started_at:%Y-%m-%d %H:%M:%S} "
            "UTC) already serves this database without redis_url. Each process would hold its own reservations "
            "and rate limits, so together they could spend more than a balance or a key's credit. Stop that "
            "process, or give every process the same redis_url (README, 'Many replicas'). A process that "
            f"crashed on another host stops counting {int(STALE_AFTER.total_seconds())} s after it was last seen."
        )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True


class ProcessPresence:
    """This process's row among the gateway processes serving one database."""

    def __init__(self, engine: Engine, *, host: str | None = None, pid: int | None = None) -> None:
        self._engine = engine
        self._host = host or socket.gethostname()
        self._pid = os.getpid() if pid is None else pid
        self._id: int | None = None
        self._loop = RefreshLoop(self._beat, interval=BEAT_INTERVAL, name="presence", what="process presence")

    @property
    def claimed(self) -> bool:
        return self._id is not None

    def claim(self) -> None:
        """Record this process, then refuse (AnotherProcessServing, this row removed again) if a live process
        registered before it. Of two processes starting at once, the one with the lower row id serves."""
        if self._id is not None:
            return
        now = utc_now()
        with self._engine.begin() as connection:
            self._id = int(connection.execute(
                insert(gateway_processes).values(host=self._host, pid=self._pid, started_at=now, seen_at=now)
                .returning(gateway_processes.c.id)
            ).scalar_one())
        earlier = self._live_before(self._id, now)
        if earlier is not None:
            self.leave()
            raise AnotherProcessServing(earlier)

    def _live_before(self, own_id: int, now: datetime) -> Peer | None:
        with self._engine.begin() as connection:
            rows = connection.execute(
                select(gateway_processes).where(gateway_processes.c.id < own_id).order_by(gateway_processes.c.id)
            ).all()
            dead = [row.id for row in rows if self._dead(row.host, row.pid, row.seen_at, now)]
            if dead:
                connection.execute(delete(gateway_processes).where(gateway_processes.c.id.in_(dead)))
        live = [row for row in rows if row.id not in dead]
        if not live:
            return None
        first = live[0]
        return Peer(first.host, first.pid, first.started_at)

    def _dead(self, host: str, pid: int, seen_at: datetime, now: datetime) -> bool:
        if now - seen_at > STALE_AFTER:
            return True
        return host == self._host and (pid == self._pid or not _running(pid))

    def beat(self) -> None:
        """Refresh this process's `seen_at` (and put the row back if an operator or a peer deleted it)."""
        if self._id is None:
            return
        now = utc_now()
        with self._engine.begin() as connection:
            touched = connection.execute(
                update(gateway_processes).where(gateway_processes.c.id == self._id).values(seen_at=now)
            ).rowcount
            if not touched:
                connection.execute(insert(gateway_processes).values(
                    id=self._id, host=self._host, pid=self._pid, started_at=now, seen_at=now))

    async def _beat(self) -> None:
        await asyncio.to_thread(self.beat)

    def leave(self) -> None:
        own, self._id = self._id, None
        if own is not None:
            with self._engine.begin() as connection:
                connection.execute(delete(gateway_processes).where(gateway_processes.c.id == own))

    async def start(self) -> None:
        """Claim (if `claim` was not called before the server started) and keep the row fresh."""
        if self._id is None:
            await asyncio.to_thread(self.claim)
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        with contextlib.suppress(Exception):  # a database gone at shutdown: the row goes stale on its own
            await asyncio.to_thread(self.leave)
        log.debug("process presence released")
