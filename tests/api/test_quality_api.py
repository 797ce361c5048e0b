"""``GET /api/v1/quality``: models' precision from hosts' decisions, for admins only; the same figures as
``roomscan.catalog.quality`` (and ``roomscan quality``)."""

from __future__ import annotations

import json

import pytest
from api_helpers import HEADERS, jpeg, make_listing, set_detections, upload

from roomscan.catalog.quality import quality_report

BOX = (2.0, 2.0, 40.0, 40.0)


@pytest.fixture
def decided(client, services):  # type: ignore[no-untyped-def]
    """Hosts decided through the API: bed 2 confirmed + 1 rejected (scores 0.9, 0.7, 0.5), sink 1 rejected."""
    rows = [("bed", 0.9, "confirmed"), ("bed", 0.7, "rejected"), ("bed", 0.5, "confirmed"), ("sink", 0.6, "rejected")]
    for i, (amenity, score, decision) in enumerate(rows):
        listing_id = make_listing(client, title=f"Flat {i}", claimed=())
        r = upload(client, listing_id, (f"{i}.jpg", jpeg(seed=i)))
        assert r.status_code == 202, r.text
        set_detections(services, listing_id, r.json()["photos"][0]["photo_id"], [(amenity, score, BOX)])
        r = client.put(f"/api/v1/listings/{listing_id}/amenities/{amenity}/decision", json={"decision": decision},
                       headers=HEADERS)
        assert r.status_code == 200, r.text


def test_admins_read_precision_per_amenity(client, services, decided):
    r = client.get("/api/v1/quality", params={"target_precision": 0.6}, headers=HEADERS)
    assert r.status_code == 200, r.text
    doc = r.json()
    (model,) = doc["models"]
    assert model["key"] == services.detector.info.key and model["taxonomy_matches"]
    bed, sink = model["amenities"]
    assert (bed["amenity"], bed["decisions"], bed["confirmed"], bed["rejected"]) == ("bed", 3, 2, 1)
    assert bed["precision"] == pytest.approx(2 / 3)
    assert (round(bed["low"], 3), round(bed["high"], 3)) == (0.208, 0.939)
    # >= 0.9: 1/1; >= 0.7: 1/2; >= 0.5: 2/3 >= 0.6: the lowest threshold is 0.5, keeping both confirmed
    assert bed["threshold"] == {"target": 0.6, "threshold": 0.5, "precision": pytest.approx(2 / 3),
                                "kept_confirmed": 2, "kept_cases": 3}
    assert bed["current_threshold"] == services.taxonomy["bed"].threshold
    assert (sink["decisions"], sink["threshold"]["threshold"]) == (1, None)
    assert model["total"]["decisions"] == 4 and len(doc["weeks"]) == 8
    assert bed["weekly"][-1]["decisions"] == 3  # decided just now: this week

    with services.sessions() as session:  # the same figures as the library's
        expected = quality_report(session, taxonomy=services.taxonomy, target_precision=0.6).to_dict()
    assert doc["models"] == json.loads(json.dumps(expected["models"]))


def test_query_narrows_the_report(client, services, decided):
    r = client.get("/api/v1/quality", params={"amenity": "Sink", "weeks": 2, "model": services.detector.info.key},
                   headers=HEADERS)
    assert r.status_code == 200, r.text
    (model,) = r.json()["models"]
    assert [a["amenity"] for a in model["amenities"]] == ["sink"] and len(model["total"]["weekly"]) == 2
    r = client.get("/api/v1/quality", params={"min_decisions": 2}, headers=HEADERS)
    assert [a["amenity"] for a in r.json()["models"][0]["amenities"]] == ["bed"]


def test_no_decisions_is_an_empty_report(client):
    r = client.get("/api/v1/quality", headers=HEADERS)
    assert r.status_code == 200
    assert r.json()["models"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model": "no-such-model"}, "no catalog model has a key containing 'no-such-model'"),
        ({"amenity": "helipad"}, "helipad"),
        ({"target_precision": 0}, "target_precision"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
    ],
)
def test_bad_queries_are_422_naming_the_problem(client, services, decided, params, message):
    r = client.get("/api/v1/quality", params=params, headers=HEADERS)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]


def test_only_admins_may_read_it(client, hosts):
    assert client.get("/api/v1/quality").status_code == 401
    assert client.get("/api/v1/quality", headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.get("/api/v1/quality", headers={"X-API-Key": hosts["a"]})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
