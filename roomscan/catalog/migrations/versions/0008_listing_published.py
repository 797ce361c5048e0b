"""Listings can be unpublished: seen only by their owner and admins, and left out of search.

Every existing listing stays published. A plain ADD COLUMN with a constant default: no table copy on SQLite,
and no table rewrite on PostgreSQL (11+ stores the default in the catalog).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "listings", sa.Column("published", sa.Boolean(), nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    op.drop_column("listings", "published")  # SQLite >= 3.35 drops a column in place
