"""A listing's declared bedroom count (``listings.bedrooms``), checked against its photos by the tour's notes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Nullable (existing listings declare nothing) with a CHECK of 0..100. One ``ALTER TABLE ... ADD COLUMN`` with the
constraint inline, which SQLite and PostgreSQL both accept: no table copy on SQLite (Alembic's ``add_column``
would add the CHECK as a separate ``ALTER TABLE ... ADD CONSTRAINT``, which SQLite has not got).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE listings ADD COLUMN bedrooms INTEGER "
        "CONSTRAINT ck_listings_bedrooms CHECK (bedrooms >= 0 AND bedrooms <= 100)"
    )


def downgrade() -> None:
    op.drop_column("listings", "bedrooms")  # the column's own CHECK goes with it (SQLite >= 3.35, PostgreSQL)
