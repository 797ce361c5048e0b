"""Radioactive-data marked copies of published photos: one row per photo and marking key.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

One new table, no change to existing rows. Nothing is marked until ``ROOMSCAN_MARK_KEY`` and
``ROOMSCAN_MARK_NETWORK`` are set and ``roomscan photos mark`` runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_marks",
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(200), nullable=False),
        sa.Column("marked_sha256", sa.String(64), nullable=True),
        sa.Column("psnr", sa.Float(), nullable=True),
        sa.Column("linf", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_photo_marks_marked_sha256", "photo_marks", ["marked_sha256"])


def downgrade() -> None:
    op.drop_table("photo_marks")
