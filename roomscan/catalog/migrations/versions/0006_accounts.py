"""Accounts: users (admins, hosts), their API keys (hashes only), the audit log of writes, and an owner for every
listing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

The bootstrap admin (``admin``; ``ROOMSCAN_API_KEY`` signs in as it) is created here and owns every listing that
existed before accounts, so nothing is lost and an operator can hand listings to their hosts afterwards.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'host')", name="ck_users_role"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("user_name", sa.String(length=64), nullable=True),
        sa.Column("key_prefix", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("remote", sa.String(length=64), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_user_id", "audit_log", ["user_id"])
    users = sa.table("users", sa.column("name"), sa.column("role"), sa.column("created_at", sa.DateTime(timezone=True)))
    op.execute(users.insert().values(name="admin", role="admin", created_at=sa.func.current_timestamp()))
    # Plain ADD COLUMN (nullable, no default): no table copy of listings on SQLite (its cascades would fire).
    if op.get_bind().dialect.name == "sqlite":  # the REFERENCES clause goes in the ADD COLUMN itself
        op.execute("ALTER TABLE listings ADD COLUMN owner_id INTEGER REFERENCES users (id)")
    else:
        op.add_column("listings", sa.Column(
            "owner_id", sa.Integer(),
            sa.ForeignKey("users.id", name="listings_owner_id_fkey"), nullable=True,
        ))
    op.create_index("ix_listings_owner_id", "listings", ["owner_id"])
    op.execute("UPDATE listings SET owner_id = (SELECT id FROM users WHERE name = 'admin')")


def downgrade() -> None:
    op.drop_index("ix_listings_owner_id", table_name="listings")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("listings_owner_id_fkey", "listings", type_="foreignkey")
    op.drop_column("listings", "owner_id")  # SQLite >= 3.35 drops a column in place
    op.drop_index("ix_audit_log_user_id", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_api_keys_user_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("users")
