"""Balances and the ledger, the usage log, members, named routers and price overrides.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Written by hand to run unchanged on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("balance_micros", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "users",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "workspace_members",
        sa.Column("workspace_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "user_id", name="pk_workspace_members"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], name="fk_workspace_members_workspace_id_workspaces", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_workspace_members_user_id_users", ondelete="CASCADE"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], name="fk_ledger_entries_workspace_id_workspaces", ondelete="RESTRICT"),
    )
    op.create_index("ix_ledger_entries_workspace_id_created_at", "ledger_entries", ["workspace_id", "created_at"])
    op.create_index("ix_ledger_entries_request_id", "ledger_entries", ["request_id"], unique=True)
    op.create_table(
        "usage_records",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.String(32), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("requested_model", sa.String(200), nullable=True),
        sa.Column("served_model", sa.String(200), nullable=True),
        sa.Column("router", sa.String(64), nullable=True),
        sa.Column("fallback_level", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("stream", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("server_tool_calls", sa.Text(), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("ttft_ms", sa.Integer(), nullable=True),
        sa.Column("client_disconnected", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_usage_records"),
    )
    op.create_index("ix_usage_records_workspace_id_created_at", "usage_records", ["workspace_id", "created_at"])
    op.create_index("ix_usage_records_key_id", "usage_records", ["key_id"])
    op.create_table(
        "routers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("patterns", sa.Text(), nullable=True),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("default_model", sa.String(200), nullable=True),
        sa.Column("enabled", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routers"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], name="fk_routers_workspace_id_workspaces", ondelete="CASCADE"),
    )
    op.create_index("uq_routers_workspace_id_name", "routers", ["workspace_id", "name"], unique=True)
    op.create_table(
        "price_overrides",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("input_micros", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_micros", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_micros", sa.BigInteger(), nullable=False),
        sa.Column("output_micros", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_price_overrides"),
    )


def downgrade() -> None:
    op.drop_table("price_overrides")
    op.drop_table("routers")
    op.drop_table("usage_records")
    op.drop_table("ledger_entries")
    op.drop_table("workspace_members")
    op.drop_table("users")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("balance_micros")
