"""Bulk jobs on Ray Data: :func:`backfill` (detect every photo a model has not processed) and
:func:`import_listings` (load listings with their photos from a Parquet or CSV file).

Ray loads lazily, inside the functions, so ``import roomscan.bulk`` stays light.
"""

from __future__ import annotations

from roomscan.bulk.backfill import BackfillStats, backfill
from roomscan.bulk.importer import ImportStats, import_listings

__all__ = ["BackfillStats", "ImportStats", "backfill", "import_listings"]
