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

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from roomscan.catalog.db import open_catalog

POSTGRES_ENV = "ROOMSCAN_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database of ``backend``; remove it afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'catalog.db'}"
        return
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        message = f'PostgreSQL tests need {POSTGRES_ENV} (try: export {POSTGRES_ENV}="$(scripts/postgres.sh start)")'
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this is an error rather than a skip", pytrace=False)
        pytest.skip(message)
    import psycopg

    name = f"roomscan_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
