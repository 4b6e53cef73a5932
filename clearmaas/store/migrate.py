"""Bringing a database to the newest schema with Alembic, programmatically, safe to run at every start.

The scripts live in `migrations/` inside the package, so no alembic.ini is needed at runtime (the one
next to this file is for developers writing new revisions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, event, text

from clearmaas.store.database import create_engine_for, normalize_url

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# Any fixed number: every ClearMaas process migrating the same PostgreSQL database takes this lock, so
# two replicas starting together do not both try to create the tables.
_PG_MIGRATION_LOCK = 0x436C6D61_6173  # "Clmaas"


def alembic_config(*, connection: Connection | None = None) -> Config:
    config = Config()
    # ConfigParser interpolates '%', which a checkout path may contain.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _migration_engine(url: str | URL) -> Engine:
    engine = create_engine_for(url)
    if engine.dialect.name == "sqlite":
        # The sqlite3 driver's legacy mode commits before each DDL statement and never locks for reads,
        # so two processes could both read "no version" and both create tables. Taking the write lock
        # up front (BEGIN IMMEDIATE) makes the whole upgrade one serialized transaction; the loser waits
        # out the busy timeout and then finds the schema at head.
        @event.listens_for(engine, "connect")
        def _manual_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def upgrade(url: str | URL, *, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` in one transaction; a no-op when it is already there."""
    engine = _migration_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            command.upgrade(alembic_config(connection=connection), revision)
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at; None for a database never migrated."""
    engine = create_engine_for(normalize_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
