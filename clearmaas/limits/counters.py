"""Fixed-window request and token counters: the `Counter` interface, the in-process `MemoryCounter`, and
what both backends share (the `Admission` a request gets, the refusal it gets instead).

Windows are fixed and aligned (minute 0, 1, 2, … of the counter's clock). A request is counted in the
window it is admitted in; a refusal counts nothing and carries Retry-After = the whole seconds until the
window resets, which is never more than the window length the docs promise and, unlike the full length,
does not make a client wait past the moment the budget is back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from clearmaas.errors import RateLimited
from clearmaas.limits.store import Limits

__all__ = [
    "NOT_COUNTED",
    "WINDOW_SECONDS",
    "Admission",
    "Counter",
    "LocalCounter",
    "MemoryCounter",
    "refusal",
    "refused_by",
    "retry_after_seconds",
]

WINDOW_SECONDS = 60


@dataclass(slots=True)
class Admission:
    """What `admit` counted: the window index and the tokens, or window None when nothing was counted
    (an unlimited workspace, or a backend that could not be reached). Never changed once made; not frozen
    only because a frozen dataclass's `__init__` sets each field through `object.__setattr__`, and one is
    made on every request."""

    window: int | None
    tokens: int = 0


NOT_COUNTED = Admission(window=None)


class Counter(Protocol):
    """Counts requests and tokens per workspace and window; the `Limiter` decides which limits apply."""

    async def start(self) -> None:
        """Start background work, if the backend has any (called once by `Limiter.start`)."""
        ...

    async def admit(self, workspace_id: str, limits: Limits, tokens: int) -> Admission:
        """Count one request and `tokens`, or raise `RateLimited` and count nothing."""
        ...

    async def adjust(self, workspace_id: str, delta: int, *, window: int | None) -> None:
        """Add `delta` tokens (negative: give back) to the current window, following the rules in
        `Limiter.adjust`; `window` is the admission's window, None when unknown."""
        ...

    async def usage(self, workspace_id: str) -> tuple[int, int]:
        """(requests, tokens) counted in the current window."""
        ...

    async def close(self) -> None: ...


class LocalCounter(Protocol):
    """The synchronous fast path a `Counter` may offer besides its async methods, for requests it can decide in
    this process (always, in memory; from a leased allowance, with Redis). The `Limiter` uses it when the
    counter has it: no coroutine, no task, no wake-up per request. Same rules as `admit` and `adjust`."""

    def admit_now(self, workspace_id: str, limits: Limits, tokens: int) -> Admission | None:
        """`admit` decided here: the admission, or `RateLimited` (counting nothing), or None when only the
        backend can decide (the caller then awaits `admit`)."""
        ...

    def adjust_now(self, workspace_id: str, delta: int, window: int | None) -> bool:
        """`adjust` done here (a shared counter may forward it in the background): True, or False when the
        caller must await `adjust` instead."""
        ...


def retry_after_seconds(until_reset: float) -> int:
    """Whole seconds a refused client waits: rounded up so that after waiting the window has turned over,
    and at least 1 (a Retry-After of 0 invites an immediate, equally refused retry)."""
    return max(1, math.ceil(until_reset))


def refusal(limits: Limits, which: Literal["rpm", "tpm"], until_reset: float, *, window_seconds: int) -> RateLimited:
    per = "minute" if window_seconds == WINDOW_SECONDS else f"{window_seconds} seconds"
    if which == "rpm":
        what = f"{limits.rpm} requests per {per}"
    else:
        what = f"{limits.tpm} tokens per {per}"
    retry_after = retry_after_seconds(until_reset)
    return RateLimited(
        f"Rate limit exceeded: this workspace allows {what}. Retry after {retry_after} seconds.",
        retry_after=retry_after,
    )


def refused_by(limits: Limits, requests: int, tokens: int, cost: int) -> Literal["rpm", "tpm"] | None:
    """Which limit one more request of `cost` tokens would break, given the window's counts so far.

    A request whose estimate alone is larger than the whole token budget (a small tpm and a large default
    max-output bound) would otherwise be refused forever although the docs promise the next window has
    full budget; it is admitted into a window where no tokens have been counted yet.
    """
    if limits.rpm is not None and requests + 1 > limits.rpm:
        return "rpm"
    if limits.tpm is not None and tokens > 0 and tokens + cost > limits.tpm:
        return "tpm"
    return None


class _Window:
    __slots__ = ("index", "requests", "tokens")

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests = 0
        self.tokens = 0


class MemoryCounter:
    """Counters in this process only: exact within it, but N processes without Redis allow N times the
    limit. Check and increment run with no `await` between them, so concurrent requests on the event loop
    cannot both take the last unit; it always decides locally (`LocalCounter`)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, window_seconds: int = WINDOW_SECONDS) -> None:
        self._clock = clock
        self._window_seconds = window_seconds
        self._windows: dict[str, _Window] = {}

    def _current(self, workspace_id: str, now: float) -> _Window:
        index = int(now) // self._window_seconds
        state = self._windows.get(workspace_id)
        if state is None or state.index != index:
            # The previous window's state is dropped, so memory is one small object per limited workspace.
            state = self._windows[workspace_id] = _Window(index)
        return state

    def admit_now(self, workspace_id: str, limits: Limits, tokens: int) -> Admission:
        now = self._clock()
        # `_current` and `refused_by`, inlined: this runs on every request of a limited workspace. The window
        # is int(now) // seconds (the clock is never negative): a float `//` goes through fmod, ~500
        # instructions more.
        index = int(now) // self._window_seconds
        state = self._windows.get(workspace_id)
        if state is None or state.index != index:
            state = self._windows[workspace_id] = _Window(index)
        rpm, tpm = limits.rpm, limits.tpm
        if (rpm is not None and state.requests >= rpm) or (
            tpm is not None and state.tokens > 0 and state.tokens + tokens > tpm
        ):
            which = refused_by(limits, state.requests, state.tokens, tokens)
            assert which is not None
            until_reset = (index + 1) * self._window_seconds - now
            raise refusal(limits, which, until_reset, window_seconds=self._window_seconds)
        state.requests += 1
        state.tokens += tokens
        return Admission(index, tokens)

    async def admit(self, workspace_id: str, limits: Limits, tokens: int) -> Admission:
        return self.admit_now(workspace_id, limits, tokens)

    def adjust_now(self, workspace_id: str, delta: int, window: int | None) -> bool:
        index = int(self._clock()) // self._window_seconds
        state = self._windows.get(workspace_id)
        if state is None or state.index != index:
            state = self._windows[workspace_id] = _Window(index)
        if delta < 0 and window is not None and window != state.index:
            return True
        tokens = state.tokens + delta
        state.tokens = tokens if tokens > 0 else 0  # not max(): the builtin parses keywords, on every request
        return True

    async def adjust(self, workspace_id: str, delta: int, *, window: int | None) -> None:
        self.adjust_now(workspace_id, delta, window)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._windows.clear()

    async def usage(self, workspace_id: str) -> tuple[int, int]:
        """(requests, tokens) counted in the current window."""
        state = self._current(workspace_id, self._clock())
        return state.requests, state.tokens
