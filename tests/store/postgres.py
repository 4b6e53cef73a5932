"""Scratch databases for tests: a uniquely named PostgreSQL database per test, and a parametrized
database URL fixture that runs a test on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from clearmaas.store.database import create_engine_for

__all__ = ["ADMIN_URL", "scratch_postgres", "sqlite_url"]

_PREFIX = "clearmaas_test_"
ADMIN_URL = os.environ.get("CLEARMAAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'clearmaas.db'}"


def _drop_orphans(admin: Engine) -> None:
    """Drop scratch databases left by test runs that were killed (their process is gone)."""
    with admin.connect() as connection:
        names = connection.execute(
            text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"), {"prefix": _PREFIX}
        ).scalars()
        for name in list(names):
            pid = name.removeprefix(_PREFIX).split("_")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(DBAPIError):
                    connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards; skips when PostgreSQL is not reachable."""
    admin = create_engine_for(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"{_PREFIX}{os.getpid()}_{secrets.token_hex(6)}"
    try:
        _drop_orphans(admin)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {exc.orig}")
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
