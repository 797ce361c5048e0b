"""A photo already in the catalog, attached to another listing, must reach that listing's roll-up and search at
once, through every entry point (API, page); the CLI's twin is in tests/cli/test_cli.py."""

from __future__ import annotations

from api_helpers import API_KEY, jpeg, make_listing, upload

from roomscan.catalog import store
from roomscan.catalog.models import Listing


def _seen(client, listing_id: int) -> list[str]:
    body = client.get(f"/api/v1/listings/{listing_id}/amenities").json()
    return [a["slug"] for a in body["amenities"] if a["seen"]]


def _search(client, slug: str) -> list[int]:
    return [h["listing_id"] for h in client.get("/api/v1/search", params={"amenity": slug}).json()["hits"]]


def test_a_photo_already_detected_reaches_a_new_listings_search_through_the_api(client, services):
    data = jpeg(seed=21)
    a = make_listing(client, "A", claimed=[])
    upload(client, a, ("pool.jpg", data))
    services.worker.run_until_idle()
    slug = _seen(client, a)[0]

    b = make_listing(client, "B", claimed=[])
    accepted = upload(client, b, ("same.jpg", data)).json()["photos"][0]
    assert accepted["duplicate"] is True and accepted["already_on_listing"] is False
    assert accepted["job_state"] == "done"
    # No worker ran in between: the upload itself rolled B up.
    assert _seen(client, b) == _seen(client, a)
    assert sorted(_search(client, slug)) == [a, b]


def test_the_same_through_the_page_form(client, services):
    data = jpeg(seed=22)
    a = make_listing(client, "A", claimed=[])
    upload(client, a, ("x.jpg", data))
    services.worker.run_until_idle()
    slug = _seen(client, a)[0]
    r = client.post("/listings", data={"title": "B from the page", "api_key": API_KEY}, follow_redirects=False)
    assert r.status_code == 303
    b = int(r.headers["location"].rsplit("/", 1)[1])
    r = client.post(f"/listings/{b}/photos", files=[("files", ("x.jpg", data, "image/jpeg"))],
                    data={"api_key": API_KEY}, follow_redirects=False)  # a form post signs itself in with the key
    assert r.status_code in (200, 303), r.text
    assert sorted(_search(client, slug)) == [a, b]


def test_a_photo_attached_while_its_detection_runs_is_marked_stale_until_rolled_up(client, services):
    # The race behind the bug: B attaches the photo while a worker is detecting it; that worker's refresh may
    # not see B's uncommitted attachment, so B is marked stale and a worker pass refreshes it whatever happens.
    data = jpeg(seed=23)
    a = make_listing(client, "A", claimed=[])
    upload(client, a, ("x.jpg", data))
    assert len(services.worker.claim(1)) == 1
    b = make_listing(client, "B", claimed=[])
    assert upload(client, b, ("x.jpg", data)).json()["photos"][0]["job_state"] == "running"
    with services.sessions() as session:
        assert session.get(Listing, b).rollup_stale
    with services.sessions() as session:
        from sqlalchemy import update

        from roomscan.catalog.models import PhotoJob

        session.execute(update(PhotoJob).values(leased_until=PhotoJob.created_at))
        session.commit()
    services.worker.run_until_idle()
    slug = _seen(client, a)[0]
    assert sorted(_search(client, slug)) == [a, b]
    with services.sessions() as session:
        assert not session.get(Listing, b).rollup_stale


def test_a_catalog_damaged_before_the_fix_is_repaired_by_the_worker(client, services):
    # Simulate the old bug's damage: B has a detected photo but an empty roll-up.
    data = jpeg(seed=24)
    a = make_listing(client, "A", claimed=[])
    upload(client, a, ("x.jpg", data))
    services.worker.run_until_idle()
    b = make_listing(client, "B", claimed=[])
    upload(client, b, ("x.jpg", data))
    with services.sessions() as session:
        from sqlalchemy import delete

        from roomscan.catalog.models import ListingAmenity

        session.execute(delete(ListingAmenity).where(ListingAmenity.listing_id == b))
        session.get(Listing, b).rollup_stale = True  # what migration 0002 marks on old catalogs
        session.commit()
    slug = _seen(client, a)[0]
    assert _search(client, slug) == [a]
    assert services.worker.run_until_idle().refreshed == 1
    assert sorted(_search(client, slug)) == [a, b]
    with services.sessions() as session:
        assert store.refresh_stale_listings(session, services.model_id, services.taxonomy) == 0
