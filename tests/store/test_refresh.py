from __future__ import annotations

import asyncio

import pytest

from clearmaas.store.refresh import RefreshLoop


async def test_refreshes_periodically_survives_failures_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def refresh() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("database restarting")

    loop = RefreshLoop(refresh, interval=0.01, name="test", what="test cache")
    loop.start()
    loop.start()  # idempotent: still one task
    for _ in range(200):
        if calls >= 4:
            break
        await asyncio.sleep(0.01)
    await loop.stop()
    stopped_at = calls
    await asyncio.sleep(0.05)
    assert stopped_at >= 4 and calls == stopped_at and not loop.running
    assert "test cache refresh failed" in caplog.text


async def test_stop_ends_the_loop_even_when_the_refresh_swallows_the_cancellation() -> None:
    started = asyncio.Event()

    async def stubborn() -> None:
        # As redis-py can: a cancellation landing mid-call is caught and not re-raised.
        started.set()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            pass

    loop = RefreshLoop(stubborn, interval=0.001, name="stubborn", what="stubborn")
    loop.start()
    await started.wait()
    await asyncio.wait_for(loop.stop(), timeout=2)
    assert not loop.running
