"""A listing's id in the system it was imported from (``listings.external_id``), so a re-import updates nothing
twice and duplicates nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Nullable and unique (a unique index: any number of listings made in roomscan itself have none).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) and CREATE INDEX: no table copy on SQLite.
    op.add_column("listings", sa.Column("external_id", sa.String(length=200), nullable=True))
    op.create_index("ix_listings_external_id", "listings", ["external_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_listings_external_id", table_name="listings")
    op.drop_column("listings", "external_id")  # SQLite >= 3.35 drops a column in place
