"""A narrow index of the amenities each listing is seen to have, for search.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

``ix_listing_amenities_seen (amenity, listing_id) WHERE status IN ('confirmed', 'discovered')`` holds only the
rows a default search (no ``min_score``, not ``confirmed_only``) can match, at half the width of
``ix_listing_amenities_search`` and with no status to test: intersecting rare amenities' ranges reads it about
twice as fast (PostgreSQL, 1M listings). Searches with a score bound or ``confirmed_only`` keep the search index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SEEN = "status IN ('confirmed', 'discovered')"


def upgrade() -> None:
    # A plain CREATE INDEX on both databases: no table copy.
    op.create_index(
        "ix_listing_amenities_seen",
        "listing_amenities",
        ["amenity", "listing_id"],
        sqlite_where=sa.text(_SEEN),
        postgresql_where=sa.text(_SEEN),
    )


def downgrade() -> None:
    op.drop_index("ix_listing_amenities_seen", "listing_amenities")
