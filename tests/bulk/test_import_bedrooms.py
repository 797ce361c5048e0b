"""``roomscan import``'s optional ``bedrooms`` column: the declared count stored with each new listing, a bad
count reported by row and column and its row skipped."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from roomscan.bulk import import_listings
from roomscan.catalog.models import Listing
from roomscan.services import Services

ROWS = [  # id, title, bedrooms (as a CSV cell, as a Parquet value)
    ("B1", "Two-bed flat", "2", 2),
    ("B2", "Studio", "0", 0),
    ("B3", "Undeclared", "", None),
    ("B4", "Mansion", "101", 101),  # bad: over 100
    ("B5", "Cottage", "-1", -1),  # bad: negative
]


def _write(path, kind: str, rows) -> None:  # type: ignore[no-untyped-def]
    if kind == "csv":
        path.write_text("id,title,bedrooms\n" + "".join(f"{i},{t},{b}\n" for i, t, b, _ in rows))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [r[0] for r in rows], "title": [r[1] for r in rows],
                             "bedrooms": pa.array([r[3] for r in rows], pa.int64())}), path)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_imported_listings_keep_their_bedroom_count(ray_local, sqlite_settings, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"listings.{kind}"
    _write(path, kind, ROWS)

    stats = import_listings(sqlite_settings, path)

    assert (stats.rows, stats.listings_created, stats.bad_rows) == (5, 3, 2)
    problems = "\n".join(stats.problems)
    for listing_id, count in (("B4", 101), ("B5", -1)):
        assert f"(id {listing_id}), column bedrooms: bedrooms must be a whole number from 0 to 100, got {count}" in problems
    services = Services.open(sqlite_settings)
    try:
        with services.sessions() as session:
            stored = dict(session.execute(select(Listing.external_id, Listing.bedrooms)).tuples().all())
    finally:
        services.close()
    assert stored == {"B1": 2, "B2": 0, "B3": None}


def test_a_count_that_is_not_a_number_is_named(ray_local, sqlite_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "listings.csv"
    path.write_text("id,title,bedrooms\nC1,Flat,two\nC2,Flat,2.5\n")
    stats = import_listings(sqlite_settings, path)
    assert (stats.listings_created, stats.bad_rows) == (0, 2)
    problems = "\n".join(stats.problems)
    assert "line 2 (id C1), column bedrooms: bedrooms must be a whole number from 0 to 100, got 'two'" in problems
    assert "line 3 (id C2), column bedrooms: bedrooms must be a whole number from 0 to 100, got '2.5'" in problems
