"""The background loop every in-process cache of stored state uses (keys, limits, routers, prices): call
`refresh` every `interval` seconds until stopped. A failing pass is logged and tried again next time — the
database may be briefly unreachable, and the cache keeps serving what it has meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["RefreshLoop"]

log = logging.getLogger("clearmaas.store")


class RefreshLoop:
    """One named background task calling `refresh` periodically."""

    def __init__(self, refresh: Callable[[], Awaitable[object]], *, interval: float, name: str, what: str) -> None:
        self._refresh = refresh
        self._interval = interval
        self._name = name  # the task's name
        self._what = what  # the cache, as the log names it
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._forever(), name=f"clearmaas-{self._name}-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _forever(self) -> None:
        task = asyncio.current_task()
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._refresh()
            except Exception:
                log.warning("%s refresh failed; serving what is cached", self._what, exc_info=True)
            # A client library can swallow a cancellation that lands mid-call (redis-py does); `stop` must
            # still end the loop rather than wait for it forever.
            if task is not None and task.cancelling():
                return
