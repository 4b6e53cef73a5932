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
    """An empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with scratch_postgres() as url:
            yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database on both backends."""
    upgrade(db_url)
    created = create_engine_for(db_url)
    yield created
    created.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for tests about routing rather than storage."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    created = create_engine_for(url)
    yield created
    created.dispose()
