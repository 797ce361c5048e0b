from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _databases import BACKENDS, fresh_database
from api_helpers import API_KEY
from fastapi.testclient import TestClient

from roomscan.api import create_app
from roomscan.services import Services, open_services
from roomscan.settings import Settings


@pytest.fixture(scope="session")
def api_detector(tiny_owlv2_dir):
    """The real OWLv2 backend on a tiny random model; thresholds 0 so it reports amenities."""
    from _models import tiny_taxonomy

    from roomscan.backends import get_detector

    return get_detector(str(tiny_owlv2_dir), taxonomy=tiny_taxonomy(), device="cpu", score_threshold=0.0)


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Every API test runs on SQLite and on PostgreSQL: the same code serves both."""
    with fresh_database(request.param, tmp_path) as url:
        yield Settings(
            home=tmp_path / "home",
            database_url=url,
            api_key=API_KEY,
            max_upload_bytes=2 * 1024 * 1024,
            max_request_bytes=8 * 1024 * 1024,
        )


@pytest.fixture
def services(settings, api_detector) -> Iterator[Services]:
    built = open_services(settings, detector=api_detector)
    yield built
    built.close()


@pytest.fixture
def client(services) -> Iterator[TestClient]:
    """The app without its background thread: tests run the worker explicitly (``services.worker``)."""
    with TestClient(create_app(services=services, start_worker=False)) as c:
        yield c




@pytest.fixture
def hosts(services):  # type: ignore[no-untyped-def]
    """Two host accounts' API keys: ``{"a": key of host-a, "b": key of host-b}``."""
    from roomscan import auth
    from roomscan.catalog.models import Role

    keys = {}
    with services.sessions() as session, session.begin():
        for name in ("a", "b"):
            keys[name] = auth.create_key(session, auth.create_user(session, f"host-{name}", Role.HOST))
    return keys
