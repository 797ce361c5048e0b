"""Fresh databases for tests: a temporary SQLite file, or a PostgreSQL database created for the test.

PostgreSQL cases use the server named by ``ROOMSCAN_TEST_POSTGRES_URL``; without it they are skipped, or fail when
``CI`` is set (so that CI cannot pass without testing PostgreSQL). Start a local server with
``export ROOMSCAN_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

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
    with postgres_database(server) as url:
        yield url


@contextmanager
def postgres_database(server: str, prefix: str = "roomscan_test") -> Iterator[str]:
    """Yield the URL of a new database ``<prefix>_<random>`` on the PostgreSQL ``server``; drop it afterwards
    (benchmarks use it too)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
