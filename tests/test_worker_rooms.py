"""The detection worker stores each photo's room type with its detections, rolls rooms up per listing, and keeps
the detections when room scoring fails. On SQLite and PostgreSQL, with the real OWLv2 backend (tiny weights)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _databases import BACKENDS, fresh_database
from _models import tiny_taxonomy
from sqlalchemy import func, select

from roomscan.catalog import insights, store
from roomscan.catalog.models import Detection, ListingRoom, PhotoJob
from roomscan.detection.image import load_image
from roomscan.insights.classify import RoomClassifier
from roomscan.services import Services, open_services
from roomscan.settings import Settings


@pytest.fixture(scope="module")
def detector(tiny_owlv2_dir):  # type: ignore[no-untyped-def]
    from roomscan.backends import get_detector

    return get_detector(str(tiny_owlv2_dir), taxonomy=tiny_taxonomy(), device="cpu", score_threshold=0.0)


@pytest.fixture(params=BACKENDS)
def services(request: pytest.FixtureRequest, tmp_path: Path, detector) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    with fresh_database(request.param, tmp_path) as url:
        built = open_services(Settings(home=tmp_path / "home", database_url=url), detector=detector)
        try:
            yield built
        finally:
            built.close()


def _listing_with_photo(services: Services, sample_photo, *, published: bool = True) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    assert services.model_id is not None
    with services.sessions() as session:
        listing = store.create_listing(session, "Flat", published=published)
        added = store.add_photo(session, services.photos, listing, load_image(sample_photo(size=(128, 96), seed=4)),
                                model_id=services.model_id, taxonomy=services.taxonomy)
        session.commit()
        return listing.id, added.photo_id


def test_the_worker_stores_each_photos_room_type_with_its_detections(services: Services, sample_photo) -> None:  # type: ignore[no-untyped-def]
    listing_id, photo_id = _listing_with_photo(services, sample_photo)
    assert isinstance(services.worker.rooms, RoomClassifier)
    assert services.worker.run_until_idle().done == 1
    with services.sessions() as session:
        scores = insights.photo_rooms(session, [photo_id], services.model_id)[photo_id]  # type: ignore[arg-type]
        assert scores.slugs == services.room_classifier.room_types.slugs
        assert "embedding" in scores.source  # OWLv2 has a text tower: zero-shot plus amenities
        rows = session.execute(select(ListingRoom.listing_id, ListingRoom.room, ListingRoom.photo_count)).all()
        assert [tuple(r) for r in rows] == [(listing_id, scores.best, 1)]


def test_an_unpublished_listing_gets_no_searchable_rooms(services: Services, sample_photo) -> None:  # type: ignore[no-untyped-def]
    _, photo_id = _listing_with_photo(services, sample_photo, published=False)
    services.worker.run_until_idle()
    with services.sessions() as session:
        assert insights.photo_rooms(session, [photo_id], services.model_id)  # type: ignore[arg-type]
        assert session.scalar(select(func.count()).select_from(ListingRoom)) == 0


def test_a_room_scoring_failure_keeps_the_detections(
    services: Services, sample_photo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    _, photo_id = _listing_with_photo(services, sample_photo)

    def broken(dets):  # type: ignore[no-untyped-def]
        raise RuntimeError("room scoring bug")

    monkeypatch.setattr(services.room_classifier, "scores", broken)
    stats = services.worker.run_until_idle()
    assert (stats.done, stats.failed) == (1, 0)
    assert "room type of photo" in caplog.text
    with services.sessions() as session:
        assert session.scalar(select(PhotoJob.state)) == "done"
        assert session.scalar(select(func.count()).select_from(Detection)) > 0
        assert insights.photo_rooms(session, [photo_id], services.model_id) == {}  # type: ignore[arg-type]


def test_a_worker_without_a_room_classifier_stores_detections_only(services: Services, sample_photo) -> None:  # type: ignore[no-untyped-def]
    _, photo_id = _listing_with_photo(services, sample_photo)
    worker = services.new_worker(rooms=None)
    assert worker.run_until_idle().done == 1
    with services.sessions() as session:
        assert insights.photo_rooms(session, [photo_id], services.model_id) == {}  # type: ignore[arg-type]
