"""Which listings a bulk job touches: ``--listings`` as an id range (``100-200``, ``42``) or a title pattern (SQL
LIKE, ``Beach%``)."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, true

from roomscan.catalog.models import Listing

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def listing_filter(spec: str | None) -> ColumnElement[bool]:
    """The condition on ``listings`` that ``spec`` names (everything when ``None`` or blank).

    Example:
        >>> str(listing_filter("10-20"))
        'listings.id BETWEEN :id_1 AND :id_2'
    """
    if spec is None or not spec.strip():
        return true()
    match = _RANGE.match(spec)
    if match:
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        return Listing.id.between(min(low, high), max(low, high))
    return Listing.title.like(spec)
