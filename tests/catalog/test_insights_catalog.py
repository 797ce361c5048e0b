"""Photo insights in the catalog: quality and hashes stored with a new photo, room scores per model, the listing
roll-up of rooms, duplicates across listings (with who may see them), the tour, and the resumable backfill."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from _models import room_scene, tiny_taxonomy
from PIL import Image
from sqlalchemy import delete, func, select, update

from roomscan.auth import Principal
from roomscan.backends._base import ModelInfo
from roomscan.catalog import insights, store
from roomscan.catalog.models import ListingRoom, PhotoInsight, Role
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.image import load_image
from roomscan.errors import NotFoundError
from roomscan.insights.rooms import default_room_types, scores_from_amenities


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def near_copy(image: Image.Image) -> bytes:
    """What a copier uploads: the photo resized and re-encoded at JPEG quality 60."""
    return jpeg(image.resize((image.width * 3 // 4, image.height * 3 // 4)), 60)


ROOMS = default_room_types()
ADMIN = Principal(1, "admin", Role.ADMIN, None)


@pytest.fixture
def env(catalog, tmp_path: Path):  # type: ignore[no-untyped-def]
    _, Session = catalog
    photos = PhotoStore(tmp_path / "photos")
    taxonomy = tiny_taxonomy()
    with Session() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        session.commit()
    return Session, photos, taxonomy, model_id


def _add(session, photos, listing, data: bytes, model_id: int, taxonomy, name: str = "p.jpg") -> int:  # type: ignore[no-untyped-def]
    return store.add_photo(session, photos, listing, load_image(data), model_id=model_id, taxonomy=taxonomy,
                           filename=name).photo_id


def _insights(session, listing_id: int, model_id: int, taxonomy, viewer=ADMIN):  # type: ignore[no-untyped-def]
    listing = store.get_listing(session, listing_id)
    return insights.listing_insights(session, listing, model_id, viewer=viewer, room_types=ROOMS, taxonomy=taxonomy)


def test_a_new_photo_is_stored_with_its_quality_and_hashes(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    with Session() as session:
        listing = store.create_listing(session, "Loft")
        dark = Image.new("RGB", (200, 150), (10, 10, 10))
        photo_id = _add(session, photos, listing, jpeg(dark), model_id, taxonomy)
        session.commit()
    with Session() as session:
        quality = insights.photo_quality(session, [photo_id])[photo_id]
        assert "too_dark" in {issue.code for issue in quality.issues}
        assert quality.width == 200 and not quality.ok
        row = session.get(PhotoInsight, photo_id)
        assert row is not None and row.version == insights.ANALYSIS_VERSION


def test_a_photo_the_analysis_fails_on_is_still_stored(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env

    def broken(image):  # type: ignore[no-untyped-def]
        raise RuntimeError("analysis bug")

    monkeypatch.setattr(insights, "assess_photo", broken)
    with Session() as session:
        listing = store.create_listing(session, "Loft")
        photo_id = _add(session, photos, listing, jpeg(room_scene(1)), model_id, taxonomy)
        session.commit()
    with Session() as session:
        assert store.get_photo(session, photo_id).sha256
        assert insights.photo_quality(session, [photo_id]) == {}
        assert insights.missing_analysis_count(session) == 1


def test_a_near_copy_on_another_listing_is_flagged_on_both_and_clustered(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    original = room_scene(7)
    with Session() as session:
        a = store.create_listing(session, "Original flat")
        b = store.create_listing(session, "Copied flat")
        own = _add(session, photos, a, jpeg(original), model_id, taxonomy, "living.jpg")
        other = _add(session, photos, a, jpeg(room_scene(8)), model_id, taxonomy, "kitchen.jpg")
        session.commit()
        a_id, b_id = a.id, b.id
        # The index is built now, before the copy exists: the copy must be caught up on the next use.
        assert all(not p.duplicates for p in _insights(session, a_id, model_id, taxonomy).photos)
        copy = _add(session, photos, b, near_copy(original), model_id, taxonomy, "copy.jpg")
        session.commit()
    with Session() as session:
        on_a = {p.photo_id: p for p in _insights(session, a_id, model_id, taxonomy).photos}
        on_b = {p.photo_id: p for p in _insights(session, b_id, model_id, taxonomy).photos}
        assert [(d.photo_id, d.listing_id, d.listing_title) for d in on_a[own].duplicates] == [
            (copy, b_id, "Copied flat")
        ]
        assert on_a[own].duplicates[0].distance <= 8
        assert on_a[other].duplicates == ()  # a different photo is not a copy
        assert [(d.photo_id, d.listing_id) for d in on_b[copy].duplicates] == [(own, a_id)]
        assert [m.id for m in insights.find_duplicates(session, own)] == [copy]
        clusters = insights.duplicate_clusters(session, viewer=ADMIN)
        assert [(sorted(p.photo_id for p in c.photos), c.listing_ids) for c in clusters] == [
            (sorted([own, copy]), (a_id, b_id))
        ]


def test_the_same_bytes_on_two_listings_are_a_duplicate_at_distance_0(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    data = jpeg(room_scene(3))
    with Session() as session:
        a, b = store.create_listing(session, "A"), store.create_listing(session, "B")
        photo_id = _add(session, photos, a, data, model_id, taxonomy)
        assert _add(session, photos, b, data, model_id, taxonomy) == photo_id
        session.commit()
        found = _insights(session, a.id, model_id, taxonomy).photos[0]
        assert [(d.photo_id, d.listing_id, d.distance) for d in found.duplicates] == [(photo_id, b.id, 0)]
        clusters = insights.duplicate_clusters(session, viewer=ADMIN)
        assert [c.listing_ids for c in clusters] == [(a.id, b.id)]


def test_a_viewer_who_cannot_see_the_other_listing_gets_a_count_not_a_link(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    original = room_scene(11)
    with Session() as session:
        public = store.create_listing(session, "Public")
        hidden = store.create_listing(session, "Draft", published=False)
        own = _add(session, photos, public, jpeg(original), model_id, taxonomy)
        _add(session, photos, hidden, near_copy(original), model_id, taxonomy)
        session.commit()
        host = Principal(999, "someone", Role.HOST, None)
        for viewer in (None, host):
            photo = _insights(session, public.id, model_id, taxonomy, viewer=viewer).photos[0]
            assert photo.photo_id == own
            assert photo.duplicates == () and photo.hidden_duplicates == 1
            assert "Draft" not in str(photo.to_dict())
            [cluster] = insights.duplicate_clusters(session, viewer=viewer)
            assert cluster.listing_ids == (public.id,) and cluster.hidden_listings == 1
        assert _insights(session, public.id, model_id, taxonomy).photos[0].duplicates[0].listing_id == hidden.id


def test_a_deleted_photo_disappears_from_duplicates(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    original = room_scene(21)
    with Session() as session:
        a, b = store.create_listing(session, "A"), store.create_listing(session, "B")
        own = _add(session, photos, a, jpeg(original), model_id, taxonomy)
        copy = _add(session, photos, b, near_copy(original), model_id, taxonomy)
        session.commit()
        assert _insights(session, a.id, model_id, taxonomy).photos[0].duplicates  # indexed with the copy
        removed = store.remove_photo(session, b, copy, taxonomy=taxonomy, model_id=model_id)
        session.commit()
        assert removed.deleted
        assert _insights(session, a.id, model_id, taxonomy).photos[0].duplicates == ()
        assert insights.find_duplicates(session, own) == []
        assert insights.duplicate_clusters(session, viewer=ADMIN) == []
        with pytest.raises(NotFoundError, match="photos analyse"):
            insights.find_duplicates(session, copy)


def test_room_scores_roll_up_per_listing_and_tour_uses_them(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    bathroom = scores_from_amenities([("toilet", 0.9, "bathroom"), ("shower", 0.8, "bathroom")], room_types=ROOMS)
    bedroom = scores_from_amenities([("bed", 0.9, "bedroom")], room_types=ROOMS)
    with Session() as session:
        listing = store.create_listing(session, "Flat")
        draft = store.create_listing(session, "Draft", published=False)
        first = _add(session, photos, listing, jpeg(room_scene(31)), model_id, taxonomy)
        second = _add(session, photos, listing, jpeg(room_scene(32)), model_id, taxonomy)
        on_draft = _add(session, photos, draft, jpeg(room_scene(33)), model_id, taxonomy)
        insights.save_room_scores(session, first, model_id, bathroom)
        insights.save_room_scores(session, second, model_id, bedroom)
        insights.save_room_scores(session, on_draft, model_id, bedroom)
        insights.save_room_scores(session, second, model_id, bedroom)  # again: replaced, not doubled
        store.refresh_listing_amenities(session, listing, model_id, taxonomy)
        store.refresh_listing_amenities(session, draft, model_id, taxonomy)
        session.commit()
        stored = insights.photo_rooms(session, [first, second, on_draft], model_id)
        assert stored[first].best == "bathroom" and stored[second].best == "bedroom"
        assert insights.photo_rooms(session, [first], model_id + 1) == {}
        rows = session.execute(select(ListingRoom.listing_id, ListingRoom.room, ListingRoom.photo_count)
                               .order_by(ListingRoom.room)).all()
        assert [tuple(r) for r in rows] == [(listing.id, "bathroom", 1), (listing.id, "bedroom", 1)]
        found = _insights(session, listing.id, model_id, taxonomy)
        assert found.tour is not None and found.tour.order == [second, first]  # bedrooms before bathrooms
        assert found.tour.cover in (first, second) and found.tour.notes == ()
        assert found.left_out == ()
        doc = found.to_dict()
        assert doc["photos"][0]["room"]["best"] == "bathroom" and doc["photos"][0]["quality"]["score"] >= 0


def test_a_listing_without_room_scores_has_no_tour_yet(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    with Session() as session:
        listing = store.create_listing(session, "Flat")
        photo_id = _add(session, photos, listing, jpeg(room_scene(41)), model_id, taxonomy)
        session.commit()
        found = _insights(session, listing.id, model_id, taxonomy)
        assert found.tour is None and found.left_out == (photo_id,)
        assert found.photos[0].room is None and found.photos[0].quality is not None


def test_the_backfill_analyses_what_is_missing_and_resumes(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    with Session() as session:
        listing = store.create_listing(session, "Flat")
        ids = [_add(session, photos, listing, jpeg(room_scene(50 + i)), model_id, taxonomy, f"{i}.jpg")
               for i in range(3)]
        session.commit()
        kept = session.get(PhotoInsight, ids[0]).quality  # type: ignore[union-attr]
        session.execute(delete(PhotoInsight))
        session.commit()
        assert insights.missing_analysis_count(session) == 3

        progress: list[int] = []
        first = insights.analyse_missing(session, photos, limit=2, on_progress=progress.append, batch_size=1)
        assert (first.analysed, first.failed, sum(progress)) == (2, 0, 2)
        assert insights.missing_analysis_count(session) == 1
        rest = insights.analyse_missing(session, photos)
        assert rest.analysed == 1 and insights.missing_analysis_count(session) == 0
        assert insights.analyse_missing(session, photos).analysed == 0  # nothing left: nothing redone
        assert session.get(PhotoInsight, ids[0]).quality == kept  # type: ignore[union-attr]

        # Rows of an older analysis are redone.
        session.execute(update(PhotoInsight).where(PhotoInsight.photo_id == ids[1]).values(version=0))
        session.commit()
        assert insights.analyse_missing(session, photos).analysed == 1
        assert session.scalar(select(func.min(PhotoInsight.version))) == insights.ANALYSIS_VERSION


def test_the_backfill_names_a_photo_whose_file_is_missing_and_carries_on(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    with Session() as session:
        listing = store.create_listing(session, "Flat")
        gone = store.add_photo(session, photos, listing, load_image(jpeg(room_scene(60))), model_id=model_id,
                               taxonomy=taxonomy)
        _add(session, photos, listing, jpeg(room_scene(61)), model_id, taxonomy)
        session.commit()
        session.execute(delete(PhotoInsight))
        session.commit()
        photos.delete(gone.sha256)
        stats = insights.analyse_missing(session, photos)
        assert (stats.analysed, stats.failed) == (1, 1)
        assert stats.errors and gone.sha256 in stats.errors[0]
        assert insights.missing_analysis_count(session) == 1


@pytest.mark.parametrize("bad", [-1, 33, True, 2.5])
def test_a_bad_max_distance_is_refused(env, bad) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    with Session() as session:
        listing = store.create_listing(session, "Flat")
        photo_id = _add(session, photos, listing, jpeg(room_scene(70)), model_id, taxonomy)
        session.commit()
        with pytest.raises(ValueError, match="max_distance"):
            insights.find_duplicates(session, photo_id, bad)


def test_a_catalog_of_0008_upgrades_and_the_backfill_fills_its_photos(catalog_url: str, tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.orm import sessionmaker

    from roomscan.catalog.db import alembic_config, make_engine, migrate

    photos = PhotoStore(tmp_path / "photos")
    original = room_scene(80)
    files = [load_image(jpeg(original)), load_image(near_copy(original)), load_image(jpeg(room_scene(81)))]
    engine = make_engine(catalog_url)
    with engine.begin() as con:
        command.upgrade(alembic_config(con), "0008")
    with engine.begin() as con:
        for i, loaded in enumerate(files, start=1):
            photos.put(loaded.sha256, loaded.data)
            con.execute(text("INSERT INTO photos (id, sha256, format, width, height, size_bytes, created_at) "
                             "VALUES (:id, :sha, 'JPEG', :w, :h, :n, '2026-01-01 00:00:00+00:00')"),
                        {"id": i, "sha": loaded.sha256, "w": loaded.width, "h": loaded.height, "n": len(loaded.data)})
    migrate(engine)
    Session = sessionmaker(engine)
    try:
        with Session() as session:
            assert insights.missing_analysis_count(session) == 3
            assert insights.analyse_missing(session, photos).analysed == 3
            assert set(insights.photo_quality(session, [1, 2, 3])) == {1, 2, 3}
            assert [m.id for m in insights.find_duplicates(session, 1)] == [2]
            assert insights.find_duplicates(session, 3) == []
    finally:
        engine.dispose()


def test_a_large_photo_and_its_small_copy_match(env) -> None:  # type: ignore[no-untyped-def]
    # Photos above HASH_LONG_SIDE are hashed from a shrunk copy; a half-size JPEG 60 copy still matches.
    Session, photos, taxonomy, model_id = env
    original = room_scene(90, (2000, 1500))
    with Session() as session:
        a, b = store.create_listing(session, "A"), store.create_listing(session, "B")
        own = _add(session, photos, a, jpeg(original), model_id, taxonomy)
        copy = _add(session, photos, b, jpeg(original.resize((1000, 750)), 60), model_id, taxonomy)
        _add(session, photos, b, jpeg(room_scene(91, (2000, 1500))), model_id, taxonomy)
        session.commit()
        assert [m.id for m in insights.find_duplicates(session, own)] == [copy]
        assert [m.id for m in insights.find_duplicates(session, insights.catalog_hashes(original))] == [own, copy]


def test_a_copy_committed_late_is_still_found(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # A transaction that analysed a photo before the index last looked, but committed after: its row's stamp is
    # older than the newest the index has seen. The look-back re-read finds it.
    from datetime import timedelta

    from roomscan.catalog import duplicates

    Session, photos, taxonomy, model_id = env
    original = room_scene(95)
    with Session() as session:
        a, b = store.create_listing(session, "A"), store.create_listing(session, "B")
        own = _add(session, photos, a, jpeg(original), model_id, taxonomy)
        _add(session, photos, a, jpeg(room_scene(96)), model_id, taxonomy)
        session.commit()
        assert insights.find_duplicates(session, own) == []  # the index is built
        copy = _add(session, photos, b, near_copy(original), model_id, taxonomy)
        row = session.get(PhotoInsight, copy)
        assert row is not None
        row.computed_at = row.computed_at - timedelta(seconds=30)
        session.commit()
        monkeypatch.setattr(duplicates, "RECHECK_SECONDS", 0.0)
        assert [m.id for m in insights.find_duplicates(session, own)] == [copy]
