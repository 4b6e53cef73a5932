"""The in-process counter's windows, driven by a fake clock."""

from __future__ import annotations

import pytest

from clearmaas.errors import RateLimited
from clearmaas.limits import LimitCache, Limiter, Limits, MemoryCounter
from clearmaas.limits.counters import retry_after_seconds


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


WS = "ws_acme"
MINUTE_START = 28_000_000 * 60.0


@pytest.fixture
def clock() -> Clock:
    return Clock(MINUTE_START)


@pytest.fixture
def limiter(clock: Clock) -> Limiter:
    return Limiter(MemoryCounter(clock=clock), LimitCache(None))


async def refused_after(limiter: Limiter, tokens: int = 1) -> int:
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(WS, tokens=tokens)
    assert refused.value.retry_after is not None
    return refused.value.retry_after


async def test_the_budget_is_back_in_full_when_the_minute_turns(limiter: Limiter, clock: Clock) -> None:
    limiter.limits.put(WS, Limits(rpm=2, tpm=100))
    clock.now = MINUTE_START + 15
    await limiter.admit(WS, tokens=50)
    await limiter.admit(WS, tokens=50)
    assert await refused_after(limiter) == 45
    clock.now = MINUTE_START + 59.999
    assert await refused_after(limiter) == 1
    clock.now = MINUTE_START + 60
    await limiter.admit(WS, tokens=100)
    await limiter.admit(WS, tokens=0)
    assert await limiter.counter.usage(WS) == (2, 100)
    assert await refused_after(limiter) == 60


async def test_retry_after_is_enough_to_reach_the_next_window(limiter: Limiter, clock: Clock) -> None:
    limiter.limits.put(WS, Limits(rpm=1))
    for offset in (0.0, 0.5, 12.25, 30.0, 58.2, 59.5):
        clock.now = MINUTE_START + 60 * 100 + offset
        await limiter.admit(WS, tokens=0)
        retry_after = await refused_after(limiter)
        assert 1 <= retry_after <= 60
        # Waiting exactly Retry-After lands in the next window, which has the full budget again.
        clock.now += retry_after
        await limiter.admit(WS, tokens=0)
        clock.now = MINUTE_START + 60 * 200  # leave the window used above


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after_seconds(59.01) == 60
    assert retry_after_seconds(60.0) == 60
    assert retry_after_seconds(0.001) == 1
    assert retry_after_seconds(0.0) == 1


async def test_unused_estimate_is_not_given_to_a_later_window(limiter: Limiter, clock: Clock) -> None:
    limiter.limits.put(WS, Limits(tpm=1000))
    clock.now = MINUTE_START + 50
    early = await limiter.admit(WS, tokens=800)
    clock.now = MINUTE_START + 70
    late = await limiter.admit(WS, tokens=900)
    # The first request ends in the second window having used 100 of its 800: giving 700 back here
    # would let this window take 1600 tokens.
    await limiter.adjust(WS, estimated=800, actual=100, admission=early)
    assert await limiter.counter.usage(WS) == (1, 900)
    # Tokens beyond the estimate were spent now, so they count now.
    await limiter.adjust(WS, estimated=800, actual=850, admission=early)
    assert await limiter.counter.usage(WS) == (1, 950)
    await limiter.adjust(WS, estimated=900, actual=400, admission=late)
    assert await limiter.counter.usage(WS) == (1, 450)


async def test_a_window_holds_one_small_state_per_workspace(limiter: Limiter, clock: Clock) -> None:
    counter = limiter.counter
    assert isinstance(counter, MemoryCounter)
    limiter.limits.put(WS, Limits(rpm=1000))
    for minute in range(50):
        clock.now = MINUTE_START + 60 * minute
        await limiter.admit(WS, tokens=1)
    assert len(counter._windows) == 1
    assert await counter.usage(WS) == (1, 1)
