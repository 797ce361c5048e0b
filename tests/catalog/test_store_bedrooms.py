"""A listing's declared bedroom count: stored, changed, cleared and bounded by the catalog, and checked against the
listing's photos by the tour's completeness notes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from _models import tiny_taxonomy
from PIL import Image

from roomscan.auth import Principal
from roomscan.backends._base import ModelInfo
from roomscan.catalog import insights, store
from roomscan.catalog.models import MAX_BEDROOMS, Role
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.image import load_image
from roomscan.errors import ListingError
from roomscan.insights.rooms import default_room_types, scores_from_amenities

ROOMS = default_room_types()
ADMIN = Principal(1, "admin", Role.ADMIN, None)
BAD_COUNTS = [-1, MAX_BEDROOMS + 1, True, 2.5, "2"]


@pytest.fixture
def env(catalog, tmp_path: Path):  # type: ignore[no-untyped-def]
    _, Session = catalog
    taxonomy = tiny_taxonomy()
    with Session() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        session.commit()
    return Session, PhotoStore(tmp_path / "photos"), taxonomy, model_id


def _photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("count", [None, 0, 2, MAX_BEDROOMS])
def test_a_new_listing_keeps_the_count_its_host_declares(env, count) -> None:  # type: ignore[no-untyped-def]
    Session, _, _, _ = env
    with Session() as session:
        listing_id = store.create_listing(session, "Flat", bedrooms=count).id
        session.commit()
    with Session() as session:
        assert store.get_listing(session, listing_id).bedrooms == count


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_a_count_out_of_range_is_refused_with_what_to_give(env, bad) -> None:  # type: ignore[no-untyped-def]
    Session, _, taxonomy, model_id = env
    with Session() as session:
        with pytest.raises(ListingError, match=f"bedrooms must be a whole number from 0 to {MAX_BEDROOMS}"):
            store.create_listing(session, "Flat", bedrooms=bad)
        listing = store.create_listing(session, "Flat", bedrooms=3)
        session.commit()
        with pytest.raises(ListingError, match="bedrooms"):
            store.update_listing(session, listing, title="Renamed", bedrooms=bad, taxonomy=taxonomy,
                                 model_id=model_id)
        session.rollback()
        assert (listing.title, listing.bedrooms) == ("Flat", 3)  # nothing half-changed


def test_an_edit_leaves_the_count_sets_it_or_clears_it(env) -> None:  # type: ignore[no-untyped-def]
    Session, _, taxonomy, model_id = env
    with Session() as session:
        listing = store.create_listing(session, "Flat", bedrooms=2)
        session.commit()
        listing_id = listing.id

    def edit(**change):  # type: ignore[no-untyped-def]
        with Session() as session:
            listing = store.get_listing(session, listing_id)
            store.update_listing(session, listing, taxonomy=taxonomy, model_id=model_id, **change)
            session.commit()
        with Session() as session:
            return store.get_listing(session, listing_id).bedrooms

    assert edit(title="Renamed") == 2  # other edits leave it
    assert edit(bedrooms=store.UNCHANGED) == 2
    assert edit(bedrooms=0) == 0
    assert edit(bedrooms=4) == 4
    assert edit(bedrooms=None) is None  # cleared: no count declared


def test_fewer_bedroom_photos_than_declared_bedrooms_is_noted(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, taxonomy, model_id = env
    bedroom = scores_from_amenities([("bed", 0.9, "bedroom")], room_types=ROOMS)
    bathroom = scores_from_amenities([("toilet", 0.9, "bathroom"), ("shower", 0.8, "bathroom")], room_types=ROOMS)
    with Session() as session:
        listing = store.create_listing(session, "Two-bed flat", bedrooms=2)
        ids = [store.add_photo(session, photos, listing, load_image(_photo(seed)), model_id=model_id,
                               taxonomy=taxonomy).photo_id for seed in (1, 2)]
        insights.save_room_scores(session, ids[0], model_id, bedroom)
        insights.save_room_scores(session, ids[1], model_id, bathroom)
        session.commit()

        def notes() -> list[tuple[str, str]]:
            found = insights.listing_insights(session, store.get_listing(session, listing.id), model_id,
                                              viewer=ADMIN, room_types=ROOMS, taxonomy=taxonomy)
            assert found.tour is not None
            return [(n.code, n.message) for n in found.tour.notes]

        assert ("bedrooms-unshown", "2 bedrooms declared, 1 bedroom photo") in notes()
        for declared in (1, None):  # as many bedrooms as photos show, or no count: nothing to say
            store.update_listing(session, listing, bedrooms=declared, taxonomy=taxonomy, model_id=model_id)
            session.commit()
            assert [code for code, _ in notes()] == []
        # Photos showing no bedroom: "no bedroom photo" without a count, nothing for a studio (0 bedrooms).
        insights.save_room_scores(session, ids[0], model_id, bathroom)
        session.commit()
        assert notes() == [("missing-room", "no bedroom photo")]
        store.update_listing(session, listing, bedrooms=0, taxonomy=taxonomy, model_id=model_id)
        session.commit()
        assert notes() == []
