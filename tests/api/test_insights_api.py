"""Listing photo insights through the REST API: each photo's room type, quality and duplicates on other listings,
the suggested tour, the catalog's duplicate clusters and search by room, with what each caller may learn.

Photos are generated (a dark room, a near-copy made by resizing and re-encoding at JPEG quality 60), uploaded
through the API and analysed by the worker on the tiny detector, as in production.
"""

from __future__ import annotations

import pytest
from api_helpers import HEADERS
from insight_photos import Catalog, build_catalog, key_headers

from roomscan.insights.rooms import default_room_types

ROOM_SLUGS = set(default_room_types().slugs)
_h = key_headers


@pytest.fixture
def catalog(client, services, hosts) -> Catalog:  # type: ignore[no-untyped-def]
    def settle(listing_ids: list[int]) -> None:
        assert services.worker.run_until_idle().done == 5

    return build_catalog(client, hosts, settle)


def _insights(client, listing_id: int, key: str | None = None, **params):  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/listings/{listing_id}/insights", headers=_h(key), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_photo_has_its_room_quality_and_the_listing_a_tour(client, catalog):
    body = _insights(client, catalog.sea)
    assert body["listing_id"] == catalog.sea and body["max_distance"] == 8
    photos = body["photos"]
    assert [p["photo_id"] for p in photos] == [catalog.living, catalog.dark, catalog.bedroom]
    assert [p["filename"] for p in photos] == ["living.jpg", "dark.jpg", "bedroom.jpg"]
    for p in photos:
        room = p["room"]
        assert set(room["scores"]) == ROOM_SLUGS and abs(sum(room["scores"].values()) - 1) < 1e-3
        assert room["best"] == max(room["scores"], key=room["scores"].get)
        assert room["probability"] == pytest.approx(room["scores"][room["best"]], abs=1e-4)
        assert room["name"] == default_room_types()[room["best"]].name
        assert room["source"]
        assert 0 <= p["quality"]["score"] <= 100
    # The dark photo says why, in words a host can act on, and is a problem: it may not lead the listing.
    dark = photos[1]["quality"]
    too_dark = [i for i in dark["issues"] if i["code"] == "too_dark"]
    assert len(too_dark) == 1 and too_dark[0]["severity"] == "problem"
    assert too_dark[0]["message"].startswith(f"too dark: brightness {dark['brightness']:.0f}/255")
    assert dark["brightness"] < 30 and dark["ok"] is False
    # The tour places every photo once, and the cover leads; the dark photo is not the cover.
    tour = body["tour"]
    assert sorted(tour["order"]) == sorted([catalog.living, catalog.dark, catalog.bedroom])
    assert body["left_out_of_tour"] == []
    assert tour["cover"] in tour["order"] and tour["cover"] != catalog.dark
    assert [s["photo_id"] for s in tour["stops"]] == tour["order"]
    # Grouped by room, the cover first among its room's photos.
    cover_room = next(s["room"] for s in tour["stops"] if s["photo_id"] == tour["cover"])
    assert next(s["photo_id"] for s in tour["stops"] if s["room"] == cover_room) == tour["cover"]
    rooms = [s["room"] for s in tour["stops"]]
    assert rooms == sorted(rooms, key=rooms.index)
    assert {s["room"] for s in tour["stops"]} <= ROOM_SLUGS
    for note in tour["notes"]:
        assert note["code"] in {"missing-room", "bedrooms-unshown", "claim-unshown", "no-photos"} and note["message"]
    shown = {p["room"]["best"] for p in photos}
    assert ("bathroom" not in shown) == any(n["message"] == "no bathroom photo" for n in tour["notes"])


def test_a_near_copy_on_another_listing_is_flagged_with_links_to_it(client, catalog):
    photos = {p["photo_id"]: p for p in _insights(client, catalog.sea)["photos"]}
    (dup,) = photos[catalog.living]["duplicates"]
    assert dup["listing_id"] == catalog.copy and dup["photo_id"] == catalog.copied
    assert dup["listing_title"] == "Copy flat" and 0 <= dup["distance"] <= 8
    assert dup["api_url"] == f"/api/v1/listings/{catalog.copy}" and dup["page_url"] == f"/listings/{catalog.copy}"
    assert client.get(dup["api_url"]).status_code == 200 and client.get(dup["page_url"]).status_code == 200
    assert photos[catalog.dark]["duplicates"] == []
    # And the other way round: the copier's listing points back at the original.
    (back,) = _insights(client, catalog.copy)["photos"][0]["duplicates"]
    assert back["listing_id"] == catalog.sea and back["photo_id"] == catalog.living
    assert _insights(client, catalog.sea, max_distance=3)["max_distance"] == 3


def test_duplicates_on_a_listing_the_caller_may_not_see_are_counted_never_linked(client, catalog):
    def bedroom(key: str | None) -> dict:  # type: ignore[type-arg]
        return {p["photo_id"]: p for p in _insights(client, catalog.sea, key)["photos"]}[catalog.bedroom]

    # Host a may not see host b's draft: told one listing she cannot see shares the picture, not which.
    mine = bedroom(catalog.keys["a"])
    assert mine["duplicates"] == [] and mine["hidden_duplicates"] == 1
    # A guest is told nothing about listings it may not see.
    guest = bedroom(None)
    assert guest["duplicates"] == [] and guest["hidden_duplicates"] is None
    assert "Secret draft" not in client.get(f"/api/v1/listings/{catalog.sea}/insights").text
    # The draft's owner and an admin get the link.
    for key in (catalog.keys["b"], HEADERS["X-API-Key"]):
        seen = bedroom(key)
        assert [d["listing_id"] for d in seen["duplicates"]] == [catalog.draft] and seen["hidden_duplicates"] == 0


def test_insights_of_a_listing_the_caller_may_not_see_are_404_as_if_missing(client, catalog):
    url = f"/api/v1/listings/{catalog.draft}/insights"
    for key in (None, catalog.keys["a"]):
        r = client.get(url, headers=_h(key))
        assert r.status_code == 404 and "does not exist" in r.json()["detail"], r.text
    assert client.get(url, headers=_h(catalog.keys["b"])).status_code == 200
    r = client.get("/api/v1/listings/999999/insights")
    assert r.status_code == 404 and "listing 999999 does not exist" in r.json()["detail"]
    assert client.get(url, headers={"X-API-Key": "rsk_nonsense"}).status_code == 401


@pytest.mark.parametrize("value", ["33", "-1", "eight", "1.5"])
@pytest.mark.parametrize("path", ["/api/v1/listings/{sea}/insights", "/api/v1/photos/duplicates"])
def test_a_bad_max_distance_is_refused_naming_it(client, catalog, path, value):
    r = client.get(path.format(sea=catalog.sea), params={"max_distance": value})
    assert r.status_code == 422, r.text
    assert "max_distance" in r.json()["detail"]


def test_a_photo_reads_back_with_its_room_and_quality(client, catalog):
    body = client.get(f"/api/v1/photos/{catalog.dark}").json()
    assert body["room"]["best"] in ROOM_SLUGS and set(body["room"]["scores"]) == ROOM_SLUGS
    assert "too_dark" in {i["code"] for i in body["quality"]["issues"]}
    listed = {p["photo_id"]: p for p in _insights(client, catalog.sea)["photos"]}[catalog.dark]
    assert body["room"] == listed["room"] and body["quality"] == listed["quality"]
    # The draft's photo stays hidden, room and quality too.
    assert client.get(f"/api/v1/photos/{catalog.drafted}").status_code == 404


def _clusters(client, key: str | None = None, **params):  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/photos/duplicates", headers=_h(key), params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_duplicate_clusters_show_each_caller_only_what_it_may_see(client, catalog):
    def by_listings(body) -> dict[tuple[int, ...], dict]:  # type: ignore[no-untyped-def, type-arg]
        return {tuple(c["listing_ids"]): c for c in body["clusters"]}

    admin = by_listings(_clusters(client, HEADERS["X-API-Key"]))
    assert set(admin) == {(catalog.sea, catalog.copy), (catalog.sea, catalog.draft)}
    copied = admin[(catalog.sea, catalog.copy)]
    assert {p["photo_id"] for p in copied["photos"]} == {catalog.living, catalog.copied}
    refs = [ref for p in copied["photos"] for ref in p["listings"]]
    assert {(r["listing_id"], r["page_url"], r["api_url"]) for r in refs} == {
        (catalog.sea, f"/listings/{catalog.sea}", f"/api/v1/listings/{catalog.sea}"),
        (catalog.copy, f"/listings/{catalog.copy}", f"/api/v1/listings/{catalog.copy}"),
    }
    assert copied["hidden_listings"] == 0

    # Host a: her bedroom is also on a listing she may not see: counted, its photo and id left out.
    host = by_listings(_clusters(client, catalog.keys["a"]))
    assert set(host) == {(catalog.sea, catalog.copy), (catalog.sea,)}
    assert host[(catalog.sea,)]["hidden_listings"] == 1
    assert [p["photo_id"] for p in host[(catalog.sea,)]["photos"]] == [catalog.bedroom]

    # A guest sees only pictures shared by published listings, and no count of anything else.
    guest = _clusters(client)
    assert set(by_listings(guest)) == {(catalog.sea, catalog.copy)}
    assert guest["clusters"][0]["hidden_listings"] is None
    assert "Secret draft" not in client.get("/api/v1/photos/duplicates").text


def test_a_listing_unpublished_leaves_the_guests_clusters_at_once(client, catalog):
    assert len(_clusters(client)["clusters"]) == 1  # the answer is now reused for a while...
    for key in (catalog.keys["a"], HEADERS["X-API-Key"]):
        assert any(catalog.copy in c["listing_ids"] for c in _clusters(client, key)["clusters"])
    r = client.patch(f"/api/v1/listings/{catalog.copy}", json={"published": False}, headers=_h(catalog.keys["b"]))
    assert r.status_code == 200, r.text
    assert _clusters(client)["clusters"] == []  # ...but never past who may see what
    assert "Copy flat" not in client.get("/api/v1/photos/duplicates").text
    host = _clusters(client, catalog.keys["a"])["clusters"]
    assert all(catalog.copy not in c["listing_ids"] for c in host)
    r = client.patch(f"/api/v1/listings/{catalog.sea}", json={"title": "Sea flat, renamed"},
                     headers=_h(catalog.keys["a"]))
    assert "Sea flat, renamed" in client.get("/api/v1/photos/duplicates", headers=HEADERS).text


def test_duplicate_clusters_page_with_next_after(client, catalog):
    first = _clusters(client, HEADERS["X-API-Key"], limit=1)
    assert len(first["clusters"]) == 1 and first["next_after"] == first["clusters"][0]["photos"][0]["photo_id"]
    second = _clusters(client, HEADERS["X-API-Key"], limit=1, after=first["next_after"])
    assert len(second["clusters"]) == 1 and second["next_after"] is None
    assert first["clusters"][0] != second["clusters"][0]


def test_search_by_room_finds_listings_with_a_photo_of_that_room(client, catalog):
    rooms = {p["photo_id"]: p["room"]["best"] for p in _insights(client, catalog.sea)["photos"]}
    room = rooms[catalog.living]
    body = client.get("/api/v1/search", params={"room": room}).json()
    assert catalog.sea in [h["listing_id"] for h in body["hits"]]
    assert catalog.draft not in [h["listing_id"] for h in body["hits"]]  # unpublished: never searchable
    hit = next(h for h in body["hits"] if h["listing_id"] == catalog.sea)
    assert hit["room_score"] == pytest.approx(
        max(p["room"]["probability"] for p in _insights(client, catalog.sea)["photos"] if p["room"]["best"] == room),
        abs=1e-3,
    )
    # A room nobody's photos show finds nothing; with an amenity, both must hold.
    absent = sorted(ROOM_SLUGS - {p["room"]["best"] for lid in (catalog.sea, catalog.copy)
                                  for p in _insights(client, lid)["photos"]})
    if absent:
        assert client.get("/api/v1/search", params={"room": absent[0]}).json()["hits"] == []
    both = client.get("/api/v1/search", params={"room": room, "amenity": "bed"})
    assert both.status_code == 200, both.text


@pytest.mark.parametrize("room", ["attic", "Bathroom ", ""])
def test_search_by_an_unknown_room_is_refused_naming_the_room_types(client, room):
    r = client.get("/api/v1/search", params={"room": room})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "bathroom" in detail and "living-room" in detail


def test_search_still_needs_an_amenity_or_a_room(client):
    r = client.get("/api/v1/search")
    assert r.status_code == 422 and "room" in r.json()["detail"] and "amenity" in r.json()["detail"]
