"""A replica's credit lease: the share of a workspace balance (and of a key's credit) that one gateway process
holds in Redis for one (workspace, key) pair, so that its requests reserve against it in memory instead of
making a Redis round-trip each.

The lease is ordinary reserved credit in Redis (counted in the workspace's and the key's reserved totals), so
every replica still sees it as taken: reserving from a lease can never overspend. This module is only the
local arithmetic; `redis_book.RedisBook` does the I/O.

Local state of one lease:
    granted     the amount Redis holds for this lease, as last confirmed (minus what a push in flight gives back)
    inflight    the bounds of this process's calls in flight, reserved from the lease
    unpushed    costs of calls settled here that Redis has not been told of yet
    headroom    granted - inflight - unpushed: what a new call may still reserve without asking Redis

A push tells Redis, in one script: charge `charge` (the settled costs) to the balance and the key's spend,
release `release` from the lease (what those costs used up, plus headroom given back), take `forced` (to keep
calls in flight covered after an overrun), and take `need` (refusable: the call that does not fit) plus up to
`extra` (optional: headroom for the coming moments, sized from this lease's recent rate, and granted by Redis
only out of a small fraction of what remains, so that near the end of a credit every replica reserves exactly
what each call needs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Lease", "Push", "PushResult"]


@dataclass(frozen=True, slots=True)
class Push:
    """One lease's part of a push; `seq` makes a retried push (its reply lost) apply once."""

    seq: int
    charge: int
    release: int
    forced: int
    need: int
    extra: int
    credit_limit: int | None


@dataclass(frozen=True, slots=True)
class PushResult:
    """Redis's answer: status 1 done, 0 the balance could not cover `need`, 2 the key's credit could not;
    `amount` is the lease as Redis now holds it; `squeezed`: some replica was refused lately, so nobody gets
    extra headroom; `others`: other calls or replicas hold reservations in the same workspace."""

    status: int
    amount: int
    squeezed: bool
    others: bool


class Lease:
    """The local side of one (workspace, key) lease. Every method is synchronous: on the event loop each is
    one critical section."""

    __slots__ = (
        "workspace_id", "key_id", "lease_id", "credit_limit", "granted", "inflight", "unpushed", "sequence",
        "reserved_this_tick", "target", "squeezed", "busy", "pending", "last_push",
    )  # fmt: skip

    def __init__(self, workspace_id: str, key_id: str, lease_id: str, sequence: Iterator[int]) -> None:
        self.workspace_id = workspace_id
        self.key_id = key_id
        self.lease_id = lease_id
        self.credit_limit: int | None = None
        self.granted = 0
        self.inflight = 0
        self.unpushed = 0
        # Shared by every lease of the process: a lease forgotten while idle and made again later keeps
        # numbering after its record in Redis, which remembers the last push applied.
        self.sequence = sequence
        # What calls reserved since the last tick, and the headroom the lease aims to keep (twice that).
        self.reserved_this_tick = 0
        self.target = 0
        self.squeezed = False
        self.busy: asyncio.Future[PushResult | None] | None = None
        # A push whose reply was lost: it is sent again, unchanged, before anything else.
        self.pending: Push | None = None
        self.last_push = 0.0

    @property
    def headroom(self) -> int:
        return self.granted - self.inflight - self.unpushed

    def take(self, amount: int) -> bool:
        """Reserve `amount` for a call from the headroom, or take nothing."""
        if self.headroom < amount:
            return False
        self.inflight += amount
        self.reserved_this_tick += amount
        return True

    def finish(self, amount: int, cost: int) -> None:
        """A call reserved `amount` and cost `cost` (0: released)."""
        self.inflight -= amount
        self.unpushed += cost

    # -- pushes -----------------------------------------------------------------------------------------

    def retarget(self) -> None:
        """At each tick: aim the headroom at twice what calls reserved since the last tick (an idle lease
        gives everything back, a busy one asks ahead of need), or at nothing while a replica is squeezed."""
        self.target = 0 if self.squeezed else 2 * self.reserved_this_tick
        self.reserved_this_tick = 0

    def needs_push(self) -> bool:
        """Whether the periodic push has anything to do: costs to charge, or headroom off its target."""
        headroom = self.headroom
        return bool(self.unpushed) or headroom > 2 * self.target or headroom < self.target

    def plan(self, *, need: int = 0) -> Push:
        """The next push, applied to the local state at once: what it releases stops counting as headroom
        now; what it takes counts once Redis confirms it (`confirm`).

        `need`: the bound of a call that does not fit (the hot path); 0 for the periodic tick.
        """
        charge = self.unpushed
        spent_from_lease = min(charge, max(self.granted, 0))
        headroom = self.granted - spent_from_lease - self.inflight
        give_back = 0
        extra = 0
        forced = max(0, -headroom)  # an overrun left calls in flight uncovered
        if need:
            bound = need
            need -= max(headroom, 0)
            # At least one more call's bound: after a pause (target 0) the next call then fits without a
            # second round-trip on its own path; Redis grants extra only out of a small part of what is left.
            extra = 0 if self.squeezed else max(self.target, 2 * self.reserved_this_tick, bound)
        elif headroom > 2 * self.target:
            give_back = headroom - self.target
        elif headroom < self.target:
            extra = self.target - headroom
        push = Push(
            seq=next(self.sequence),
            charge=charge,
            release=spent_from_lease + give_back,
            forced=forced,
            need=max(need, 0),
            extra=extra,
            credit_limit=self.credit_limit,
        )
        self.granted -= push.release
        self.unpushed -= charge
        return push

    def confirm(self, result: PushResult) -> None:
        """Redis applied the push (or had already): its amount is the lease from now on."""
        self.granted = result.amount
        self.squeezed = result.squeezed

    @property
    def idle(self) -> bool:
        """Nothing held, owed or in flight: the lease can be forgotten."""
        return (
            not self.granted
            and not self.inflight
            and not self.unpushed
            and not self.reserved_this_tick
            and self.busy is None
            and self.pending is None
        )
