"""Hosts change their listings: title and claims, photos and whole listings removed, and their verdict on what
the model reported. The roll-up (and so search) follows every change; the model's detections never change."""

from __future__ import annotations

import pytest
from api_helpers import HEADERS, jpeg, make_listing, upload


def _amenities(client, listing_id: int) -> dict:
    return client.get(f"/api/v1/listings/{listing_id}/amenities").json()


def _statuses(client, listing_id: int) -> dict[str, str]:
    return {a["slug"]: a["status"] for a in _amenities(client, listing_id)["amenities"]}


def _hits(client, **params) -> list[int]:
    return [h["listing_id"] for h in client.get("/api/v1/search", params=params).json()["hits"]]


@pytest.fixture
def detected(client, services):
    """A listing with one detected photo; returns (listing id, photo id, a seen amenity's slug)."""
    listing_id = make_listing(client, claimed=[])
    photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=31))).json()["photos"][0]["photo_id"]
    services.worker.run_until_idle()
    seen = [a["slug"] for a in _amenities(client, listing_id)["amenities"] if a["seen"]]
    assert seen
    return listing_id, photo_id, seen[0]


def test_edit_title_and_claims_with_names_and_synonyms(client):
    listing_id = make_listing(client, claimed=["bed"])
    r = client.patch(f"/api/v1/listings/{listing_id}", json={"title": "  New name ", "claimed_amenities": ["Oven", "sink"]},
                     headers=HEADERS)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "New name" and r.json()["claimed_amenities"] == ["oven", "sink"]
    assert _amenities(client, listing_id)["unverified"] == ["oven", "sink"]  # bed's claim withdrawn
    # Only the title: the claims stay.
    r = client.patch(f"/api/v1/listings/{listing_id}", json={"title": "Again"}, headers=HEADERS)
    assert r.json()["claimed_amenities"] == ["oven", "sink"]


@pytest.mark.parametrize(
    ("body", "message"),
    [({"title": "   "}, "non-empty title"), ({"claimed_amenities": ["sauna"]}, "unknown amenity 'sauna'"),
     ({"colour": "red"}, "colour")],
)
def test_a_bad_edit_changes_nothing(client, body, message):
    listing_id = make_listing(client, "Kept", claimed=["bed"])
    r = client.patch(f"/api/v1/listings/{listing_id}", json=body, headers=HEADERS)
    assert r.status_code == 422 and message in r.json()["detail"]
    after = client.get(f"/api/v1/listings/{listing_id}").json()
    assert after["title"] == "Kept" and after["claimed_amenities"] == ["bed"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/api/v1/listings/{id}"), ("DELETE", "/api/v1/listings/{id}"),
     ("DELETE", "/api/v1/listings/{id}/photos/1"), ("PUT", "/api/v1/listings/{id}/amenities/bed/decision"),
     ("DELETE", "/api/v1/listings/{id}/amenities/bed/decision")],
)
def test_every_write_needs_the_key(client, method, path):
    listing_id = make_listing(client)
    url = path.format(id=listing_id)
    json_body = {"decision": "confirmed"} if method == "PUT" else ({"title": "x"} if method == "PATCH" else None)
    assert client.request(method, url, json=json_body).status_code == 401
    assert client.request(method, url, json=json_body, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get(f"/api/v1/listings/{listing_id}").json()["title"] == "Villa"


def test_removing_the_evidence_photo_unsees_the_amenity_and_search_follows(client, services, detected):
    listing_id, photo_id, slug = detected
    assert _hits(client, amenity=slug) == [listing_id]
    sha = client.get(f"/api/v1/photos/{photo_id}").json()["sha256"]
    assert client.delete(f"/api/v1/listings/{listing_id}/photos/{photo_id}", headers=HEADERS).status_code == 204
    assert client.get(f"/api/v1/listings/{listing_id}").json()["photo_ids"] == []
    assert _hits(client, amenity=slug) == []
    # No other listing had it: the photo and its file are gone.
    assert client.get(f"/api/v1/photos/{photo_id}").status_code == 404
    assert not services.photos.path(sha).exists()
    assert client.delete(f"/api/v1/listings/{listing_id}/photos/{photo_id}", headers=HEADERS).status_code == 404


def test_a_photo_shared_with_another_listing_stays_there(client, services, detected):
    listing_id, photo_id, slug = detected
    data = client.get(f"/api/v1/photos/{photo_id}/image").content
    other = make_listing(client, "Other", claimed=[])
    upload(client, other, ("same.jpg", data))
    client.delete(f"/api/v1/listings/{listing_id}/photos/{photo_id}", headers=HEADERS)
    assert _hits(client, amenity=slug) == [other]
    assert client.get(f"/api/v1/photos/{photo_id}/image").content == data


def test_delete_a_listing(client, services, detected):
    listing_id, photo_id, slug = detected
    assert client.delete(f"/api/v1/listings/{listing_id}", headers=HEADERS).status_code == 204
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 404
    assert _hits(client, amenity=slug) == []
    assert client.get(f"/api/v1/photos/{photo_id}").status_code == 404
    assert client.delete(f"/api/v1/listings/{listing_id}", headers=HEADERS).status_code == 404


def test_host_rejects_a_reported_amenity_beside_the_models_output(client, services, detected):
    listing_id, photo_id, slug = detected
    before = client.get(f"/api/v1/photos/{photo_id}").json()["detections"]
    r = client.put(f"/api/v1/listings/{listing_id}/amenities/{slug}/decision", json={"decision": "rejected"},
                   headers=HEADERS)
    assert r.status_code == 200, r.text
    row = next(a for a in r.json()["amenities"] if a["slug"] == slug)
    assert row["status"] == "rejected" and row["decision"] == "rejected" and not row["seen"]
    assert row["evidence"], "the model's boxes are kept beside the decision"
    assert slug in r.json()["rejected"]
    assert client.get(f"/api/v1/photos/{photo_id}").json()["detections"] == before  # never over the model's output
    assert _hits(client, amenity=slug) == []  # search reads the decision
    # Undo: the model's report stands alone again.
    r = client.delete(f"/api/v1/listings/{listing_id}/amenities/{slug}/decision", headers=HEADERS)
    assert _statuses(client, listing_id)[slug] == "discovered" and _hits(client, amenity=slug) == [listing_id]


def test_host_confirms_a_reported_amenity_and_confirmed_only_search_finds_it(client, detected):
    listing_id, _, slug = detected
    assert _hits(client, amenity=slug, confirmed_only="true") == []  # discovered, not claimed
    r = client.put(f"/api/v1/listings/{listing_id}/amenities/{slug}/decision", json={"decision": "confirmed"},
                   headers=HEADERS)
    row = next(a for a in r.json()["amenities"] if a["slug"] == slug)
    assert row["status"] == "confirmed" and row["decision"] == "confirmed"
    assert _hits(client, amenity=slug, confirmed_only="true") == [listing_id]


@pytest.mark.parametrize(
    ("amenity", "body", "message"),
    [("sauna", {"decision": "confirmed"}, "unknown amenity"),
     ("bed", {"decision": "maybe"}, "decision"),
     ("bed", {}, "decision")],
)
def test_bad_decisions_are_422(client, detected, amenity, body, message):
    listing_id, _, _ = detected
    r = client.put(f"/api/v1/listings/{listing_id}/amenities/{amenity}/decision", json=body, headers=HEADERS)
    assert r.status_code == 422 and message in r.json()["detail"]


def test_a_decision_needs_something_the_model_reported(client):
    listing_id = make_listing(client, claimed=["bed"])  # claimed, no photo
    r = client.put(f"/api/v1/listings/{listing_id}/amenities/bed/decision", json={"decision": "confirmed"},
                   headers=HEADERS)
    assert r.status_code == 422 and "no photo" in r.json()["detail"]
    assert _statuses(client, listing_id)["bed"] == "unverified"
