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
