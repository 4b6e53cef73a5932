"""The limiter's behaviour, the same on both backends (in-process and Redis)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from clearmaas.errors import RateLimited
from clearmaas.limits import Admission, LimitCache, Limiter, Limits, MemoryCounter
from clearmaas.limits.redis_counter import RedisCounter
from clearmaas.settings import Settings
from tests.limits.conftest import REDIS_URL

WS = "ws_acme"


async def test_requests_per_minute(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(rpm=3))
    for _ in range(3):
        admission = await limiter.admit(WS, tokens=1_000_000)
        assert admission.window is not None
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(WS, tokens=1)
    error = refused.value
    assert error.status == 429 and error.type == "clearmaas_api_error" and error.code == "rate_limit_exceeded"
    assert error.retry_after is not None and error.retry_after >= 1
    assert error.headers == {"retry-after": str(error.retry_after)}
    assert "3 requests per" in error.message
    # Refusals are not counted: the window still holds exactly the three admitted requests.
    for _ in range(5):
        with pytest.raises(RateLimited):
            await limiter.admit(WS, tokens=1)
    assert await limiter.counter.usage(WS) == (3, 3_000_000)


async def test_tokens_per_minute(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(tpm=1000))
    await limiter.admit(WS, tokens=400)
    await limiter.admit(WS, tokens=400)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(WS, tokens=201)
    assert "1000 tokens per" in refused.value.message
    assert await limiter.counter.usage(WS) == (2, 800)
    await limiter.admit(WS, tokens=200)  # exactly up to the limit
    for _ in range(10):  # requests are unlimited, tokens are not
        with pytest.raises(RateLimited):
            await limiter.admit(WS, tokens=1)
    assert await limiter.counter.usage(WS) == (3, 1000)


async def test_both_limits_refuse_whichever_is_hit_first_and_count_nothing(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(rpm=4, tpm=100))
    await limiter.admit(WS, tokens=60)
    with pytest.raises(RateLimited) as by_tokens:
        await limiter.admit(WS, tokens=50)
    assert "tokens" in by_tokens.value.message
    # The token refusal did not use up one of the four requests.
    for _ in range(3):
        await limiter.admit(WS, tokens=10)
    assert await limiter.counter.usage(WS) == (4, 90)
    with pytest.raises(RateLimited) as by_requests:
        await limiter.admit(WS, tokens=0)
    assert "requests" in by_requests.value.message
    assert await limiter.counter.usage(WS) == (4, 90)


async def test_workspaces_do_not_share_a_budget(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(rpm=1))
    limiter.limits.put("ws_other", Limits(rpm=1))
    await limiter.admit(WS, tokens=5)
    await limiter.admit("ws_other", tokens=5)
    with pytest.raises(RateLimited):
        await limiter.admit(WS, tokens=5)


async def test_unknown_and_unlimited_workspaces_are_not_counted(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(rpm=None, tpm=None))
    for workspace in (WS, "ws_unknown"):
        for _ in range(100):
            assert await limiter.admit(workspace, tokens=10**9) == Admission(window=None)
        assert await limiter.counter.usage(workspace) == (0, 0)
    assert len(limiter.limits) == 0


async def test_a_request_larger_than_the_whole_token_budget_gets_an_empty_window(limiter: Limiter) -> None:
    # Refusing it always would contradict "the next window will have full budget".
    limiter.limits.put(WS, Limits(tpm=1000))
    await limiter.admit(WS, tokens=5000)
    with pytest.raises(RateLimited):
        await limiter.admit(WS, tokens=1)
    limiter.limits.put("ws_b", Limits(tpm=1000))
    await limiter.admit("ws_b", tokens=1)
    with pytest.raises(RateLimited):
        await limiter.admit("ws_b", tokens=5000)


async def test_concurrent_admissions_take_exactly_the_limit(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(rpm=25, tpm=10_000))

    async def attempt() -> bool:
        try:
            await limiter.admit(WS, tokens=7)
        except RateLimited:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(200)))
    assert sum(results) == 25
    assert await limiter.counter.usage(WS) == (25, 175)


async def test_adjust_replaces_the_estimate_with_actual_usage(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(tpm=1000))
    admission = await limiter.admit(WS, tokens=900)
    with pytest.raises(RateLimited):
        await limiter.admit(WS, tokens=200)
    await limiter.adjust(WS, estimated=900, actual=300, admission=admission)
    assert await limiter.counter.usage(WS) == (1, 300)
    second = await limiter.admit(WS, tokens=200)
    await limiter.adjust(WS, estimated=200, actual=650, admission=second)  # used more than estimated
    assert await limiter.counter.usage(WS) == (2, 950)
    with pytest.raises(RateLimited):
        await limiter.admit(WS, tokens=100)
    # Without the admission the unused estimate goes back to the current window, never below zero.
    await limiter.adjust(WS, estimated=5000, actual=0)
    assert await limiter.counter.usage(WS) == (2, 0)


async def test_adjust_ignores_what_was_not_counted(limiter: Limiter) -> None:
    admission = await limiter.admit(WS, tokens=500)  # unlimited: not counted
    limiter.limits.put(WS, Limits(tpm=1000))
    await limiter.admit(WS, tokens=400)
    await limiter.adjust(WS, estimated=500, actual=100, admission=admission)
    await limiter.adjust(WS, estimated=500, actual=900, admission=admission)
    assert await limiter.counter.usage(WS) == (1, 400)
    # Only a token limit makes token adjustments matter.
    limiter.limits.put("ws_rpm", Limits(rpm=10))
    rpm_only = await limiter.admit("ws_rpm", tokens=50)
    await limiter.adjust("ws_rpm", estimated=50, actual=10, admission=rpm_only)
    assert await limiter.counter.usage("ws_rpm") == (1, 50)


async def test_a_new_limit_applies_to_the_next_request(limiter: Limiter) -> None:
    limiter.limits.put(WS, Limits(rpm=100))
    for _ in range(5):
        await limiter.admit(WS, tokens=1)
    limiter.limits.put(WS, Limits(rpm=5))
    with pytest.raises(RateLimited):
        await limiter.admit(WS, tokens=1)
    limiter.limits.put(WS, Limits())
    assert await limiter.admit(WS, tokens=1) == Admission(window=None)


async def test_from_settings_picks_the_backend(caplog: pytest.LogCaptureFixture) -> None:
    memory = Limiter.from_settings(Settings(), None)  # type: ignore[arg-type]
    assert isinstance(memory.counter, MemoryCounter)
    await memory.stop()
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="clearmaas.limits"):
        Limiter.from_settings(Settings(workers=3), None)  # type: ignore[arg-type]
    assert "3 workers without redis_url" in caplog.text
    shared = Limiter.from_settings(Settings(redis_url=REDIS_URL), None)  # type: ignore[arg-type]
    assert isinstance(shared.counter, RedisCounter)
    await shared.stop()


# -- the synchronous fast path (`admit_now` / `adjust_now`) ---------------------------------------------------


def memory_limiter() -> Limiter:
    return Limiter(MemoryCounter(clock=lambda: 1_000 * 60 + 5.0), LimitCache(None))


async def test_the_in_process_counter_decides_without_a_coroutine() -> None:
    limiter = memory_limiter()
    limiter.limits.put(WS, Limits(rpm=2, tpm=1000))
    first = limiter.admit_now(WS, tokens=600)
    assert first is not None and first.window is not None and first.tokens == 600
    with pytest.raises(RateLimited) as refused:
        limiter.admit_now(WS, tokens=500)  # tokens: refused, and counted nothing
    assert refused.value.retry_after is not None
    assert limiter.adjust_now(WS, estimated=600, actual=100, admission=first) is True
    assert await limiter.counter.usage(WS) == (1, 100)
    second = limiter.admit_now(WS, tokens=500)
    assert second is not None
    with pytest.raises(RateLimited):
        limiter.admit_now(WS, tokens=0)  # requests: the two are taken
    assert await limiter.counter.usage(WS) == (2, 600)
    # Unlimited workspaces are not counted, on either path.
    assert limiter.admit_now("ws_free", tokens=10**9) == Admission(window=None)
    assert limiter.adjust_now("ws_free", estimated=5, actual=9, admission=Admission(window=None)) is True
    assert await limiter.counter.usage("ws_free") == (0, 0)


async def test_concurrent_fast_and_awaited_admissions_share_one_budget() -> None:
    limiter = memory_limiter()
    limiter.limits.put(WS, Limits(rpm=25))

    async def attempt(i: int) -> bool:
        try:
            if i % 2:
                return limiter.admit_now(WS, tokens=1) is not None
            await limiter.admit(WS, tokens=1)
        except RateLimited:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(100)))
    assert sum(results) == 25


class _RemoteOnly:
    """A counter with no fast path (as a shared counter that must ask its backend): the Limiter awaits it."""

    def __init__(self) -> None:
        self.inner = MemoryCounter(clock=lambda: 1_000 * 60 + 5.0)
        self.calls: list[str] = []

    async def start(self) -> None:
        return None

    async def admit(self, workspace_id: str, limits: Limits, tokens: int) -> Admission:
        self.calls.append("admit")
        return await self.inner.admit(workspace_id, limits, tokens)

    async def adjust(self, workspace_id: str, delta: int, *, window: int | None) -> None:
        self.calls.append("adjust")
        await self.inner.adjust(workspace_id, delta, window=window)

    async def usage(self, workspace_id: str) -> tuple[int, int]:
        return await self.inner.usage(workspace_id)

    async def close(self) -> None:
        return None


class _LeaseSpent(_RemoteOnly):
    """A counter whose fast path cannot decide (its local allowance is spent): `admit_now` says None."""

    def admit_now(self, workspace_id: str, limits: Limits, tokens: int) -> Admission | None:
        self.calls.append("admit_now")
        return None

    def adjust_now(self, workspace_id: str, delta: int, window: int | None) -> bool:
        self.calls.append("adjust_now")
        return False


@pytest.mark.parametrize("counter_type", [_RemoteOnly, _LeaseSpent])
async def test_a_counter_that_cannot_decide_locally_is_awaited(counter_type: type[_RemoteOnly]) -> None:
    counter = counter_type()
    limiter = Limiter(counter, LimitCache(None))  # type: ignore[arg-type]
    limiter.limits.put(WS, Limits(rpm=1, tpm=1000))
    assert limiter.admit_now(WS, tokens=400) is None  # the caller must await `admit`
    assert limiter.admit_now("ws_free", tokens=400) == Admission(window=None)  # unlimited needs no counter
    admission = await limiter.admit(WS, tokens=400)
    assert admission.window is not None
    assert limiter.adjust_now(WS, estimated=400, actual=100, admission=admission) is False
    await limiter.adjust(WS, estimated=400, actual=100, admission=admission)
    assert await counter.usage(WS) == (1, 100)
    with pytest.raises(RateLimited):
        await limiter.admit(WS, tokens=1)
    assert counter.calls.count("admit") == 2 and counter.calls.count("adjust") == 1
