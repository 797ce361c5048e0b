"""Who may change what, through the API and the page: hosts change only their own listings, admins any; a
revoked or unknown key is refused (401); a valid key without the right is refused (403); keys are stored only as
hashes. The cross-host check walks every write operation in ``/openapi.json``, so a new write endpoint cannot slip
past it."""

from __future__ import annotations

from api_helpers import HEADERS, jpeg, make_listing, upload
from sqlalchemy import select, text

from roomscan import auth
from roomscan.catalog.models import ApiKey, Listing, User


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _owned_listing(client, key: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """A listing made with ``key`` and one photo on it: ``(listing_id, photo_id)``."""
    r = client.post("/api/v1/listings", json={"title": "Flat", "claimed_amenities": ["bed"]}, headers=_h(key))
    assert r.status_code == 201, r.text
    listing_id = r.json()["id"]
    r = upload(client, listing_id, ("a.jpg", jpeg(seed=3)), headers=_h(key))
    assert r.status_code == 202, r.text
    return listing_id, r.json()["photos"][0]["photo_id"]


def test_a_listing_belongs_to_the_account_whose_key_made_it(client, services, hosts):
    listing_id, _ = _owned_listing(client, hosts["a"])
    with services.sessions() as session:
        owner = session.scalar(select(User.name).join(Listing, Listing.owner_id == User.id).where(Listing.id == listing_id))
    assert owner == "host-a"


# Every write operation of the API, with a request that would succeed for the listing's owner.
def _writes(listing_id: int, photo_id: int) -> dict[tuple[str, str], dict]:
    return {
        ("PATCH", "/api/v1/listings/{listing_id}"): {"json": {"title": "Mine now"}},
        ("DELETE", "/api/v1/listings/{listing_id}"): {},
        ("POST", "/api/v1/listings/{listing_id}/photos"): {"files": [("files", ("b.jpg", jpeg(seed=9), "image/jpeg"))]},
        ("DELETE", "/api/v1/listings/{listing_id}/photos/{photo_id}"): {},
        ("PUT", "/api/v1/listings/{listing_id}/amenities/{amenity}/decision"): {"json": {"decision": "rejected"}},
        ("DELETE", "/api/v1/listings/{listing_id}/amenities/{amenity}/decision"): {},
    }


def _url(template: str, listing_id: int, photo_id: int) -> str:
    return template.format(listing_id=listing_id, photo_id=photo_id, amenity="bed")


def test_every_write_on_another_hosts_listing_is_refused_and_changes_nothing(client, services, hosts):
    listing_id, photo_id = _owned_listing(client, hosts["a"])
    schema = client.get("/openapi.json").json()
    per_listing = {
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method in ops
        if method in ("post", "put", "patch", "delete") and "{listing_id}" in path
    }
    writes = _writes(listing_id, photo_id)
    assert per_listing == set(writes), "a write operation on a listing is not covered by this test"
    before = client.get(f"/api/v1/listings/{listing_id}").json()
    for (method, template), kwargs in writes.items():
        r = client.request(method, _url(template, listing_id, photo_id), headers=_h(hosts["b"]), **kwargs)
        assert r.status_code == 403, (method, template, r.status_code, r.text)
        assert "belongs to another host" in r.json()["detail"]
    assert client.get(f"/api/v1/listings/{listing_id}").json() == before


def test_the_owner_and_an_admin_may_change_it(client, hosts):
    listing_id, photo_id = _owned_listing(client, hosts["a"])
    assert client.patch(f"/api/v1/listings/{listing_id}", json={"title": "Renamed"}, headers=_h(hosts["a"])).status_code == 200
    r = client.delete(f"/api/v1/listings/{listing_id}/photos/{photo_id}", headers=HEADERS)  # the bootstrap admin
    assert r.status_code == 204
    assert client.delete(f"/api/v1/listings/{listing_id}", headers=_h(hosts["a"])).status_code == 204


def test_a_host_may_not_touch_listings_made_before_accounts(client, hosts):
    listing_id = make_listing(client)  # made with the bootstrap key: the admin owns it
    r = client.patch(f"/api/v1/listings/{listing_id}", json={"title": "x"}, headers=_h(hosts["a"]))
    assert r.status_code == 403


def test_reads_stay_public(client, hosts):
    listing_id, photo_id = _owned_listing(client, hosts["a"])
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200
    assert client.get(f"/api/v1/listings/{listing_id}/amenities").status_code == 200
    assert client.get(f"/api/v1/photos/{photo_id}/image").status_code == 200


def test_a_revoked_or_unknown_key_is_refused_401(client, services, hosts):
    assert client.post("/api/v1/listings", json={"title": "x"}, headers=_h(hosts["a"])).status_code == 201
    with services.sessions() as session, session.begin():
        auth.revoke_key(session, auth.key_prefix(hosts["a"]))
    r = client.post("/api/v1/listings", json={"title": "x"}, headers=_h(hosts["a"]))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    forged = hosts["b"][:-4] + "AAAA"  # a right prefix, a wrong secret
    r = client.post("/api/v1/listings", json={"title": "x"}, headers=_h(forged))
    assert r.status_code == 401 and r.json()["detail"] == "unknown API key"


def test_keys_are_stored_only_as_hashes(services, hosts):
    with services.sessions() as session:
        dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM api_keys")).all() for v in row)
        rows = session.scalars(select(ApiKey)).all()
    for key in hosts.values():
        assert key not in dump and key[12:] not in dump
    assert {r.key_hash for r in rows} == {auth.hash_key(k) for k in hosts.values()}
    assert {r.prefix for r in rows} == {auth.key_prefix(k) for k in hosts.values()}


def test_the_page_refuses_another_hosts_edit_with_403(client, hosts):
    listing_id, _ = _owned_listing(client, hosts["a"])
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "Taken", "api_key": hosts["b"]})
    assert r.status_code == 403 and "belongs to another host" in r.text
    r = client.post(f"/listings/{listing_id}/delete", data={"api_key": hosts["b"]})
    assert r.status_code == 403
    assert client.get(f"/api/v1/listings/{listing_id}").json()["title"] == "Flat"
