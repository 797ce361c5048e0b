"""The catalog: listings, photos, detections and the amenity roll-up that search reads.

``open_catalog(url)`` migrates the database and returns ``(engine, Session)``; ``search_listings`` answers
amenity searches a page at a time.
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
from roomscan.catalog.search import SearchHit, SearchPage, SearchQuery, search_listings

__all__ = [
    "DatabaseUnavailableError",
    "SchemaVersionError",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "make_engine",
    "migrate",
    "open_catalog",
    "search_listings",
    "session_factory",
]
