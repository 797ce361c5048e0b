"""Who holds a running job's lease (``photo_jobs.leased_by``), so a crashed worker's jobs are taken over at once;
photo rows of refused uploads are deleted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Jobs left ``running`` by an older roomscan have no holder: they are taken over when their lease runs out, as
before. On SQLite an older roomscan committed the first photo row of an upload that was then refused (no
listing, no job); every photo joins a listing when it is stored, so photos no listing uses are deleted here.
Their files go with the next start-up sweep of the photo store.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default): no table copy on SQLite.
    op.add_column("photo_jobs", sa.Column("leased_by", sa.String(length=255), nullable=True))
    op.execute("DELETE FROM photos WHERE id NOT IN (SELECT photo_id FROM listing_photos)")


def downgrade() -> None:
    op.drop_column("photo_jobs", "leased_by")  # SQLite >= 3.35 drops a column in place
