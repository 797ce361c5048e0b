"""Listing photo insights: a photo's quality and perceptual hashes, its room type per model, and each listing's
roll-up of the rooms its photos show (for search by room).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Three new tables, no change to existing rows. Photos stored before this revision have no ``photo_insights`` row
until ``roomscan photos analyse`` (resumable) reads them again; their room types come with their next detection
(``roomscan worker`` after a model change, or ``roomscan backfill``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_insights",
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("quality_score", sa.Float(), nullable=False),
        *(sa.Column(f"hash{i}", sa.BigInteger(), nullable=False) for i in range(5)),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_photo_insights_computed_at", "photo_insights", ["computed_at"])
    op.create_table(
        "photo_rooms",
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("room", sa.String(64), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
    )
    op.create_index("ix_photo_rooms_room", "photo_rooms", ["model_id", "room", "photo_id"])
    op.create_table(
        "listing_rooms",
        sa.Column("listing_id", sa.Integer(), sa.ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("room", sa.String(64), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="SET NULL"), nullable=True),
        sa.Column("photo_count", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
    )
    op.create_index("ix_listing_rooms_search", "listing_rooms", ["room", "listing_id"])


def downgrade() -> None:
    op.drop_table("listing_rooms")
    op.drop_table("photo_rooms")
    op.drop_table("photo_insights")
