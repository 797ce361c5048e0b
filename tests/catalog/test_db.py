from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from roomscan.catalog.db import (
    DatabaseUnavailableError,
    SchemaVersionError,
    make_engine,
    migrate,
    open_catalog,
)
from roomscan.catalog.models import Base, Listing, ListingAmenity
from roomscan.errors import RoomscanError


def test_sqlite_connections_get_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'catalog.db'}")
    with engine.connect() as con:
        pragmas = {
            name: con.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    engine.dispose()
    assert (tmp_path / "nested" / "dir").is_dir()
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000, "synchronous": 1}


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:p@db.example:5432/roomscan", "postgresql+psycopg"),
        ("postgres://u@db.example/roomscan", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/roomscan", "postgresql+psycopg"),
        ("sqlite://", "sqlite"),
    ],
)
def test_make_engine_picks_the_driver(url: str, driver: str) -> None:
    engine = make_engine(url)
    assert engine.url.drivername == driver
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@db.example/roomscan", "SQLite or PostgreSQL"),
        ("not a url", "Invalid database URL"),
    ],
)
def test_make_engine_rejects_unsupported_urls(url: str, message: str) -> None:
    with pytest.raises(RoomscanError, match=message):
        make_engine(url)


def test_unreachable_postgres_says_where_and_what_to_check_without_the_password() -> None:
    with pytest.raises(DatabaseUnavailableError) as caught:
        open_catalog("postgresql://scanner:s3cret-pw@127.0.0.1:1/roomscan")
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "scanner:***@" in message
    assert "s3cret-pw" not in message
    assert "running" in message


def test_in_memory_sqlite_is_shared_by_sessions() -> None:
    engine, Session = open_catalog("sqlite://")
    with Session() as session:
        session.add(Listing(title="Loft"))
        session.commit()
    with Session() as session:
        assert session.scalar(select(func.count()).select_from(Listing)) == 1
    engine.dispose()


def test_open_catalog_gives_working_sessions_with_cascading_deletes(catalog) -> None:  # type: ignore[no-untyped-def]
    _, Session = catalog
    with Session() as session:
        listing = Listing(title="Cabin by the lake")
        session.add(listing)
        session.flush()
        session.add(
            ListingAmenity(
                listing_id=listing.id,
                amenity="fireplace",
                score=0.4,
                seen=True,
                claimed=True,
                status="confirmed",
            )
        )
        session.commit()
        listing_id = listing.id
    with Session() as session:
        session.execute(text("DELETE FROM listings WHERE id = :id"), {"id": listing_id})
        session.commit()
        assert session.scalar(select(func.count()).select_from(ListingAmenity)) == 0


def test_database_from_a_newer_roomscan_is_refused(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    migrate(engine)
    with engine.begin() as con:
        con.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaVersionError, match="newer roomscan") as caught:
        migrate(engine)
    assert "9999_from_the_future" in str(caught.value)
    engine.dispose()


def test_tables_without_migration_history_are_refused(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    Base.metadata.create_all(engine)
    with pytest.raises(SchemaVersionError, match="no migration history"):
        migrate(engine)
    engine.dispose()
