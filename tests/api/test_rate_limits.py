"""Rate limits per key on writes and, apart, on uploads (429 with ``Retry-After``; admins exempt), and the host's
photo quota (403 naming the quota and the count; the upload is refused whole)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from api_helpers import HEADERS, jpeg, make_listing, upload
from fastapi.testclient import TestClient

from roomscan import auth
from roomscan.api import create_app
from roomscan.catalog import audit
from roomscan.catalog.models import Role
from roomscan.errors import RoomscanError
from roomscan.services import open_services
from roomscan.settings import Settings


@pytest.fixture
def tight(settings, api_detector) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A server allowing 3 writes and 2 uploads a minute per key, a photo quota of 3, and two hosts' keys."""
    built = open_services(replace(settings, write_rate="3/minute", upload_rate="2/minute", host_photo_quota=3),
                          detector=api_detector)
    keys = {}
    with built.sessions() as session, session.begin():
        for name in ("a", "b"):
            keys[name] = auth.create_key(session, auth.create_user(session, f"host-{name}", Role.HOST))
    with TestClient(create_app(services=built, start_worker=False)) as client:
        client.services = built  # type: ignore[attr-defined]
        yield client, keys
    built.close()


def _create(client: TestClient, key: str):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/listings", json={"title": "Flat"}, headers={"X-API-Key": key})


def test_writes_beyond_the_rate_are_refused_429_with_retry_after(tight):
    client, keys = tight
    assert [_create(client, keys["a"]).status_code for _ in range(3)] == [201] * 3
    r = _create(client, keys["a"])
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    detail = r.json()["detail"]
    assert "too many writes" in detail and "3 per minute" in detail and "ROOMSCAN_WRITE_RATE" in detail
    assert auth.key_prefix(keys["a"]) in detail
    # Another key is counted on its own; reads are never limited.
    assert _create(client, keys["b"]).status_code == 201
    assert client.get("/api/v1/listings").status_code == 200
    # The refusal is in the audit log.
    with client.services.sessions() as session:  # type: ignore[attr-defined]
        entry = audit.list_entries(session, limit=10).entries[1]
    assert (entry.action, entry.status) == ("POST /api/v1/listings", 429)


def test_uploads_are_counted_apart_from_other_writes(tight):
    client, keys = tight
    h = {"X-API-Key": keys["a"]}
    listing_id = _create(client, keys["a"]).json()["id"]
    assert upload(client, listing_id, ("a.jpg", jpeg(seed=1)), headers=h).status_code == 202
    assert upload(client, listing_id, ("b.jpg", jpeg(seed=2)), headers=h).status_code == 202
    r = upload(client, listing_id, ("c.jpg", jpeg(seed=3)), headers=h)
    assert r.status_code == 429 and "too many uploads" in r.json()["detail"] and "Retry-After" in r.headers
    # Two writes left: the uploads did not use them.
    assert client.patch(f"/api/v1/listings/{listing_id}", json={"title": "x"}, headers=h).status_code == 200
    assert _create(client, keys["a"]).status_code == 201
    assert _create(client, keys["a"]).status_code == 429


def test_admins_and_refused_keys_are_not_counted(tight):
    client, _ = tight
    assert all(_create(client, HEADERS["X-API-Key"]).status_code == 201 for _ in range(5))
    assert all(client.post("/api/v1/listings", json={"title": "x"}).status_code == 401 for _ in range(5))


def test_a_host_past_the_photo_quota_is_refused_whole(tight):
    client, keys = tight
    h = {"X-API-Key": keys["b"]}
    first = _create(client, keys["b"]).json()["id"]
    assert upload(client, first, ("a.jpg", jpeg(seed=1)), ("b.jpg", jpeg(seed=2)), headers=h).status_code == 202
    r = upload(client, first, ("c.jpg", jpeg(seed=3)), ("d.jpg", jpeg(seed=4)), headers=h)
    assert r.status_code == 403
    assert "have 2 photos, 2 more would pass the quota of 3" in r.json()["detail"]
    assert len(client.get(f"/api/v1/listings/{first}").json()["photo_ids"]) == 2  # nothing of it was stored
    assert upload(client, first, ("c.jpg", jpeg(seed=3)), headers=h).status_code == 429  # the upload rate now
    # Admins' listings have no quota.
    admin_listing = make_listing(client)
    assert upload(client, admin_listing, *[(f"{i}.jpg", jpeg(seed=10 + i)) for i in range(4)]).status_code == 202


@pytest.mark.parametrize("rate", ["bogus", "0/minute", "5/fortnight", ""])
def test_a_bad_rate_setting_is_a_clear_error(rate):
    if not rate:
        assert Settings(write_rate="10 per second").write_rate == "10 per second"
        return
    with pytest.raises(RoomscanError, match="ROOMSCAN_UPLOAD_RATE must be a rate like 120/minute"):
        Settings(upload_rate=rate)


def test_rates_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROOMSCAN_WRITE_RATE", "5/second")
    monkeypatch.setenv("ROOMSCAN_HOST_PHOTO_QUOTA", "7")
    settings = Settings.from_env()
    assert (settings.write_rate, settings.upload_rate, settings.host_photo_quota) == ("5/second", "30/minute", 7)
    monkeypatch.setenv("ROOMSCAN_HOST_PHOTO_QUOTA", "none")
    with pytest.raises(RoomscanError, match="ROOMSCAN_HOST_PHOTO_QUOTA"):
        Settings.from_env()


def test_an_unusable_rate_limit_storage_stops_start_up_naming_the_setting():
    import pytest

    from roomscan.api.ratelimit import RateLimits
    from roomscan.errors import RoomscanError

    for uri in ("bogus://somewhere", "memcached://127.0.0.1:1"):  # unknown scheme; pymemcache not installed
        with pytest.raises(RoomscanError, match="ROOMSCAN_RATE_LIMIT_STORAGE"):
            RateLimits("5/minute", "5/minute", storage=uri)


def test_requests_pass_while_the_rate_limit_storage_does_not_answer(caplog):
    from roomscan.api.ratelimit import RateLimits

    limits = RateLimits("1/minute", "1/minute")

    def down(*args, **kwargs):  # the shared storage (redis) is unreachable
        raise ConnectionError("connection refused")

    limits.limiter.test = down  # type: ignore[method-assign]
    limits.limiter.hit = down  # type: ignore[method-assign]
    for _ in range(3):
        assert limits.check("write", "key abc") is None
        limits.count("write", "key abc")
    assert [r.message for r in caplog.records].count(
        "rate-limit storage does not answer (connection refused); requests pass unlimited until it does") == 1
