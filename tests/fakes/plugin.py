"""Pytest fixtures for the fake upstream: add `pytest_plugins = ["tests.fakes.plugin"]` to the root conftest, or import
the fixture into a test module.

Holds fixtures only; the server lives in `tests/fakes/upstream.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.upstream import FakeUpstream

__all__ = ["fake_upstream", "fake_upstream_thread"]


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    """A fresh fake upstream on the test's event loop."""
    async with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake_upstream_thread() -> Iterator[FakeUpstream]:
    """A fresh fake upstream on its own thread, for synchronous tests and clients."""
    with FakeUpstream.in_thread() as fake:
        yield fake
