"""``roomscan import`` stores each photo's quality and perceptual hashes, computed in the task that decoded it."""

from __future__ import annotations

from _bulk import jpeg

from roomscan.bulk import import_listings
from roomscan.catalog import insights
from roomscan.catalog.models import ListingPhoto
from roomscan.services import Services


def test_imported_photos_have_their_quality_and_hashes(ray_local, sqlite_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg(1))
    (folder / "b.jpg").write_bytes(jpeg(1))  # the same picture on another listing
    (tmp_path / "listings.csv").write_text("id,title,photos\nA,Flat,a.jpg\nB,Copy,b.jpg\n")
    stats = import_listings(sqlite_settings, tmp_path / "listings.csv", photo_root=folder)
    assert stats.photos_added == 2
    services = Services.open(sqlite_settings)
    try:
        with services.sessions() as session:
            photo_ids = list(session.scalars(ListingPhoto.__table__.select().with_only_columns(ListingPhoto.photo_id)))
            assert insights.missing_analysis_count(session) == 0
            assert set(insights.photo_quality(session, photo_ids)) == set(photo_ids)
            [cluster] = insights.duplicate_clusters(session, viewer=None)
            assert len(cluster.listing_ids) == 2
    finally:
        services.close()
