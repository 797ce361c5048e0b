"""``roomscan backfill`` stores each photo's room type with its detections, as the worker does."""

from __future__ import annotations

from _bulk import DETECTOR_OPTIONS
from sqlalchemy import func, select

from roomscan.bulk import backfill
from roomscan.catalog.models import ListingRoom, PhotoRoom
from roomscan.services import Services


def test_backfill_stores_room_types_and_rolls_them_up(ray_local, sqlite_settings, seed_catalog) -> None:  # type: ignore[no-untyped-def]
    made = seed_catalog(sqlite_settings, {"Beach house": 3, "City flat": 2})
    stats = backfill(sqlite_settings, detector_options=DETECTOR_OPTIONS, batch_size=2)
    assert stats.done == 5
    services = Services.open(sqlite_settings)
    try:
        with services.sessions() as session:
            rooms = dict(session.execute(select(PhotoRoom.photo_id, PhotoRoom.room)).all())
            assert set(rooms) == {p for ids in made.values() for p in ids}
            rolled = session.execute(select(ListingRoom.listing_id, func.sum(ListingRoom.photo_count))
                                     .group_by(ListingRoom.listing_id).order_by(ListingRoom.listing_id)).all()
            assert [n for _, n in rolled] == [3, 2]
    finally:
        services.close()
