"""Host decisions on reported amenities, the ``rejected`` roll-up status, and stale roll-ups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Catalogs written before this revision could hold listings whose roll-up missed photos that were already in the
catalog when attached (the roll-up was only refreshed when a detection finished). Every listing with photos is
marked stale here, so the next worker (``roomscan worker`` or a server) recomputes its roll-up once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OLD_STATUSES = "status IN ('confirmed', 'unverified', 'discovered')"
_NEW_STATUSES = "status IN ('confirmed', 'unverified', 'discovered', 'rejected')"


def upgrade() -> None:
    op.create_table(
        "amenity_decisions",
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("amenity", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name="fk_amenity_decisions_listing_id_listings", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("listing_id", "amenity", name="pk_amenity_decisions"),
        sa.CheckConstraint("decision IN ('confirmed', 'rejected')", name="ck_amenity_decisions_decision"),
    )
    # Plain ALTER TABLE ADD COLUMN, never a batch copy of ``listings``: on SQLite a copy drops the old table,
    # and with foreign keys on that would cascade into every table that references listings.
    op.add_column("listings", sa.Column("rollup_stale", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index("ix_listings_rollup_stale", "listings", ["rollup_stale"])
    # listing_amenities is a leaf table (nothing references it): a batch copy is safe there.
    with op.batch_alter_table("listing_amenities") as batch:
        batch.drop_constraint("ck_listing_amenities_status", type_="check")
        batch.create_check_constraint("ck_listing_amenities_status", sa.text(_NEW_STATUSES))
    op.execute(
        "UPDATE listings SET rollup_stale = TRUE WHERE id IN (SELECT DISTINCT listing_id FROM listing_photos)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM listing_amenities WHERE status = 'rejected'")
    with op.batch_alter_table("listing_amenities") as batch:
        batch.drop_constraint("ck_listing_amenities_status", type_="check")
        batch.create_check_constraint("ck_listing_amenities_status", sa.text(_OLD_STATUSES))
    op.drop_index("ix_listings_rollup_stale", "listings")
    op.drop_column("listings", "rollup_stale")  # SQLite >= 3.35 drops a column in place
    op.drop_table("amenity_decisions")
