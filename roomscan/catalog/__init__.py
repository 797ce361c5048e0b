"""The catalog: listings, photos, detections and the amenity roll-up that search reads.

``open_catalog(url)`` migrates the database and returns ``(engine, Session)``; ``search_listings`` answers
amenity searches with keyset pagination.
"""

from __future__ import annotations

from roomscan.catalog.db import (
    DatabaseUnavailableError,
    SchemaVersionError,
    make_engine,
    migrate,
    open_catalog,
    session_factory,
)

__all__ = [
    "DatabaseUnavailableError",
    "SchemaVersionError",
    "make_engine",
    "migrate",
    "open_catalog",
    "session_factory",
]
