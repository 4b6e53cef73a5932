from __future__ import annotations

from pathlib import Path

import pytest

from clearmaas.store.database import SQLITE_BUSY_TIMEOUT_MS, create_engine_for, normalize_url, sqlite_file
from tests.store.postgres import scratch_postgres


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db:5432/gw", "postgresql+psycopg"),
        ("postgres://u:p@db/gw", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/gw", "postgresql+psycopg"),
        ("sqlite:////tmp/x.db", "sqlite"),
    ],
)
def test_normalize_url_picks_psycopg_for_postgres(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.database == normalize_url(given).database


def test_sqlite_file_is_none_for_memory_and_postgres() -> None:
    assert sqlite_file(normalize_url("sqlite://")) is None
    assert sqlite_file(normalize_url("sqlite:///:memory:")) is None
    assert sqlite_file(normalize_url("postgresql://h/db")) is None
    assert sqlite_file(normalize_url("sqlite:////srv/a.db")) == Path("/srv/a.db")


def test_sqlite_engine_uses_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'c.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()
    assert (tmp_path / "nested" / "dir" / "c.db").is_file()


def test_in_memory_sqlite_skips_wal() -> None:
    engine = create_engine_for("sqlite://")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_url_connects_through_psycopg() -> None:
    with scratch_postgres() as url:
        assert url.startswith("postgresql://")
        engine = create_engine_for(url)
        try:
            assert engine.dialect.driver == "psycopg"
            with engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT 1").scalar() == 1
        finally:
            engine.dispose()
