"""The tables, as SQLAlchemy Core `Table`s on one `MetaData`; they mirror what the migrations create.

A change here always comes with a new file in `migrations/versions/` (the migrations, not `create_all`,
build the database). Money is integer micro-dollars; times are timezone-aware UTC.
"""

from __future__ import annotations

import os
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

__all__ = [
    "UtcDateTime",
    "api_keys",
    "gateway_processes",
    "ledger_entries",
    "metadata",
    "new_id",
    "price_overrides",
    "routers",
    "usage_records",
    "users",
    "utc_now",
    "workspace_members",
    "workspaces",
]

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
# Random bytes become digits by table look-up: byte b < 248 is digit b % 62 (248 = 4 × 62, so every digit has
# exactly four bytes and the digits are uniform), the eight bytes above are dropped.
_ID_DIGITS = bytes(ord(_ID_ALPHABET[b % 62]) for b in range(256))
_ID_DROPPED = bytes(range(248, 256))


def new_id(kind: str) -> str:
    """A primary key such as `key_3kTq…`: the kind, then 20 random base62 characters (about 119 bits),
    so ids can be made by any process without coordination."""
    # One system call and one C-level translation: ~0.6 us, against ~6 us for a base62 conversion in a Python
    # loop (a reservation id is made per request, on the event loop). 26 bytes leave fewer than 20 digits
    # about twice in 100,000 calls; then it draws again.
    while True:
        digits = os.urandom(26).translate(_ID_DIGITS, _ID_DROPPED)
        if len(digits) >= 20:
            return f"{kind}_{digits[:20].decode()}"


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
    # The sum of the workspace's ledger entries, kept in the same transaction as each entry so a balance is
    # one read; `clearmaas billing reconcile` checks the two agree.
    Column("balance_micros", BigInteger, nullable=False, server_default=text("0")),
    # Bumped by changes replicas must pick up (credits, limits), not by charges.
    Column("updated_at", UtcDateTime(), nullable=True),
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

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

workspace_members = Table(
    "workspace_members",
    metadata,
    Column("workspace_id", String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # owner | admin | member
    Column("created_at", UtcDateTime(), nullable=False),
)

# Append-only: credits (positive), charges (negative, one per billed request), refunds and adjustments.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id", ondelete="RESTRICT"), nullable=False),
    Column("kind", String(16), nullable=False),  # credit | charge | refund | adjustment
    Column("amount_micros", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    Column("actor", String(200), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_ledger_entries_workspace_id_created_at", "workspace_id", "created_at"),
    Index("ix_ledger_entries_request_id", "request_id", unique=True),
)

# One row per request, written in batches off the hot path.
usage_records = Table(
    "usage_records",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("workspace_id", String(32), nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("requested_model", String(200), nullable=True),
    Column("served_model", String(200), nullable=True),
    Column("router", String(64), nullable=True),
    Column("fallback_level", Integer, nullable=True),
    Column("endpoint", String(32), nullable=False),
    Column("stream", Integer, nullable=False, server_default=text("0")),
    Column("status", Integer, nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("input_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("cache_read_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("output_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("reasoning_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("server_tool_calls", Text, nullable=True),  # JSON object, e.g. {"web_search": 2}
    Column("cost_micros", BigInteger, nullable=False, server_default=text("0")),
    Column("latency_ms", Integer, nullable=True),
    Column("ttft_ms", Integer, nullable=True),
    Column("client_disconnected", Integer, nullable=False, server_default=text("0")),
    Index("ix_usage_records_workspace_id_created_at", "workspace_id", "created_at"),
    Index("ix_usage_records_key_id", "key_id"),
)

# Named routers `clearmaas/{name}`, per workspace (routing__named-routers.md).
routers = Table(
    "routers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workspace_id", String(32), ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("patterns", Text, nullable=True),  # glob patterns, newline-separated; empty = every model
    Column("strategy", String(16), nullable=False),  # cheapest | quality | balanced
    Column("default_model", String(200), nullable=True),
    Column("enabled", Integer, nullable=False, server_default=text("1")),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("uq_routers_workspace_id_name", "workspace_id", "name", unique=True),
)

# Operator price changes made through the admin API, applied over the catalogue (micro-dollars per
# million tokens).
price_overrides = Table(
    "price_overrides",
    metadata,
    Column("model_id", String(200), primary_key=True),
    Column("input_micros", BigInteger, nullable=False),
    Column("cached_input_micros", BigInteger, nullable=False),
    Column("cache_write_micros", BigInteger, nullable=False),
    Column("output_micros", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)


# The gateway processes serving this database (store/presence.py): without Redis only one may serve.
gateway_processes = Table(
    "gateway_processes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("seen_at", UtcDateTime(), nullable=False),
)
