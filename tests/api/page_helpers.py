"""Helpers for page tests: sign a test client in as a browser does (a session cookie and its CSRF token)."""

from __future__ import annotations

import re

from api_helpers import API_KEY
from fastapi.testclient import TestClient


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page's forms carry."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token (not signed in?)"
    return match.group(1)


def signin_token(client: TestClient) -> str:
    """Open the sign-in form as a browser does: its one-time token (its cookie is now in ``client``)."""
    match = re.search(r'name="signin_token" value="([^"]+)"', client.get("/signin").text)
    assert match, "the sign-in form has no token"
    return match.group(1)


def sign_in(client: TestClient, key: str = API_KEY, *, send_token: bool = True) -> str:
    """Sign ``client`` in with ``key``; returns the session's CSRF token and, with ``send_token``, sends it in the
    ``X-CSRF-Token`` header of every later request (as the page's script does)."""
    r = client.post("/signin", data={"api_key": key, "signin_token": signin_token(client)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    token = csrf_of(client.get("/").text)
    if send_token:
        client.headers["X-CSRF-Token"] = token
    return token
