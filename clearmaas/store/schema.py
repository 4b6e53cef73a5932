"""The tables, as SQLAlchemy Core `Table`s on one `MetaData`; they mirror what the migrations create.

A change here always comes with a new file in `migrations/versions/` (the migrations, not `create_all`,
build the database). Money is integer micro-dollars; times are timezone-aware UTC.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

__all__ = ["UtcDateTime", "api_keys", "metadata", "new_id", "utc_now", "workspaces"]

# Explicit constraint names, so later migrations (and `batch_alter_table` on SQLite) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utc_now() -> datetime:
    return datetime.now(UTC)


_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(kind: str) -> str:
    """A primary key such as `key_3kTq…`: the kind, then 20 random base62 characters (about 119 bits),
    so ids can be made by any process without coordination."""
    return f"{kind}_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that always binds and returns aware UTC datetimes.

    SQLite has no time zones: it stores the text SQLAlchemy renders, dropping the offset. Binding UTC
    keeps stored values comparable (the key cache asks for `updated_at > :since`), and reading them back
    as UTC gives every caller the same aware type on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # Requests and tokens per minute for the whole workspace; NULL means no limit.
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", BigInteger, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id", ondelete="RESTRICT"), nullable=False),
    Column("name", String(200), nullable=True),
    # What an operator sees in listings; the raw key itself is never stored.
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Bumped by every change the key cache must see (revocation, expiry, limits, allowlist, name), and by
    # nothing that happens per request (last_used_at, spent_micros), so a refresh reads only real changes.
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("credit_limit_micros", BigInteger, nullable=True),
    Column("spent_micros", BigInteger, nullable=False, server_default=text("0")),
    # A JSON array of model-name globs; NULL means every model.
    Column("model_allowlist", Text, nullable=True),
    Index("ix_api_keys_key_hash", "key_hash", unique=True),
    Index("ix_api_keys_workspace_id", "workspace_id"),
    Index("ix_api_keys_updated_at", "updated_at"),
)
