"""The catalog database goes away: requests answer 503 with a JSON reason (never a bare 500), /healthz still says
the process is alive, /readyz says the catalog is not reachable; when it is back, everything answers again."""

from __future__ import annotations

import dataclasses

import pytest
from api_helpers import HEADERS
from fastapi.testclient import TestClient

from roomscan.api import create_app
from roomscan.catalog.db import make_engine, session_factory


@pytest.fixture
def outage(services):
    """The same app, its catalog pointed at a PostgreSQL port where nothing listens, then restored."""
    healthy = services.sessions
    dead = make_engine("postgresql://roomscan@127.0.0.1:9/roomscan", pool_timeout=2.0)
    broken = dataclasses.replace(services, sessions=session_factory(dead))
    broken.worker.sessions = broken.sessions
    with TestClient(create_app(services=broken, start_worker=False), raise_server_exceptions=False) as client:
        yield client, broken, healthy
    broken.worker.sessions = healthy
    dead.dispose()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/listings"), ("GET", "/api/v1/listings/1"), ("GET", "/api/v1/search?amenity=bed"),
     ("POST", "/api/v1/listings")],
)
def test_a_database_outage_is_a_503_with_a_reason(outage, method, path):
    client, _, _ = outage
    body = {"title": "x"} if method == "POST" else None
    r = client.request(method, path, json=body, headers=HEADERS)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "database" in r.json()["detail"] and r.headers["retry-after"]


@pytest.mark.parametrize("path", ["/", "/listings/1", "/search?amenity=bed"])
def test_the_page_says_so_too(outage, path):
    client, _, _ = outage
    r = client.get(path)
    assert r.status_code == 503 and r.headers["content-type"].startswith("text/html")
    assert "database is unavailable" in r.text and r.headers["retry-after"]


def test_healthz_stays_alive_and_readyz_says_why_not(outage):
    client, _, healthy = outage
    assert client.get("/healthz").json()["status"] == "ok"
    r = client.get("/readyz")
    assert r.status_code == 503 and "cannot be reached" in r.json()["detail"]
    client.app.state.services.sessions = healthy  # the database is back
    client.app.state.services.worker.sessions = healthy
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["pending_jobs"] == 0
    assert client.get("/api/v1/listings").status_code == 200
