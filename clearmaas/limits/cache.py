"""The in-process copy of every workspace's rate limits: a dict read per request, loaded with one query at
start and refreshed in the background, so a limit changed by the CLI (another process, another replica)
takes effect within about a second without a database round-trip per request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from clearmaas.limits.store import UNLIMITED, Limits, changed_since, load_all
from clearmaas.store.refresh import RefreshLoop
from clearmaas.store.schema import utc_now

__all__ = ["LimitCache"]

log = logging.getLogger("clearmaas.limits")


class LimitCache:
    """Workspace id -> `Limits`; a workspace it does not know is unlimited."""

    def __init__(self, engine: Engine | None, *, refresh_interval: float = 1.0, overlap: float = 30.0) -> None:
        # engine None: the limits are only what `put` stores (tests, embedding without a database).
        self._engine = engine
        self._refresh_interval = refresh_interval
        # Each refresh re-reads everything changed in the last `overlap` seconds, as the key cache does: a
        # writer's transaction can commit after our previous query although its `updated_at` (its own clock,
        # perhaps a little skewed on another host) falls before it.
        self._overlap = timedelta(seconds=overlap)
        self._limits: dict[str, Limits] = {}
        self._refreshed_at: datetime = utc_now()
        self._loop = RefreshLoop(
            self.refresh, interval=self._refresh_interval, name="limit-cache", what="rate-limit cache"
        )

    def __len__(self) -> int:
        return len(self._limits)

    def get(self, workspace_id: str) -> Limits:
        return self._limits.get(workspace_id, UNLIMITED)

    @property
    def lookup(self) -> Callable[[str, Limits], Limits]:
        """The mapping's own `get`, for the limiter's per-request read without a Python call: call it as
        `lookup(workspace_id, UNLIMITED)`. Valid for the cache's life (the mapping is updated in place)."""
        return self._limits.get

    def put(self, workspace_id: str, limits: Limits) -> None:
        if limits.unlimited:
            self._limits.pop(workspace_id, None)
        else:
            self._limits[workspace_id] = limits

    async def load(self) -> int:
        """Replace the cache with every workspace's limits (one query); returns how many have a limit."""
        if self._engine is None:
            return len(self._limits)
        started = utc_now()
        loaded = await asyncio.to_thread(load_all, self._engine)
        # In place: `lookup` hands out the mapping's bound `get`.
        self._limits.clear()
        self._limits.update(loaded)
        self._refreshed_at = started
        return len(self._limits)

    async def refresh(self) -> int:
        """One pass over the workspaces created or changed recently; returns how many rows were read."""
        if self._engine is None:
            return 0
        started = utc_now()
        rows = await asyncio.to_thread(changed_since, self._engine, self._refreshed_at - self._overlap)
        for workspace_id, limits in rows.items():
            self.put(workspace_id, limits)
        self._refreshed_at = started
        return len(rows)

    async def start(self) -> None:
        """Load everything, then keep refreshing in the background until `stop`."""
        if not self._loop.running:
            await self.load()
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
