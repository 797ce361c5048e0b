from __future__ import annotations

import pytest
from api_helpers import HEADERS, jpeg, make_listing, upload


def test_create_and_read_listing(client):
    listing_id = make_listing(client, "Sea view", ["Bed", "oven"])
    body = client.get(f"/api/v1/listings/{listing_id}").json()
    assert body["title"] == "Sea view"
    assert body["claimed_amenities"] == ["bed", "oven"]  # names resolved to slugs
    assert body["photo_ids"] == []
    listed = client.get("/api/v1/listings").json()["listings"]
    assert [x["id"] for x in listed] == [listing_id]


def test_new_listing_claims_start_unverified_and_state_is_complete(client):
    listing_id = make_listing(client, claimed=["bed"])
    body = client.get(f"/api/v1/listings/{listing_id}/amenities").json()
    assert body["processing"]["state"] == "complete" and body["processing"]["total"] == 0
    assert body["unverified"] == ["bed"] and body["confirmed"] == [] and body["discovered"] == []


def test_upload_then_worker_then_amenities_with_evidence(client, services):
    listing_id = make_listing(client, claimed=["bed", "sink"])
    r = upload(client, listing_id, ("a.jpg", jpeg(seed=1)), ("b.jpg", jpeg(seed=2)))
    assert r.status_code == 202, r.text
    photos = r.json()["photos"]
    assert [p["job_state"] for p in photos] == ["pending", "pending"]

    pending = client.get(f"/api/v1/listings/{listing_id}/amenities").json()
    assert pending["processing"] == {"state": "processing", "total": 2, "pending": 2, "running": 0, "done": 0, "failed": 0}

    services.worker.run_until_idle()
    body = client.get(f"/api/v1/listings/{listing_id}/amenities").json()
    assert body["processing"]["state"] == "complete" and body["processing"]["done"] == 2
    assert body["model"] == services.detector.info.key
    seen = [a for a in body["amenities"] if a["seen"]]
    assert seen, "thresholds are 0: the tiny model must report amenities"
    photo_ids = {p["photo_id"] for p in photos}
    for amenity in seen:
        assert amenity["status"] in ("confirmed", "discovered")
        assert amenity["evidence"] and {e["photo_id"] for e in amenity["evidence"]} <= photo_ids
        assert amenity["score"] == max(e["score"] for e in amenity["evidence"])
    statuses = {a["slug"]: a["status"] for a in body["amenities"]}
    for slug in ("bed", "sink"):
        assert statuses[slug] in ("confirmed", "unverified")


def test_photo_detail_original_and_annotated_image(client, services):
    listing_id = make_listing(client)
    data = jpeg(seed=3)
    photo_id = upload(client, listing_id, ("k.jpg", data)).json()["photos"][0]["photo_id"]
    services.worker.run_until_idle()
    detail = client.get(f"/api/v1/photos/{photo_id}").json()
    assert detail["job_state"] == "done" and (detail["width"], detail["height"]) == (96, 64)
    assert all(len(d["box"]) == 4 for d in detail["detections"])
    original = client.get(f"/api/v1/photos/{photo_id}/image")
    assert original.content == data and original.headers["content-type"] == "image/jpeg"
    annotated = client.get(f"/api/v1/photos/{photo_id}/annotated")
    assert annotated.status_code == 200 and annotated.content[:3] == b"\xff\xd8\xff"


def test_same_photo_twice_is_idempotent(client, services):
    listing_id = make_listing(client)
    data = jpeg(seed=4)
    first = upload(client, listing_id, ("a.jpg", data)).json()["photos"][0]
    second = upload(client, listing_id, ("renamed.jpg", data)).json()["photos"][0]
    assert first["duplicate"] is False and first["already_on_listing"] is False
    assert second["photo_id"] == first["photo_id"] and second["duplicate"] is True
    assert second["already_on_listing"] is True
    assert client.get(f"/api/v1/listings/{listing_id}").json()["photo_ids"] == [first["photo_id"]]
    assert services.worker.pending_count() == 1  # one job, not two
    # The same bytes on another listing share storage and detections.
    other = make_listing(client, "Other")
    third = upload(client, other, ("c.jpg", data)).json()["photos"][0]
    assert third["photo_id"] == first["photo_id"] and third["duplicate"] is True  # the bytes were stored
    assert third["already_on_listing"] is False
    assert services.worker.pending_count() == 1


def test_search_finds_listing_by_an_amenity_it_has(client, services):
    listing_id = make_listing(client, claimed=[])
    upload(client, listing_id, ("a.jpg", jpeg(seed=5)))
    services.worker.run_until_idle()
    seen = [a["slug"] for a in client.get(f"/api/v1/listings/{listing_id}/amenities").json()["amenities"] if a["seen"]]
    r = client.get("/api/v1/search", params={"amenity": seen[0]})
    assert r.status_code == 200
    assert [h["listing_id"] for h in r.json()["hits"]] == [listing_id]
    assert seen[0] in r.json()["hits"][0]["amenities"]
    # confirmed-only: nothing was claimed, so nothing is confirmed.
    r = client.get("/api/v1/search", params={"amenity": seen[0], "confirmed_only": "true"})
    assert r.json()["hits"] == []


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/healthz"])
def test_health(client, path, services):
    body = client.get(path).json()
    assert body["status"] == "ok" and body["model"] == services.detector.info.key


def test_openapi_documents_the_versioned_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/v1/listings", "/api/v1/listings/{listing_id}", "/api/v1/listings/{listing_id}/photos",
              "/api/v1/listings/{listing_id}/amenities", "/api/v1/search", "/api/v1/photos/{photo_id}/annotated"):
        assert p in paths


def test_headers_constant_is_the_write_key(client):
    assert client.post("/api/v1/listings", json={"title": "x"}, headers=HEADERS).status_code == 201
