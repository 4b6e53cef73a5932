"""Alembic environment for ClearMaas: runs the migrations on the connection `clearmaas.store.migrate`
hands over in `config.attributes["connection"]`, or on the configured database for the `alembic` CLI.

Holds no migration logic itself; `versions/` does.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from clearmaas.store.schema import metadata


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _configured_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from clearmaas.settings import load_settings

    return load_settings().resolved_database_url


if context.is_offline_mode():
    context.configure(url=_configured_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    _run_on(given)
else:
    from clearmaas.store.database import create_engine_for

    engine = create_engine_for(_configured_url())
    try:
        with engine.begin() as connection:
            _run_on(connection)
    finally:
        engine.dispose()
