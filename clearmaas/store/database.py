"""Engines: one synchronous SQLAlchemy engine per database URL, tuned for SQLite or PostgreSQL.

This module opens connections; it defines no tables (`schema.py`) and runs no migrations (`migrate.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "create_engine_for", "normalize_url", "sqlite_file"]

# How long a SQLite writer waits for another process's write lock (the CLI next to a running gateway)
# before giving up with "database is locked". Writes here are single-row and short.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalize_url(url: str | URL) -> URL:
    """The URL with the driver ClearMaas ships: `postgresql://` and `postgres://` become psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory SQLite."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _configure_sqlite(dbapi_connection: Any, _record: Any, *, wal: bool) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if wal:
            # WAL lets the gateway keep reading while the CLI (another process) writes.
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def create_engine_for(url: str | URL, **engine_options: Any) -> Engine:
    """A sync engine for `url`. SQLite gets WAL, a busy timeout and foreign keys (and its file's directory
    is created if missing); PostgreSQL goes through psycopg 3 with pre-ping. `engine_options` go to
    `sqlalchemy.create_engine` unchanged."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            path.expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **engine_options)
        wal = path is not None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            _configure_sqlite(dbapi_connection, record, wal=wal)

        return engine
    engine_options.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **engine_options)
