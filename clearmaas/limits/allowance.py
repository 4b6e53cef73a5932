"""One replica's share of a workspace's rate-limit window, leased from Redis so that most admissions are
decided in-process: what it may still admit, its part of the shared counts, its recent rate, and how much
to ask for next. Pure bookkeeping without I/O; `redis_counter.py` talks to Redis.

The shared counts of a window (Redis) are what every replica has *leased*: requests admitted, plus
allowance handed out and not yet used or given back. A replica's allowance is `requests`/`tokens`; its
part of the shared counts is `held_requests`/`held_tokens`, so what it has really admitted in the window is
`held - allowance`. Keeping `allowance <= held` keeps every give-back above what was admitted.
"""

from __future__ import annotations

import asyncio
from typing import Literal, NamedTuple

from clearmaas.limits.store import Limits

__all__ = ["NO_WINDOW", "Allowance", "Back", "Plan"]

# The window a give-back names when its own has ended: the script then voids the unused part and charges
# what was spent beyond the allowance (negative parts) to the current window.
NO_WINDOW = -1


class Back(NamedTuple):
    """Allowance handed back in a lease call; negative parts are spending beyond the allowance (owed)."""

    window: int
    requests: int
    tokens: int


class Plan(NamedTuple):
    """What the background tick settles for one workspace: hand back everything unused or only what is
    owed, and lease `units` of (one request, `per` tokens)."""

    everything: bool
    units: int
    per: int


class Allowance:
    """A workspace's local allowance for one window, and the state of leasing more."""

    __slots__ = (
        "admitted",
        "admitted_tokens",
        "busy",
        "ends_at",
        "held_requests",
        "held_tokens",
        "limits",
        "recent",
        "recent_tokens",
        "refused_cost",
        "refused_rpm",
        "refused_until",
        "requests",
        "resume",
        "tokens",
        "waiting",
        "window",
    )

    def __init__(self) -> None:
        self.window = NO_WINDOW
        # Local monotonic time the window ends, from the script's reset_ms counted from *before* the call
        # was sent: never later than the server's end, so nothing is admitted locally into an ended window.
        self.ends_at = 0.0
        self.limits: Limits | None = None  # the limits the allowance was leased under
        self.requests = 0
        self.tokens = 0
        self.held_requests = 0
        self.held_tokens = 0
        self.admitted = 0  # admissions since the last tick
        self.admitted_tokens = 0
        self.recent = 0  # admissions during the last tick
        self.recent_tokens = 0
        # The admissions of this window's busiest tick, kept through idle ticks for as long as this state lives
        # (its window): a burst after a pause asks for that much at once, where doubling up to it from one
        # would cost a Redis round-trip on a request's path per doubling (six to reach 50 a tick).
        self.resume = 0
        self.busy: asyncio.Event | None = None  # set when the one Redis call in flight for it completes
        self.waiting = 0  # admissions waiting for that call
        self.refused_until = 0.0
        self.refused_rpm = False
        self.refused_cost: int | None = None

    def live(self, now: float) -> bool:
        return now < self.ends_at

    def take(self, limits: Limits, cost: int, now: float) -> bool:
        """Admit one request of `cost` tokens from the allowance, if it is current and holds enough."""
        if now >= self.ends_at or (limits is not self.limits and limits != self.limits):
            return False
        # A limit that is not set is not checked (its count may go negative and is settled as owed).
        if (limits.rpm is not None and self.requests < 1) or (limits.tpm is not None and self.tokens < cost):
            return False
        self.requests -= 1
        self.tokens -= cost
        self.admitted += 1
        self.admitted_tokens += cost
        return True

    def counted(self, cost: int) -> None:
        """An admission Redis counted directly (the lease call's own request)."""
        self.admitted += 1
        self.admitted_tokens += cost

    def use(self, delta: int, window: int | None, now: float) -> None:
        """Tokens used beyond the estimate (delta > 0) or left unused (delta < 0), as `Limiter.adjust` says."""
        if now >= self.ends_at and self.busy is None:
            self._retire()
        if delta > 0:
            # Spent now: out of the live allowance, or owed to whichever window is current when settled.
            self.tokens -= delta
            return
        if now >= self.ends_at or (window is not None and window != self.window):
            return  # given back to a later window it would grant budget nobody spent in it
        # Never more than this replica holds in the shared count: it cannot give back others' admissions.
        tokens, held = self.tokens - delta, self.held_tokens
        self.tokens = tokens if tokens < held else held  # not min(): it parses keywords, on every request
        self.refused_until = 0.0  # room that a cached refusal did not know about

    def hand_back(self, now: float, *, everything: bool) -> Back:
        """Take the allowance out for a lease call: all of it, or only what is owed (negative parts)."""
        if now >= self.ends_at:
            back = Back(NO_WINDOW, min(self.requests, 0), min(self.tokens, 0))
            self.requests = self.tokens = self.held_requests = self.held_tokens = 0
            return back
        requests = self.requests if everything else min(self.requests, 0)
        tokens = self.tokens if everything else min(self.tokens, 0)
        self.requests -= requests
        self.tokens -= tokens
        # At once, not on the reply: meanwhile `use` must not give back against counts already returned.
        self.held_requests -= requests
        self.held_tokens -= tokens
        return Back(self.window, requests, tokens)

    def restore(self, back: Back) -> None:
        """The call failed: take the owed part back (charging it twice is safer than never); the unused
        part stays given back, since the call may have reached Redis."""
        owed_requests, owed_tokens = min(back.requests, 0), min(back.tokens, 0)
        self.requests += owed_requests
        self.tokens += owed_tokens
        if back.window != NO_WINDOW and back.window == self.window:
            self.held_requests += owed_requests
            self.held_tokens += owed_tokens

    def settled(
        self, window: int, ends_at: float, limits: Limits | None, back: Back, *, cost: int | None, units: int, per: int
    ) -> None:
        """Apply the lease script's reply: `cost` is the request it admitted (None: none), `units` what it
        granted of (one request, `per` tokens)."""
        if window != self.window:
            # A new window: anything left of the old one is void, except what is still owed.
            self.window = window
            self.requests = min(self.requests, 0)
            self.tokens = min(self.tokens, 0)
            self.held_requests = self.held_tokens = 0
            self.refused_until = 0.0
        if back.window != window:
            # The script charged what an ended window owed to this one.
            self.held_requests -= min(back.requests, 0)
            self.held_tokens -= min(back.tokens, 0)
        self.ends_at = ends_at
        if limits is not None:
            self.limits = limits
        if cost is not None:
            self.held_requests += 1
            self.held_tokens += cost
        self.requests += units
        self.tokens += units * per
        self.held_requests += units
        self.held_tokens += units * per

    def refuse(self, which: Literal["rpm", "tpm"], cost: int, now: float, *, hold: float) -> None:
        """Remember a refusal for `hold` seconds, so a workspace over its limit is refused without asking
        Redis each time (another replica's give-back is seen after at most `hold`)."""
        if now >= self.refused_until:
            self.refused_rpm = False
            self.refused_cost = None
        self.refused_until = now + hold
        if which == "rpm":
            self.refused_rpm = True
        else:
            self.refused_cost = cost if self.refused_cost is None else min(self.refused_cost, cost)

    def cached_refusal(self, limits: Limits, cost: int, now: float) -> Literal["rpm", "tpm"] | None:
        if now >= self.refused_until or now >= self.ends_at or (limits is not self.limits and limits != self.limits):
            return None
        if self.refused_rpm:
            return "rpm"
        if self.refused_cost is not None and cost >= self.refused_cost:
            return "tpm"
        return None

    def wanted(self, cost: int) -> tuple[int, int]:
        """Units (one request, `per` tokens) to ask for beside an admission's own: twice the last tick's
        admissions, or as many as this tick has seen so far (doubling while a burst ramps up), or the
        admissions queued behind this call, or after a pause the rate of the window's busiest tick (`resume`). A
        workspace never busy in this window asks for none; near a limit the script grants at most 1/16 of what
        is left, so the last requests are counted exactly either way."""
        return max(2 * self.recent, self.admitted, self.waiting, self.resume), self._per(cost)

    def rotate(self, now: float) -> None:
        """Start a tick: the last tick's admissions become the recent rate; an ended window is retired."""
        self.recent, self.recent_tokens = self.admitted, self.admitted_tokens
        if self.admitted > self.resume:
            self.resume = self.admitted
        self.admitted = self.admitted_tokens = 0
        if now >= self.ends_at and self.busy is None:
            self._retire()

    def plan(self, now: float) -> Plan | None:
        """What the tick should settle: an idle workspace's unused allowance goes back (so other replicas
        can use it), a busy one is topped up ahead of need, and anything owed is pushed."""
        owed = self.requests < 0 or self.tokens < 0
        if self.recent == 0:
            unused = self.live(now) and (self.requests > 0 or self.tokens > 0)
            return Plan(everything=True, units=0, per=0) if unused or owed else None
        if self.limits is None:
            return Plan(everything=False, units=0, per=0) if owed else None
        per = self._per(None)
        target = 2 * self.recent
        have = self._units(self.limits, per) if self.live(now) else 0
        units = target - have if have < target else 0
        return Plan(everything=False, units=units, per=per) if units > 0 or owed else None

    def disposable(self, now: float) -> bool:
        """Nothing left to keep: no call in flight, window ended, nothing owed, no recent admissions."""
        return (
            self.busy is None
            and self.waiting == 0
            and now >= self.ends_at
            and self.requests >= 0
            and self.tokens >= 0
            and self.recent == 0
            and self.admitted == 0
        )

    def quiet(self) -> bool:
        """Nothing for a tick to do until it is used again: no call in flight, no allowance, nothing owed,
        no recent admissions."""
        return (
            self.busy is None
            and self.requests == 0
            and self.tokens == 0
            and self.recent == 0
            and self.admitted == 0
        )

    def unsettled(self, window: int, now: float) -> tuple[int, int]:
        """What the shared counts of `window` hold for this replica beyond what it admitted: its unused
        allowance (positive) minus what it owes (negative)."""
        if window == self.window and self.live(now):
            return self.requests, self.tokens
        return min(self.requests, 0), min(self.tokens, 0)

    def _units(self, limits: Limits, per: int) -> int:
        have: int | None = None
        if limits.rpm is not None:
            have = self.requests
        if limits.tpm is not None and per > 0:
            by_tokens = self.tokens // per
            have = by_tokens if have is None else min(have, by_tokens)
        return self.requests if have is None else have

    def _per(self, cost: int | None) -> int:
        """Tokens per unit: the recent admissions' average (rounded up), counting `cost` as one more."""
        count = self.recent + self.admitted
        tokens = self.recent_tokens + self.admitted_tokens
        if cost is not None:
            count += 1
            tokens += cost
        return -(-tokens // count) if count else 0

    def _retire(self) -> None:
        # The window has ended: its unused allowance is void (nothing to give back), what it owes stays.
        self.requests = min(self.requests, 0)
        self.tokens = min(self.tokens, 0)
        self.held_requests = self.held_tokens = 0
