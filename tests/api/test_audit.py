"""The audit log: every write through the API and the web page leaves one row (who, with which key, what, on what,
from where, how it ended), refused writes too; only admins read it (``GET /api/v1/audit``, ``roomscan audit``)."""

from __future__ import annotations

import json

import pytest
from api_helpers import API_KEY, HEADERS, jpeg, make_listing, upload
from fastapi.testclient import TestClient

from roomscan import auth
from roomscan.api import create_app
from roomscan.catalog import audit
from roomscan.catalog.models import Role


@pytest.fixture
def host_key(services) -> str:  # type: ignore[no-untyped-def]
    with services.sessions() as session, session.begin():
        return auth.create_key(session, auth.create_user(session, "host-a", Role.HOST))


def _entries(services) -> list[audit.AuditRecord]:  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        return audit.list_entries(session, limit=500).entries


def _last(services) -> audit.AuditRecord:  # type: ignore[no-untyped-def]
    return _entries(services)[0]


def test_each_api_write_is_recorded_with_who_what_where_and_outcome(client, services, host_key):
    h = {"X-API-Key": host_key}
    r = client.post("/api/v1/listings", json={"title": "Flat", "claimed_amenities": ["bed"]}, headers=h)
    assert r.status_code == 201
    listing_id = r.json()["id"]
    entry = _last(services)
    assert (entry.user_name, entry.key_prefix, entry.action, entry.target, entry.remote, entry.status) == (
        "host-a", auth.key_prefix(host_key), "POST /api/v1/listings", "/api/v1/listings", "testclient", 201)
    assert entry.user_id is not None and entry.detail.startswith("request ")

    steps = [
        (lambda: client.patch(f"/api/v1/listings/{listing_id}", json={"title": "Mine"}, headers=h),
         "PATCH /api/v1/listings/{listing_id}", f"/api/v1/listings/{listing_id}"),
        (lambda: upload(client, listing_id, ("a.jpg", jpeg(seed=1)), headers=h),
         "POST /api/v1/listings/{listing_id}/photos", f"/api/v1/listings/{listing_id}/photos"),
        (lambda: client.put(f"/api/v1/listings/{listing_id}/amenities/bed/decision", json={"decision": "rejected"},
                            headers=h),
         "PUT /api/v1/listings/{listing_id}/amenities/{amenity}/decision",
         f"/api/v1/listings/{listing_id}/amenities/bed/decision"),
        (lambda: client.delete(f"/api/v1/listings/{listing_id}", headers=h),
         "DELETE /api/v1/listings/{listing_id}", f"/api/v1/listings/{listing_id}"),
    ]
    for send, action, target in steps:
        r = send()  # the decision is refused 422 (no photo shows a bed yet): recorded all the same
        entry = _last(services)
        assert (entry.user_name, entry.action, entry.target, entry.status) == ("host-a", action, target, r.status_code)


def test_reads_are_not_recorded(client, services):
    listing_id = make_listing(client)
    before = len(_entries(services))
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200
    assert client.get("/api/v1/search", params={"amenity": "bed"}).status_code in (200, 422)
    assert len(_entries(services)) == before


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-API-Key": "rsk_not-a-real-key-at-all"}, 401)],
    ids=["no-key", "unknown-key"],
)
def test_refused_writes_are_recorded_without_a_user(client, services, headers, status):
    r = client.post("/api/v1/listings", json={"title": "Flat"}, headers=headers)
    assert r.status_code == status
    entry = _last(services)
    assert (entry.user_name, entry.key_prefix, entry.action, entry.status) == (None, None, "POST /api/v1/listings", status)


def test_another_hosts_listing_is_a_recorded_403(client, services, host_key):
    listing_id = make_listing(client)  # the bootstrap admin's
    r = client.patch(f"/api/v1/listings/{listing_id}", json={"title": "Mine"}, headers={"X-API-Key": host_key})
    assert r.status_code == 403
    entry = _last(services)
    assert (entry.user_name, entry.target, entry.status) == ("host-a", f"/api/v1/listings/{listing_id}", 403)


def test_page_form_posts_are_recorded(client, services):
    # The page's sign-in and forms are not this test's business: whatever the form answers, the POST is logged.
    r = client.post("/listings", data={"title": "Loft", "api_key": API_KEY}, follow_redirects=False)
    entry = _last(services)
    assert (entry.action, entry.target, entry.status, entry.remote) == (
        "POST /listings", "/listings", r.status_code, "testclient")
    listing_id = make_listing(client)
    r = client.post(f"/listings/{listing_id}/delete", data={"api_key": API_KEY}, follow_redirects=False)
    entry = _last(services)
    assert (entry.action, entry.target, entry.status) == (
        "POST /listings/{listing_id}/delete", f"/listings/{listing_id}/delete", r.status_code)


def test_an_audit_failure_never_breaks_the_write(services, monkeypatch):
    from roomscan.api import auditing

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("audit table gone")

    monkeypatch.setattr(auditing, "record", broken)
    with TestClient(create_app(services=services, start_worker=False)) as client:
        r = client.post("/api/v1/listings", json={"title": "Flat"}, headers=HEADERS)
    assert r.status_code == 201


def test_only_admins_read_the_audit_log(client, services, host_key):
    make_listing(client)
    assert client.get("/api/v1/audit").status_code == 401
    r = client.get("/api/v1/audit", headers={"X-API-Key": host_key})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = client.get("/api/v1/audit", headers=HEADERS)
    assert r.status_code == 200
    entry = r.json()["entries"][0]
    assert (entry["user"], entry["key_prefix"], entry["action"], entry["status"]) == (
        "admin", "bootstrap", "POST /api/v1/listings", 201)


def test_audit_log_pages_and_filters(client, services, host_key):
    for title in ("a", "b", "c"):
        assert client.post("/api/v1/listings", json={"title": title}, headers={"X-API-Key": host_key}).status_code == 201
    make_listing(client)  # the admin's
    first = client.get("/api/v1/audit", params={"user": "host-a", "limit": 2}, headers=HEADERS).json()
    assert [e["user"] for e in first["entries"]] == ["host-a", "host-a"] and first["next_before"]
    rest = client.get("/api/v1/audit", params={"user": "host-a", "limit": 2, "before": first["next_before"]},
                      headers=HEADERS).json()
    assert len(rest["entries"]) == 1 and rest["next_before"] is None
    ids = [e["id"] for e in first["entries"] + rest["entries"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    later = client.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}, headers=HEADERS).json()
    assert later["entries"] == []


def test_cli_prints_the_audit_log(client, services, settings, host_key, monkeypatch):
    from typer.testing import CliRunner

    from roomscan.cli import app

    assert client.post("/api/v1/listings", json={"title": "Flat"}, headers={"X-API-Key": host_key}).status_code == 201
    make_listing(client)
    monkeypatch.setenv("ROOMSCAN_HOME", str(settings.home))
    db = ["--db", settings.resolved_database_url]
    result = CliRunner().invoke(app, ["audit", "--user", "host-a", "--json", *db])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["user"], r["action"], r["status"]) for r in rows] == [("host-a", "POST /api/v1/listings", 201)]
    result = CliRunner().invoke(app, ["audit", "--limit", "5", *db], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "host-a" in result.output and "POST /api/v1/listings" in result.output
    result = CliRunner().invoke(app, ["audit", "--since", "yesterday", *db])
    assert result.exit_code != 0 and "ISO 8601" in str(result.exception)
