"""Search by room type: listings with a photo whose best room type is the one asked for, alone or with amenities;
unpublished listings are never found."""

from __future__ import annotations

from pathlib import Path

import pytest
from _models import tiny_taxonomy
from sqlalchemy import insert

from roomscan.backends._base import ModelInfo
from roomscan.catalog import insights, store
from roomscan.catalog.models import Listing, ListingAmenity, ListingRoom
from roomscan.catalog.photos import PhotoStore
from roomscan.catalog.search import SearchQuery, explain_search, search_listings
from roomscan.detection.image import load_image
from roomscan.insights.rooms import default_room_types, scores_from_amenities

# listing id -> (rooms its photos show, amenities seen)
LISTINGS: dict[int, tuple[set[str], set[str]]] = {
    1: ({"bathroom", "bedroom"}, {"bed", "sink"}),
    2: ({"bedroom"}, {"bed"}),
    3: ({"bathroom"}, {"sink"}),
    4: ({"kitchen"}, {"sink", "jacuzzi"}),
    5: ({"bathroom", "kitchen"}, {"jacuzzi"}),
    6: (set(), set()),
}


@pytest.fixture
def Session(catalog):  # type: ignore[no-untyped-def]
    _, Session = catalog
    with Session() as session, session.begin():
        session.execute(insert(Listing), [{"id": i, "title": f"listing {i}"} for i in LISTINGS])
        session.execute(insert(ListingRoom), [
            {"listing_id": i, "room": room, "photo_count": 1, "score": 0.5 + i / 100}
            for i, (rooms, _) in LISTINGS.items() for room in sorted(rooms)
        ])
        session.execute(insert(ListingAmenity), [
            {"listing_id": i, "amenity": slug, "score": 0.6, "photo_count": 1, "claimed": False, "seen": True,
             "status": "discovered"}
            for i, (_, amenities) in LISTINGS.items() for slug in sorted(amenities)
        ])
    return Session


def _expected(room: str, all_of: tuple[str, ...] = (), any_of: tuple[str, ...] = ()) -> list[int]:
    return [
        i for i, (rooms, seen) in LISTINGS.items()
        if room in rooms and set(all_of) <= seen and (not any_of or set(any_of) & seen)
    ]


CASES = [
    ("bathroom", (), ()),
    ("bedroom", (), ()),
    ("dining-room", (), ()),
    ("bathroom", ("sink",), ()),
    ("bathroom", ("bed", "sink"), ()),
    ("kitchen", (), ("jacuzzi", "bed")),
    ("bathroom", (), ("jacuzzi", "bed")),
]


@pytest.mark.parametrize(("room", "all_of", "any_of"), CASES)
def test_a_room_filter_keeps_listings_with_a_photo_of_that_room(Session, room, all_of, any_of) -> None:  # type: ignore[no-untyped-def]
    with Session() as session:
        page = search_listings(session, SearchQuery(all_of=all_of, any_of=any_of, room=room))
    assert [h.listing_id for h in page.hits] == _expected(room, all_of, any_of)
    assert all(h.room_score == pytest.approx(0.5 + h.listing_id / 100) for h in page.hits)
    assert all(set(h.amenities) <= set(all_of) | set(any_of) for h in page.hits)


def test_a_search_by_room_alone_pages_with_the_cursor(Session) -> None:  # type: ignore[no-untyped-def]
    found, after = [], None
    with Session() as session:
        while True:
            page = search_listings(session, SearchQuery(room="bathroom", limit=1, after=after))
            found += [(h.listing_id, h.title, h.amenities) for h in page.hits]
            if page.next_cursor is None:
                break
            after = page.next_cursor
    assert found == [(i, f"listing {i}", {}) for i in _expected("bathroom")]


def test_a_search_by_room_alone_reads_the_room_index(Session, catalog_url: str) -> None:  # type: ignore[no-untyped-def]
    if not catalog_url.startswith("sqlite"):
        pytest.skip("PostgreSQL plans depend on table statistics")
    with Session() as session:
        plan = explain_search(session, SearchQuery(room="bathroom"))
    assert "ix_listing_rooms_search" in plan


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "or a room"), ({"room": ""}, "room must be a room type slug"), ({"room": 3}, "room must be")],
)
def test_a_bad_query_is_refused(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        SearchQuery(**kwargs)


def test_an_unpublished_listing_is_not_found_by_room(catalog, tmp_path: Path, sample_photo) -> None:  # type: ignore[no-untyped-def]
    _, Session = catalog
    photos, taxonomy = PhotoStore(tmp_path / "photos"), tiny_taxonomy()
    bathroom = scores_from_amenities([("toilet", 0.9, "bathroom")], room_types=default_room_types())
    with Session() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        shown = store.create_listing(session, "Shown")
        draft = store.create_listing(session, "Draft", published=False)
        for seed, listing in enumerate((shown, draft)):
            added = store.add_photo(session, photos, listing, load_image(sample_photo(seed=seed)),
                                    model_id=model_id, taxonomy=taxonomy)
            insights.save_room_scores(session, added.photo_id, model_id, bathroom)
            store.refresh_listing_amenities(session, listing, model_id, taxonomy)
        session.commit()
        assert [h.listing_id for h in search_listings(session, SearchQuery(room="bathroom")).hits] == [shown.id]
        # Publishing it puts it in search; unpublishing takes it out again.
        store.update_listing(session, draft, published=True, taxonomy=taxonomy, model_id=model_id)
        session.commit()
        assert [h.listing_id for h in search_listings(session, SearchQuery(room="bathroom")).hits] == [
            shown.id, draft.id
        ]
        store.update_listing(session, shown, published=False, taxonomy=taxonomy, model_id=model_id)
        session.commit()
        assert [h.listing_id for h in search_listings(session, SearchQuery(room="bathroom")).hits] == [draft.id]


@pytest.mark.parametrize("any_of", [(), ("jacuzzi",)])
def test_a_room_filter_holds_when_rare_ranges_are_merged(Session, monkeypatch: pytest.MonkeyPatch, any_of) -> None:  # type: ignore[no-untyped-def]
    # Large catalogs intersect rare amenity ranges by merging them (search._merge) instead of walking one.
    from roomscan.catalog import search

    monkeypatch.setattr(search, "_merge_count", lambda all_of, *_: len(all_of))
    query = SearchQuery(all_of=("bed", "sink"), any_of=any_of, room="bathroom")
    with Session() as session:
        page = search_listings(session, query)
    assert [h.listing_id for h in page.hits] == _expected("bathroom", ("bed", "sink"), any_of)
