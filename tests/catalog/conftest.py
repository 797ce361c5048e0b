"""Catalog fixtures: every catalog test runs on SQLite and on PostgreSQL.

* ``catalog_url``: a URL to an empty database, fresh for each test: a temporary SQLite file, or a PostgreSQL
  database created for the test (``roomscan_test_<random>``) on the server named by ``ROOMSCAN_TEST_POSTGRES_URL``
  and dropped afterwards. Without that variable the PostgreSQL case is skipped, or fails when ``CI`` is set (so
  that CI cannot pass without testing PostgreSQL). Start a local server with
  ``export ROOMSCAN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"``.
* ``module_catalog_url``: the same, shared by the tests of one module (for read-only data sets).
* ``catalog``: ``(engine, Session)`` from ``open_catalog(catalog_url)``, disposed of afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from roomscan.catalog.db import open_catalog

from _databases import BACKENDS, POSTGRES_ENV, fresh_database  # noqa: F401


@pytest.fixture(params=BACKENDS)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_catalog_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp("catalog")) as url:
        yield url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    engine, session_factory = open_catalog(catalog_url)
    try:
        yield engine, session_factory
    finally:
        engine.dispose()
