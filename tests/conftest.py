"""Database fixtures shared by the test packages that need a migrated database (accounts, routing, billing,
limits). `tests/store` overrides `db_url` with an unmigrated one, since migrating is what it tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from clearmaas.store.database import create_engine_for
from clearmaas.store.migrate import upgrade
from tests.store.postgres import scratch_postgres, sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database, once on SQLite and once on the machine's PostgreSQL (a scratch database)."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
        yield url
    else:
        with scratch_postgres() as url:
            upgrade(url)
            yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    created = create_engine_for(db_url)
    yield created
    created.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for tests about something other than storage."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    created = create_engine_for(url)
    yield created
    created.dispose()
