"""A listing's declared bedroom count through the REST API and the page: created, read back, changed, cleared,
bounded (422), and checked against the photos by the tour's "2 bedrooms declared, 1 bedroom photo" note."""

from __future__ import annotations

import re

import pytest
from api_helpers import HEADERS, jpeg, upload
from page_helpers import sign_in

from roomscan.catalog import insights, store
from roomscan.insights.rooms import default_room_types, scores_from_amenities

BAD = [-1, 101, "2", 2.5, True]


def _create(client, **body) -> dict:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/listings", json={"title": "Flat", **body}, headers=HEADERS)
    assert r.status_code == 201, r.text
    return r.json()


def _patch(client, listing_id: int, **body):  # type: ignore[no-untyped-def]
    return client.patch(f"/api/v1/listings/{listing_id}", json=body, headers=HEADERS)


def test_the_count_is_stored_read_back_changed_and_cleared(client):
    listing = _create(client, bedrooms=2)
    assert listing["bedrooms"] == 2
    assert _create(client)["bedrooms"] is None  # none declared
    url = f"/api/v1/listings/{listing['id']}"
    assert client.get(url).json()["bedrooms"] == 2
    assert {x["id"]: x["bedrooms"] for x in client.get("/api/v1/listings").json()["listings"]}[listing["id"]] == 2
    assert _patch(client, listing["id"], title="Renamed").json()["bedrooms"] == 2  # left out: as it is
    assert _patch(client, listing["id"], bedrooms=0).json()["bedrooms"] == 0
    assert _patch(client, listing["id"], bedrooms=None).json()["bedrooms"] is None  # null: cleared
    assert client.get(url).json()["bedrooms"] is None


@pytest.mark.parametrize("bad", BAD)
def test_a_bad_count_is_a_422_naming_the_field_and_changes_nothing(client, bad):
    r = client.post("/api/v1/listings", json={"title": "Flat", "bedrooms": bad}, headers=HEADERS)
    assert r.status_code == 422 and "bedrooms" in r.json()["detail"]
    listing = _create(client, bedrooms=3)
    r = _patch(client, listing["id"], title="Renamed", bedrooms=bad)
    assert r.status_code == 422 and "bedrooms" in r.json()["detail"]
    assert [(x["title"], x["bedrooms"]) for x in client.get("/api/v1/listings").json()["listings"]] == [("Flat", 3)]


def test_the_openapi_schema_states_the_bounds(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("ListingCreate", "ListingUpdate"):
        count = next(s for s in schemas[name]["properties"]["bedrooms"]["anyOf"] if s.get("type") == "integer")
        assert (count["minimum"], count["maximum"]) == (0, 100), name


def test_fewer_bedroom_photos_than_declared_are_noted_in_the_insights_and_on_the_page(client, services):
    listing_id = _create(client, bedrooms=2, claimed_amenities=[])["id"]
    r = upload(client, listing_id, ("bed.jpg", jpeg(seed=1)), ("bath.jpg", jpeg(seed=2)))
    assert r.status_code == 202, r.text
    assert services.worker.run_until_idle().done == 2
    # The tiny model's room guesses are random: make one photo a bedroom and the other a bathroom.
    rooms = default_room_types()
    with services.sessions() as session:
        ids = {lp.filename: lp.photo_id for lp in store.get_listing(session, listing_id).photos}
        insights.save_room_scores(session, ids["bed.jpg"], services.model_id,
                                  scores_from_amenities([("bed", 0.9, "bedroom")], room_types=rooms))
        insights.save_room_scores(session, ids["bath.jpg"], services.model_id,
                                  scores_from_amenities([("toilet", 0.9, "bathroom")], room_types=rooms))
        session.commit()

    def notes() -> list[dict]:
        r = client.get(f"/api/v1/listings/{listing_id}/insights")
        assert r.status_code == 200, r.text
        return r.json()["tour"]["notes"]

    assert {"code": "bedrooms-unshown", "message": "2 bedrooms declared, 1 bedroom photo", "room": "bedroom",
            "amenity": None} in notes()
    page = client.get(f"/listings/{listing_id}").text
    assert '<p id="bedrooms-declared">2 bedrooms declared</p>' in page
    assert '<li data-code="bedrooms-unshown">2 bedrooms declared, 1 bedroom photo</li>' in page
    assert _patch(client, listing_id, bedrooms=1).status_code == 200
    assert notes() == []
    assert "Nothing missing: the photos show a bedroom photo for each declared bedroom, a bathroom" in client.get(
        f"/listings/{listing_id}").text
    # A studio (0 bedrooms) showing no bedroom is complete, and the page does not claim a bedroom photo.
    with services.sessions() as session:
        insights.save_room_scores(session, ids["bed.jpg"], services.model_id,
                                  scores_from_amenities([("toilet", 0.9, "bathroom")], room_types=rooms))
        session.commit()
    assert _patch(client, listing_id, bedrooms=0).status_code == 200
    assert notes() == []
    assert "Nothing missing: the photos show a bathroom and the room" in client.get(f"/listings/{listing_id}").text


def test_the_page_forms_create_edit_and_clear_the_count(client):
    sign_in(client)
    page = client.post("/listings", data={"title": "Loft", "bedrooms": "2"},
                       follow_redirects=False)
    assert page.status_code == 303, page.text
    listing_id = int(page.headers["location"].rsplit("/", 1)[1])
    api = f"/api/v1/listings/{listing_id}"
    assert client.get(api).json()["bedrooms"] == 2
    html = client.get(f"/listings/{listing_id}").text
    edit = html[html.index('id="edit-form"'):]
    assert re.search(r'name="bedrooms"[^>]*value="2"', edit)  # the edit form starts from the stored count
    assert client.post(f"/listings/{listing_id}/edit", data={"title": "Loft", "bedrooms": "3"},
                       follow_redirects=False).status_code == 303
    assert client.get(api).json()["bedrooms"] == 3
    # The edit form states the whole listing: an empty field declares no count.
    assert client.post(f"/listings/{listing_id}/edit", data={"title": "Loft", "bedrooms": ""},
                       follow_redirects=False).status_code == 303
    assert client.get(api).json()["bedrooms"] is None
    assert "bedrooms-declared" not in client.get(f"/listings/{listing_id}").text


@pytest.mark.parametrize("typed", ["-1", "101", "two", "2.5"])
def test_a_bad_count_on_the_page_is_refused_with_the_form_kept(client, typed):
    sign_in(client)
    r = client.post("/listings", data={"title": "Loft", "bedrooms": typed})
    assert r.status_code == 422 and "bedrooms must be a whole number from 0 to 100" in r.text
    assert re.search(rf'name="bedrooms"[^>]*value="{re.escape(typed)}"', r.text)  # what was typed, to correct
    assert client.get("/api/v1/listings").json()["listings"] == []
    listing_id = _create(client, bedrooms=1)["id"]
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "Renamed", "bedrooms": typed})
    assert r.status_code == 422 and "bedrooms must be a whole number from 0 to 100" in r.text
    assert "<details open>" in r.text
    assert [(x["title"], x["bedrooms"]) for x in client.get("/api/v1/listings").json()["listings"]] == [("Flat", 1)]
