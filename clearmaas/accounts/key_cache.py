"""The in-process key cache the gateway authenticates with: a known key is a dict hit, never a database
round-trip; unknown keys are loaded once, remembered briefly when absent, and a background refresh picks
up revocations and other changes made elsewhere (the CLI in another process, another replica).

It decides nothing: `lookup` returns what is stored and the auth layer applies `is_usable`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import Engine

from clearmaas.accounts.keys import KeyRecord, changed_since, find_by_hash, hash_key, is_usable, looks_like_key
from clearmaas.store.refresh import RefreshLoop
from clearmaas.store.schema import utc_now

__all__ = ["KeyCache", "is_usable"]

log = logging.getLogger("clearmaas.accounts")


class KeyCache:
    """Key hash -> `KeyRecord`, shared by every request of one process."""

    def __init__(
        self,
        engine: Engine,
        *,
        refresh_interval: float = 1.0,
        negative_ttl: float = 2.0,
        max_negative: int = 10_000,
        max_concurrent_loads: int = 4,
        overlap: float = 30.0,
    ) -> None:
        self._engine = engine
        self._refresh_interval = refresh_interval
        self._negative_ttl = negative_ttl
        self._max_negative = max_negative
        # A refresh re-reads everything changed in the last `overlap` seconds, not just since the last
        # refresh: a writer's transaction can commit after our previous query although its `updated_at`
        # (its own clock, possibly skewed a little on another host) falls before it.
        self._overlap = timedelta(seconds=overlap)
        self._records: dict[str, KeyRecord] = {}
        # Hash -> monotonic deadline. Insertion order is expiry order (one TTL for all), so the oldest
        # entry is always first and eviction is O(1).
        self._absent: dict[str, float] = {}
        self._loading: dict[str, asyncio.Task[KeyRecord | None]] = {}
        self._load_slots = asyncio.Semaphore(max_concurrent_loads)
        self._refreshed_at: datetime = utc_now()
        self._loop = RefreshLoop(
            self.refresh, interval=self._refresh_interval, name="key-cache", what="key cache"
        )

    def __len__(self) -> int:
        return len(self._records)

    async def lookup(self, raw_key: str) -> KeyRecord | None:
        """The record of `raw_key`, revoked or expired ones included; None when no such key exists."""
        if not looks_like_key(raw_key):
            return None
        # Only a hash of the secret is ever compared (the dict probe, the index lookup); a timing
        # difference there tells an attacker about a SHA-256 output, not about any key.
        key_hash = hash_key(raw_key)
        record = self._records.get(key_hash)
        if record is not None:
            return record
        deadline = self._absent.get(key_hash)
        if deadline is not None:
            if deadline > time.monotonic():
                return None
            del self._absent[key_hash]
        task = self._loading.get(key_hash)
        if task is None:
            task = asyncio.create_task(self._load(key_hash))
            task.add_done_callback(_retrieve_exception)
            self._loading[key_hash] = task
        # Shielded: a caller that goes away (client disconnect) does not cancel the load others wait on.
        return await asyncio.shield(task)

    async def _load(self, key_hash: str) -> KeyRecord | None:
        try:
            async with self._load_slots:
                record = await asyncio.to_thread(find_by_hash, self._engine, key_hash)
        finally:
            del self._loading[key_hash]
        if record is None:
            self._remember_absent(key_hash)
        else:
            self._records[key_hash] = record
        return record

    def _remember_absent(self, key_hash: str) -> None:
        now = time.monotonic()
        absent = self._absent
        while absent:
            oldest = next(iter(absent))
            if absent[oldest] > now and len(absent) < self._max_negative:
                break
            del absent[oldest]
        absent[key_hash] = now + self._negative_ttl

    async def refresh(self) -> int:
        """One pass: reload cached keys changed recently; returns how many changed rows were read."""
        started = utc_now()
        rows = await asyncio.to_thread(changed_since, self._engine, self._refreshed_at - self._overlap)
        for key_hash, record in rows:
            if key_hash in self._records:
                self._records[key_hash] = record
            self._absent.pop(key_hash, None)
        self._refreshed_at = started
        return len(rows)

    async def start(self) -> None:
        if not self._loop.running:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


def _retrieve_exception(task: asyncio.Task[KeyRecord | None]) -> None:
    # A load whose every waiter went away must not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()
