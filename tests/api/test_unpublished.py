"""Unpublished listings: seen only by their owner and admins, through the API and the page; to everyone else they
do not exist (404, worded as for a missing listing, never 403: refusing would reveal them), and search never finds
them. Publishing puts a listing back."""

from __future__ import annotations

import pytest
from api_helpers import API_KEY, HEADERS, jpeg, set_detections, upload
from page_helpers import sign_in
from sqlalchemy import event

from roomscan import auth
from roomscan.catalog import store
from roomscan.errors import NotFoundError


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _hidden_listing(client, services, key: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """An unpublished listing made with ``key``, with a photo showing an oven: ``(listing_id, photo_id)``."""
    r = client.post("/api/v1/listings", json={"title": "Secret loft", "claimed_amenities": ["oven"],
                                              "published": False}, headers=_h(key))
    assert r.status_code == 201, r.text
    assert r.json()["published"] is False
    listing_id = r.json()["id"]
    r = upload(client, listing_id, ("a.jpg", jpeg(seed=11)), headers=_h(key))
    assert r.status_code == 202, r.text
    photo_id = r.json()["photos"][0]["photo_id"]
    set_detections(services, listing_id, photo_id, [("oven", 0.9, (5, 5, 40, 30))])
    return listing_id, photo_id


READS = ("/api/v1/listings/{l}", "/api/v1/listings/{l}/amenities", "/api/v1/photos/{p}", "/api/v1/photos/{p}/image",
         "/api/v1/photos/{p}/annotated")


def test_an_unpublished_listing_is_404_to_guests_and_other_hosts_as_if_missing(client, services, hosts):
    listing_id, photo_id = _hidden_listing(client, services, hosts["a"])
    missing = {"listing": client.get("/api/v1/listings/999999").json()["detail"]}
    for template in READS:
        url = template.format(l=listing_id, p=photo_id)
        for headers in ({}, _h(hosts["b"])):
            r = client.get(url, headers=headers)
            assert r.status_code == 404, (url, headers, r.text)
            assert "does not exist" in r.json()["detail"]
        # Its owner and an admin see it.
        assert client.get(url, headers=_h(hosts["a"])).status_code == 200, url
        assert client.get(url, headers=HEADERS).status_code == 200, url
    assert client.get(f"/api/v1/listings/{listing_id}").json()["detail"] == missing["listing"].replace(
        "999999", str(listing_id))


def test_another_hosts_writes_to_an_unpublished_listing_are_404_not_403(client, services, hosts):
    listing_id, photo_id = _hidden_listing(client, services, hosts["a"])
    b = _h(hosts["b"])
    writes = [
        client.patch(f"/api/v1/listings/{listing_id}", json={"title": "Mine"}, headers=b),
        client.put(f"/api/v1/listings/{listing_id}/amenities/oven/decision", json={"decision": "rejected"}, headers=b),
        client.delete(f"/api/v1/listings/{listing_id}/photos/{photo_id}", headers=b),
        upload(client, listing_id, ("b.jpg", jpeg(seed=12)), headers=b),
        client.delete(f"/api/v1/listings/{listing_id}", headers=b),
    ]
    assert [r.status_code for r in writes] == [404] * len(writes)
    body = client.get(f"/api/v1/listings/{listing_id}", headers=_h(hosts["a"])).json()
    assert body["title"] == "Secret loft" and body["photo_ids"] == [photo_id]
    # A published listing of another host is still a plain 403: its existence is public anyway.
    assert client.patch(f"/api/v1/listings/{listing_id}", json={"published": True}, headers=_h(hosts["a"])).json()[
        "published"] is True
    assert client.patch(f"/api/v1/listings/{listing_id}", json={"title": "Mine"}, headers=b).status_code == 403


def test_search_and_the_listing_index_leave_unpublished_listings_out_until_published(client, services, hosts):
    listing_id, _ = _hidden_listing(client, services, hosts["a"])

    def found() -> list[int]:
        return [h["listing_id"] for h in client.get("/api/v1/search", params={"amenity": "oven"}).json()["hits"]]

    def listed(headers) -> list[int]:  # type: ignore[no-untyped-def]
        return [x["id"] for x in client.get("/api/v1/listings", headers=headers).json()["listings"]]

    assert found() == []
    assert listing_id not in listed({}) and listing_id not in listed(_h(hosts["b"]))
    assert listing_id in listed(_h(hosts["a"])) and listing_id in listed(HEADERS)
    r = client.patch(f"/api/v1/listings/{listing_id}", json={"published": True}, headers=_h(hosts["a"]))
    assert r.status_code == 200 and r.json()["published"] is True
    assert found() == [listing_id] and listing_id in listed({})
    # Unpublishing takes it out of search at once (its searchable rows go; its detections stay).
    client.patch(f"/api/v1/listings/{listing_id}", json={"published": False}, headers=_h(hosts["a"]))
    assert found() == []
    with services.sessions() as session:
        listing = store.get_listing(session, listing_id)
        summary = store.listing_amenities(session, listing, services.model_id, services.taxonomy)
    assert [a.slug for a in summary.amenities if a.seen] == ["oven"]


def test_a_photo_shared_with_a_published_listing_stays_visible(client, services, hosts):
    listing_id, photo_id = _hidden_listing(client, services, hosts["a"])
    assert client.get(f"/api/v1/photos/{photo_id}/image").status_code == 404
    r = client.post("/api/v1/listings", json={"title": "Open"}, headers=_h(hosts["b"]))
    upload(client, r.json()["id"], ("same.jpg", jpeg(seed=11)), headers=_h(hosts["b"]))
    r = client.get(f"/api/v1/photos/{photo_id}/image")
    assert r.status_code == 200 and r.headers["cache-control"].startswith("public")
    # While only its owner may see it, no shared cache may keep it.
    other, other_photo = _hidden_listing(client, services, hosts["a"])
    r = upload(client, other, ("c.jpg", jpeg(seed=13)), headers=_h(hosts["a"]))
    hidden_photo = r.json()["photos"][0]["photo_id"]
    r = client.get(f"/api/v1/photos/{hidden_photo}/image", headers=_h(hosts["a"]))
    assert r.status_code == 200 and r.headers["cache-control"].startswith("private")


@pytest.mark.parametrize("published", [False, True])
def test_photo_bytes_reach_only_who_may_see_them_and_shared_caches_keep_only_public_ones(
    client, services, hosts, published
):
    listing_id, photo_id = _hidden_listing(client, services, hosts["a"])
    if published:
        r = client.patch(f"/api/v1/listings/{listing_id}", json={"published": True}, headers=_h(hosts["a"]))
        assert r.status_code == 200, r.text
    for viewer, key in (("guest", None), ("other host", hosts["b"]), ("owner", hosts["a"]), ("admin", API_KEY)):
        sees = published or viewer in ("owner", "admin")
        client.post("/signout")
        client.headers.pop("X-CSRF-Token", None)
        if key:
            sign_in(client, key)
        for r in (client.get(f"/api/v1/photos/{photo_id}/image", headers=_h(key) if key else {}),
                  client.get(f"/photos/{photo_id}/160.jpg")):
            assert r.status_code == (200 if sees else 404), (viewer, r.url, r.text)
            if sees:
                scope = r.headers["cache-control"].split(",")[0]
                assert scope == ("public" if published else "private"), (viewer, r.url)
                assert "immutable" in r.headers["cache-control"]
            else:
                assert "does not exist" in r.text


def test_whether_one_may_see_a_photo_and_whether_caches_may_keep_it_is_one_query(client, services, hosts):
    _, photo_id = _hidden_listing(client, services, hosts["a"])
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    with services.sessions() as session:
        owner, other = (auth.authenticate(session, hosts[k]) for k in ("a", "b"))
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", record)
        try:
            assert auth.require_see_photo(session, owner, photo_id) is False  # visible to her, not public
            assert len(statements) == 1, statements
            with pytest.raises(NotFoundError, match="does not exist"):
                auth.require_see_photo(session, other, photo_id)
        finally:
            event.remove(engine, "before_cursor_execute", record)


def test_a_bad_key_on_a_read_is_401_not_a_guest_read(client, services):
    assert client.get("/api/v1/listings", headers={"X-API-Key": "rsk_nonsense"}).status_code == 401


def test_the_page_shows_an_unpublished_listing_only_to_its_owner(client, services, hosts):
    listing_id, photo_id = _hidden_listing(client, services, hosts["a"])
    for url in (f"/listings/{listing_id}", f"/photos/{photo_id}", f"/photos/{photo_id}/160.jpg"):
        assert client.get(url).status_code == 404, url
    assert "Secret loft" not in client.get("/").text
    sign_in(client, hosts["b"])
    assert client.get(f"/listings/{listing_id}").status_code == 404
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "Taken"})
    assert r.status_code == 404 and "Secret loft" not in r.text
    client.post("/signout")
    sign_in(client, hosts["a"])
    page = client.get(f"/listings/{listing_id}")
    assert page.status_code == 200 and 'id="unpublished"' in page.text
    assert client.get(f"/photos/{photo_id}/160.jpg").status_code == 200
    assert "Secret loft" in client.get("/").text
    # The owner publishes it from the edit form; guests see it then.
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "Secret loft", "claimed": ["oven"],
                                                          "visibility": "published"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    client.post("/signout")
    page = client.get(f"/listings/{listing_id}")
    assert page.status_code == 200 and 'id="unpublished"' not in page.text


def test_the_page_creates_an_unpublished_listing(client, services, hosts):
    sign_in(client, hosts["a"])
    r = client.post("/listings", data={"title": "Draft", "visibility": "unpublished"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    listing_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 404
    r = client.post("/listings", data={"title": "Odd", "visibility": "sideways"})
    assert r.status_code == 422 and "visibility must be published or unpublished" in r.text
