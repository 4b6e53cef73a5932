"""One round-trip per tick for every component that settles with Redis periodically.

The credit leases (`billing/redis_book.py`) and the rate-limit allowances (`limits/redis_counter.py`) each
settle with Redis every 50 ms. Each round-trip costs the event loop about the same whatever it carries
(bench/README.md, "The p99 at concurrency 1"), so the book's tick carries the counter's work in its own
pipeline: a `TickRider` stages its commands, the carrier sends them after its own and hands back the replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio.client import Pipeline

__all__ = ["Carried", "NotSent", "TickRider", "TickStage"]


class NotSent(Exception):  # noqa: N818 - what a stage is settled with, not an error of Redis
    """The carrier's tick ended before its pipeline carried the stage: nothing reached Redis."""


class TickStage(Protocol):
    """One tick's commands of a rider, staged and waiting for their replies."""

    def queue(self, pipe: Pipeline) -> None:
        """Add the commands to `pipe`, after the carrier's own; their replies come in the same order."""
        ...

    def settle(self, replies: Sequence[Any] | BaseException) -> None:
        """The replies, in order (errors in place), or the error that lost them all. Called exactly once."""
        ...


class TickRider(Protocol):
    """A component whose periodic settling rides on another's tick instead of a loop of its own."""

    async def prepare(self) -> TickStage | None:
        """This tick's work, or None when there is none (or the rider has stopped)."""
        ...


class Carried:
    """A rider's stage in the carrier's hands: settled exactly once, whichever way the carrier's tick ends
    (`settle_unsent` after the tick settles it with `NotSent` if no pipeline carried it)."""

    __slots__ = ("_stage",)

    def __init__(self, stage: TickStage) -> None:
        self._stage: TickStage | None = stage

    def queue(self, pipe: Pipeline) -> None:
        if self._stage is not None:
            self._stage.queue(pipe)

    def settle(self, replies: Sequence[Any] | BaseException) -> None:
        stage, self._stage = self._stage, None
        if stage is not None:
            stage.settle(replies)

    def settle_unsent(self) -> None:
        self.settle(NotSent())
