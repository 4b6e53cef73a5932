"""Persistence: the SQLAlchemy engine, the table definitions and the Alembic migrations that create them.

Nothing here knows what a workspace or a key means; `clearmaas.accounts` owns that.
"""

from clearmaas.store.database import create_engine_for, normalize_url
from clearmaas.store.migrate import current_revision, head_revision, upgrade
from clearmaas.store.schema import api_keys, metadata, new_id, utc_now, workspaces

__all__ = [
    "api_keys",
    "create_engine_for",
    "current_revision",
    "head_revision",
    "metadata",
    "new_id",
    "normalize_url",
    "upgrade",
    "utc_now",
    "workspaces",
]
