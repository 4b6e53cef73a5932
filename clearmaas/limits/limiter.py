"""The workspace rate limiter the relay calls: requests and tokens per minute, shared by all of a
workspace's keys, refused with `RateLimited` (429 with Retry-After) as operations__rate-limits.md says.

Per request it reads the limits from the in-process `LimitCache` and counts in one backend: in-process
counters by default, Redis when `redis_url` is set (then every process shares one budget). It never touches
the database per request. `admit_now` and `adjust_now` are the synchronous fast path (no coroutine) for what
the counter decides in this process; `admit` and `adjust` do the same and await the backend otherwise.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from clearmaas.limits.cache import LimitCache
from clearmaas.limits.counters import NOT_COUNTED, Admission, Counter, LocalCounter, MemoryCounter
from clearmaas.limits.store import UNLIMITED
from clearmaas.settings import Settings

__all__ = ["Limiter"]

log = logging.getLogger("clearmaas.limits")


class Limiter:
    """Admits or refuses requests against their workspace's requests- and tokens-per-minute limits."""

    def __init__(self, counter: Counter, cache: LimitCache) -> None:
        self.counter = counter
        self.limits = cache
        # The counter's synchronous fast path (`LocalCounter`), when it has one.
        fast = hasattr(counter, "admit_now") and hasattr(counter, "adjust_now")
        local: LocalCounter | None = counter if fast else None  # type: ignore[assignment]
        self._local = local
        # The cache's dict lookup itself, read twice per request (no Python call in between).
        self._limits_of = cache.lookup

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> Limiter:
        """In-process counters, or Redis counters when `settings.redis_url` is set."""
        counter: Counter
        if settings.redis_url:
            # Imported only when configured, so the CLI and Redis-less installs never load the client.
            from clearmaas.limits.redis_counter import RedisCounter

            counter = RedisCounter.from_url(settings.redis_url)
        else:
            if settings.workers > 1:
                log.warning(
                    "%d workers without redis_url: each enforces the rate limits on its own, so a workspace "
                    "can get up to %d times its limit",
                    settings.workers,
                    settings.workers,
                )
            counter = MemoryCounter()
        return cls(counter, LimitCache(engine))

    async def start(self) -> None:
        """Load every workspace's limits (one query) and refresh them about every second; start the
        counter's background work (the Redis counter's settling tick)."""
        await self.limits.start()
        await self.counter.start()

    async def stop(self) -> None:
        await self.limits.stop()
        await self.counter.close()

    def admit_now(self, workspace_id: str, tokens: int) -> Admission | None:
        """`admit` without a coroutine when it can be decided in this process: the `Admission`, or
        `RateLimited`, or None when the counter's backend must decide (then await `admit`)."""
        limits = self._limits_of(workspace_id, UNLIMITED)
        if limits is UNLIMITED:  # the cache keeps only workspaces with a limit
            return NOT_COUNTED
        local = self._local
        if local is None:
            return None
        return local.admit_now(workspace_id, limits, tokens if tokens > 0 else 0)

    async def admit(self, workspace_id: str, *, tokens: int) -> Admission:
        """Count one request and `tokens` (its estimated input plus its maximum output) in the workspace's
        current window, or raise `RateLimited` (with `retry_after`, the seconds until the window resets)
        when either limit would be exceeded; a refused request is not counted. Keep the returned
        `Admission` for `adjust`."""
        limits = self.limits.get(workspace_id)
        if limits.unlimited:
            return NOT_COUNTED
        tokens = max(0, tokens)
        if self._local is not None:
            admission = self._local.admit_now(workspace_id, limits, tokens)
            if admission is not None:
                return admission
        return await self.counter.admit(workspace_id, limits, tokens)

    def adjust_now(self, workspace_id: str, estimated: int, actual: int, admission: Admission | None = None) -> bool:
        """`adjust` without a coroutine: True when done (or nothing to do), False when the caller must await
        `adjust` instead."""
        delta = actual - estimated
        if delta == 0 or (admission is not None and admission.window is None):
            return True
        if self._limits_of(workspace_id, UNLIMITED).tpm is None:
            return True
        if self._local is None:
            return False
        return self._local.adjust_now(workspace_id, delta, None if admission is None else admission.window)

    async def adjust(
        self, workspace_id: str, *, estimated: int, actual: int, admission: Admission | None = None
    ) -> None:
        """Replace a request's token estimate with the tokens it actually used.

        Tokens used beyond the estimate are charged to the current window (that is when they were spent).
        Unused estimate is given back only while the request's window is still current: given back to a
        later window it would grant that window budget nobody spent in it. Without the `admission` the
        window is unknown and unused estimate is given back to the current window, never below zero.
        """
        if self.adjust_now(workspace_id, estimated, actual, admission):
            return
        delta = actual - estimated
        await self.counter.adjust(workspace_id, delta, window=None if admission is None else admission.window)
