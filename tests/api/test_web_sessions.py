"""Signing in on the page: a server-side session whose cookie holds only a random token, CSRF tokens on every form
that changes something, sign-out, revoked keys, another host's listing, and the JSON API ignoring the cookie."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from api_helpers import API_KEY, jpeg, page_create, upload
from fastapi.testclient import TestClient
from page_helpers import csrf_of, sign_in, signin_token
from sqlalchemy import select, text, update

from roomscan import auth
from roomscan.api import create_app
from roomscan.api.sessions import COOKIE
from roomscan.catalog.models import WebSession


def _title(client, listing_id: int) -> str:  # type: ignore[no-untyped-def]
    return client.get(f"/api/v1/listings/{listing_id}").json()["title"]


@pytest.mark.parametrize(("base_url", "secure"), [("http://testserver", False), ("https://testserver", True)])
def test_signing_in_sets_an_http_only_same_site_cookie_secure_over_https(services, base_url, secure):
    with TestClient(create_app(services=services, start_worker=False), base_url=base_url) as client:
        r = client.post("/signin", data={"api_key": API_KEY, "next": "/search", "signin_token": signin_token(client)},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/search"
        (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert cookie.startswith(f"{COOKIE}=") and API_KEY not in cookie
        assert {"httponly", "samesite", "path"} <= attributes and "samesite=lax" in cookie.lower()
        assert "path=/" in cookie.lower()
        assert ("secure" in attributes) is secure
        # Every other cookie of the answer (the redirect's one-time flash note, the spent sign-in token) too.
        for other in r.headers.get_list("set-cookie"):
            parts = [part.strip().lower() for part in other.split(";")]
            assert ("secure" in parts) is secure, other
            assert parts.count("secure") <= 1
        assert "Signed in as <strong>admin</strong>" in client.get("/").text


def test_the_catalog_keeps_neither_the_token_nor_the_key(client, services, hosts):
    sign_in(client, hosts["a"])
    token = client.cookies[COOKIE]
    with services.sessions() as session:
        dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM web_sessions")).all() for v in row)
        row = session.scalars(select(WebSession)).one()
    assert token not in dump and hosts["a"] not in dump and hosts["a"][12:] not in dump
    assert row.id == hashlib.sha256(token.encode()).hexdigest()
    assert row.key_prefix == auth.key_prefix(hosts["a"])
    assert timedelta(hours=11) < row.expires_at - row.created_at <= timedelta(hours=12)


def test_a_wrong_key_signs_nobody_in(client):
    r = client.post("/signin", data={"api_key": "not-the-key", "next": "/", "signin_token": signin_token(client)})
    assert r.status_code == 401 and "unknown API key" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")


def test_after_signing_in_the_page_goes_only_to_a_path_on_this_site(client):
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/signin"):
        r = client.post("/signin", data={"api_key": API_KEY, "next": target, "signin_token": signin_token(client)},
                        follow_redirects=False)
        assert r.headers["location"] == "/", target


def test_a_sign_in_posted_from_another_site_is_refused(client):
    """Login CSRF: another site can post the form with its own key, but not the form's token and its cookie."""
    for data in ({"api_key": API_KEY}, {"api_key": API_KEY, "signin_token": "guessed"}):
        r = client.post("/signin", data=data, follow_redirects=False)
        assert r.status_code == 403 and "not sent from this site" in r.text
        assert COOKIE not in r.headers.get("set-cookie", "")
    token = signin_token(client)
    client.cookies.delete("roomscan_signin")  # the form's token alone, without its cookie
    r = client.post("/signin", data={"api_key": API_KEY, "signin_token": token}, follow_redirects=False)
    assert r.status_code == 403


def _posts(listing_id: int, photo_id: int) -> list[tuple[str, dict, dict]]:
    """Every form of the page that changes something: ``(url, data, files)``."""
    return [
        ("/listings", {"title": "Forged"}, {}),
        (f"/listings/{listing_id}/edit", {"title": "Forged", "claimed": ["oven"]}, {}),
        (f"/listings/{listing_id}/delete", {}, {}),
        (f"/listings/{listing_id}/amenities/bed/decision", {"decision": "rejected"}, {}),
        (f"/listings/{listing_id}/photos", {}, {"files": ("new.jpg", jpeg(seed=8), "image/jpeg")}),
        (f"/listings/{listing_id}/photos/file", {}, {"file": ("new.jpg", jpeg(seed=8), "image/jpeg")}),
        (f"/listings/{listing_id}/photos/{photo_id}/delete", {}, {}),
        ("/receipts", {}, {"file": ("r.jpg", jpeg(seed=9), "image/jpeg")}),
        ("/signout", {}, {}),
    ]


def _state(client, services, listing_id):  # type: ignore[no-untyped-def]
    with services.sessions() as session:
        sessions = session.scalar(text("SELECT COUNT(*) FROM web_sessions"))
    listings = client.get("/api/v1/listings").json()["listings"]
    return listings, client.get(f"/api/v1/listings/{listing_id}").json(), sessions


@pytest.mark.parametrize("index", range(9))
@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_post_without_the_sessions_csrf_token_is_403_and_changes_nothing(client, services, index, token):
    listing_id = page_create(client, claimed=["bed"])
    photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=1)), headers={"X-API-Key": API_KEY}).json()[
        "photos"][0]["photo_id"]
    sign_in(client, send_token=False)
    url, data, files = _posts(listing_id, photo_id)[index]
    before = _state(client, services, listing_id)
    r = client.post(url, data=data | ({"csrf_token": token} if token else {}), files=files or None)
    assert r.status_code == 403, (url, r.text[:300])
    assert "security token (CSRF)" in r.text and "nothing was changed" in r.text
    assert _state(client, services, listing_id) == before


def test_with_the_right_csrf_token_the_same_posts_succeed(client, services):
    listing_id = page_create(client, claimed=["bed"])
    token = sign_in(client, send_token=False)
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "Renamed", "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303 and _title(client, listing_id) == "Renamed"
    r = client.post(f"/listings/{listing_id}/photos/file", files={"file": ("a.jpg", jpeg(seed=2), "image/jpeg")},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["outcome"] == "stored"
    r = client.post("/listings", data={"title": "Second", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303


def test_signing_out_ends_the_session(client, services):
    listing_id = page_create(client)
    token = sign_in(client, send_token=False)
    old_cookie = client.cookies[COOKIE]
    r = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and COOKIE in r.headers["set-cookie"]
    with services.sessions() as session:
        assert session.scalar(text("SELECT COUNT(*) FROM web_sessions")) == 0
    page = client.get("/").text
    assert 'id="signin-link"' in page and 'id="create-form"' not in page
    client.cookies.set(COOKIE, old_cookie)  # a copy of the old cookie is worth nothing now
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "After", "csrf_token": token})
    assert r.status_code == 401 and _title(client, listing_id) == "Loft"


def test_a_revoked_keys_session_no_longer_works(client, services, hosts):
    listing_id = page_create(client, key=hosts["a"])
    token = sign_in(client, hosts["a"], send_token=False)
    assert "host-a" in client.get("/").text
    with services.sessions() as session, session.begin():
        auth.revoke_key(session, auth.key_prefix(hosts["a"]))
    assert 'id="signin-link"' in client.get("/").text
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "After", "csrf_token": token})
    assert r.status_code == 401 and _title(client, listing_id) == "Loft"


def test_an_expired_session_no_longer_works(client, services):
    listing_id = page_create(client)
    token = sign_in(client, send_token=False)
    with services.sessions() as session, session.begin():
        session.execute(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    r = client.post(f"/listings/{listing_id}/delete", data={"csrf_token": token})
    assert r.status_code == 401 and "session has ended" in r.text
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200


def test_another_host_signed_in_sees_no_edit_actions_and_is_refused_403(client, services, hosts):
    listing_id = page_create(client, "A's flat", key=hosts["a"])
    upload(client, listing_id, ("a.jpg", jpeg(seed=1)), headers={"X-API-Key": hosts["a"]})
    sign_in(client, hosts["a"], send_token=False)
    own = client.get(f"/listings/{listing_id}").text
    assert all(f'id="{form}"' in own for form in ("edit-form", "delete-form", "upload-form")) and ">Remove<" in own

    token = sign_in(client, hosts["b"], send_token=False)
    other = client.get(f"/listings/{listing_id}").text
    assert "Signed in as <strong>host-b</strong>" in other
    for marker in ('id="edit-form"', 'id="delete-form"', 'id="upload-form"', ">Remove<", "/decision"):
        assert marker not in other, marker
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "Taken", "csrf_token": token})
    assert r.status_code == 403 and "belongs to another host" in r.text
    r = client.post(f"/listings/{listing_id}/delete", data={"csrf_token": token})
    assert r.status_code == 403 and _title(client, listing_id) == "A's flat"


def test_a_guest_sees_read_only_pages(client):
    listing_id = page_create(client)
    client.cookies.clear()
    page = client.get(f"/listings/{listing_id}").text
    for marker in ('id="edit-form"', 'id="upload-form"', 'id="signout-form"', 'name="csrf_token"'):
        assert marker not in page, marker
    assert 'id="signin-link"' in page and 'id="signin-to-create"' in client.get("/").text


def test_the_session_cookie_alone_never_authorises_an_api_call(client):
    token = sign_in(client, send_token=False)
    listing_id = page_create(client)
    assert client.post("/api/v1/listings", json={"title": "x"}).status_code == 401
    assert client.post("/api/v1/listings", json={"title": "x"}, headers={"X-CSRF-Token": token}).status_code == 401
    assert client.delete(f"/api/v1/listings/{listing_id}").status_code == 401
    assert client.get(f"/api/v1/listings/{listing_id}").status_code == 200  # reads stay open


def test_the_csrf_token_is_the_sessions_own(client, hosts):
    """A token from another session (another person's page) is refused."""
    listing_id = page_create(client)
    foreign = sign_in(client, hosts["b"], send_token=False)
    sign_in(client, send_token=False)  # a new session, with a token of its own
    assert csrf_of(client.get("/").text) != foreign
    r = client.post(f"/listings/{listing_id}/edit", data={"title": "X", "csrf_token": foreign})
    assert r.status_code == 403 and _title(client, listing_id) == "Loft"
