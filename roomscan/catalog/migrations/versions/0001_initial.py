"""Initial catalog schema: listings, claims, photos, models, detections, photo jobs, listing amenities.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Constraint names follow ``pk_<table>``, ``fk_<table>_<column>_<referred table>``, ``uq_<table>_<column>`` so
that later batch migrations on SQLite can address them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "listings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_listings"),
    )
    op.create_table(
        "listing_claims",
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("amenity", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name="fk_listing_claims_listing_id_listings", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("listing_id", "amenity", name="pk_listing_claims"),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        sa.UniqueConstraint("sha256", name="uq_photos_sha256"),
    )
    op.create_table(
        "listing_photos",
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name="fk_listing_photos_listing_id_listings", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_listing_photos_photo_id_photos", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("listing_id", "photo_id", name="pk_listing_photos"),
    )
    op.create_index("ix_listing_photos_photo", "listing_photos", ["photo_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("taxonomy", sa.String(length=32), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("key", name="uq_models_key"),
    )
    op.create_table(
        "detections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("amenity", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_detections_photo_id_photos", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_detections_model_id_models", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_detections"),
    )
    op.create_index("ix_detections_photo_model", "detections", ["photo_id", "model_id"])
    op.create_table(
        "photo_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name="fk_photo_jobs_photo_id_photos", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_photo_jobs_model_id_models", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_photo_jobs"),
        sa.UniqueConstraint("photo_id", "model_id", name="uq_photo_jobs_photo_model"),
        sa.CheckConstraint("state IN ('pending', 'running', 'done', 'failed')", name="ck_photo_jobs_state"),
    )
    op.create_index("ix_photo_jobs_state", "photo_jobs", ["state", "id"])
    op.create_table(
        "listing_amenities",
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("amenity", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("photo_count", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Boolean(), nullable=False),
        sa.Column("seen", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.id"],
            name="fk_listing_amenities_listing_id_listings",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_listing_amenities_model_id_models", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("listing_id", "amenity", name="pk_listing_amenities"),
        sa.CheckConstraint(
            "status IN ('confirmed', 'unverified', 'discovered')", name="ck_listing_amenities_status"
        ),
    )
    op.create_index(
        "ix_listing_amenities_search", "listing_amenities", ["amenity", "listing_id", "score", "status"]
    )


def downgrade() -> None:
    for table in (
        "listing_amenities",
        "photo_jobs",
        "detections",
        "models",
        "listing_photos",
        "photos",
        "listing_claims",
        "listings",
    ):
        op.drop_table(table)
