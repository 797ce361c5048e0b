from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from roomscan.catalog.db import alembic_config, make_engine, migrate
from roomscan.catalog.models import Base


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(engine) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    with engine.connect() as con:
        return tuple(MigrationContext.configure(con).get_current_heads())


def test_migrated_schema_matches_the_models(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    migrate(engine)
    with engine.connect() as con:
        diff = compare_metadata(MigrationContext.configure(con, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_migrate_is_idempotent(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    migrate(engine)
    tables = sorted(inspect(engine).get_table_names())
    migrate(engine)
    migrate(catalog_url)
    assert sorted(inspect(engine).get_table_names()) == tables
    assert set(Base.metadata.tables) < set(tables)
    assert _current(engine) == (_head(),)
    engine.dispose()


def test_concurrent_migrations_create_the_schema_once(catalog_url: str) -> None:
    # An API server and a worker starting together both migrate the same empty database.
    engines = [make_engine(catalog_url) for _ in range(4)]
    with ThreadPoolExecutor(len(engines)) as pool:
        list(pool.map(migrate, engines))
    assert _current(engines[0]) == (_head(),)
    for engine in engines:
        engine.dispose()


def test_downgrade_to_base_and_back(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    migrate(engine)
    with engine.begin() as con:
        command.downgrade(alembic_config(con), "base")
    assert not set(Base.metadata.tables) & set(inspect(engine).get_table_names())
    migrate(engine)
    assert _current(engine) == (_head(),)
    engine.dispose()


def test_0002_marks_listings_with_photos_stale_and_admits_rejected(catalog_url: str) -> None:
    # A catalog written before 0002 may hold listings whose roll-up missed shared photos: the upgrade marks
    # every listing with photos stale (a worker recomputes it) and leaves listings without photos alone.
    from sqlalchemy import text

    engine = make_engine(catalog_url)
    with engine.begin() as con:
        command.upgrade(alembic_config(con), "0001")
    with engine.begin() as con:
        now = "2026-01-01 00:00:00+00:00"
        con.execute(text(f"INSERT INTO listings (id, title, created_at) VALUES (1, 'with', '{now}'), (2, 'without', '{now}')"))
        con.execute(text(f"INSERT INTO photos (id, sha256, format, width, height, size_bytes, created_at) "
                         f"VALUES (1, '{'a' * 64}', 'JPEG', 4, 4, 10, '{now}')"))
        con.execute(text("INSERT INTO listing_photos (listing_id, photo_id, position) VALUES (1, 1, 0)"))
    migrate(engine)
    with engine.begin() as con:
        stale = dict(con.execute(text("SELECT id, rollup_stale FROM listings ORDER BY id")).all())
        assert stale == {1: True, 2: False}
        # Nothing that references a listing was lost on the way (a table copy would cascade on SQLite).
        assert con.execute(text("SELECT listing_id, photo_id FROM listing_photos")).all() == [(1, 1)]
        con.execute(text("INSERT INTO listing_amenities (listing_id, amenity, score, photo_count, claimed, seen, "
                         "status) VALUES (1, 'bed', 0.5, 1, false, false, 'rejected')"))
    engine.dispose()


def test_0006_gives_every_existing_listing_the_bootstrap_admin_and_loses_nothing(catalog_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(catalog_url)
    with engine.begin() as con:
        command.upgrade(alembic_config(con), "0005")
    _two_listings_with_claims_and_a_photo(engine)
    migrate(engine)
    with engine.begin() as con:
        admin = con.execute(text("SELECT id, role FROM users WHERE name = 'admin'")).one()
        assert admin.role == "admin"
        assert con.execute(text("SELECT id, owner_id FROM listings ORDER BY id")).all() == [(1, admin.id), (2, admin.id)]
        _claims_and_photo_survive(con)
    engine.dispose()


def test_0008_keeps_every_existing_listing_published_with_its_claims_and_photos(catalog_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(catalog_url)
    with engine.begin() as con:
        command.upgrade(alembic_config(con), "0007")
    _two_listings_with_claims_and_a_photo(engine)
    migrate(engine)
    with engine.begin() as con:
        assert [tuple(r) for r in con.execute(text("SELECT id, published FROM listings ORDER BY id"))] == [
            (1, True), (2, True)]
        _claims_and_photo_survive(con)
        # A listing inserted without the column (an older writer) is published too.
        con.execute(text("INSERT INTO listings (id, title, created_at) VALUES (3, 'three', '2026-01-02 00:00:00+00:00')"))
        assert con.execute(text("SELECT published FROM listings WHERE id = 3")).scalar_one() in (True, 1)
    engine.dispose()


def test_0011_existing_listings_declare_no_bedrooms_and_the_count_is_bounded(catalog_url: str) -> None:
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(catalog_url)
    with engine.begin() as con:
        command.upgrade(alembic_config(con), "0010")
    _two_listings_with_claims_and_a_photo(engine)
    migrate(engine)
    with engine.begin() as con:
        assert con.execute(text("SELECT id, bedrooms FROM listings ORDER BY id")).all() == [(1, None), (2, None)]
        _claims_and_photo_survive(con)
        con.execute(text("UPDATE listings SET bedrooms = 2 WHERE id = 1"))
    for bad in (-1, 101):  # the database itself refuses what no interface should let through
        with pytest.raises(IntegrityError), engine.begin() as con:
            con.execute(text(f"UPDATE listings SET bedrooms = {bad} WHERE id = 2"))
    with engine.begin() as con:  # and back down: the column goes, nothing else does
        command.downgrade(alembic_config(con), "0010")
    assert "bedrooms" not in {c["name"] for c in inspect(engine).get_columns("listings")}
    with engine.begin() as con:
        _claims_and_photo_survive(con)
    engine.dispose()


def _two_listings_with_claims_and_a_photo(engine) -> None:  # type: ignore[no-untyped-def]
    """What an older catalog holds: listings 1 and 2 with a claim each, and a photo on listing 1."""
    from sqlalchemy import text

    with engine.begin() as con:
        now = "2026-01-01 00:00:00+00:00"
        con.execute(text(f"INSERT INTO listings (id, title, created_at) VALUES (1, 'one', '{now}'), (2, 'two', '{now}')"))
        con.execute(text("INSERT INTO listing_claims (listing_id, amenity) VALUES (1, 'bed'), (2, 'oven')"))
        con.execute(text(f"INSERT INTO photos (id, sha256, format, width, height, size_bytes, created_at) "
                         f"VALUES (1, '{'a' * 64}', 'JPEG', 4, 4, 10, '{now}')"))
        con.execute(text("INSERT INTO listing_photos (listing_id, photo_id, position) VALUES (1, 1, 0)"))


def _claims_and_photo_survive(con) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    assert con.execute(text("SELECT listing_id, amenity FROM listing_claims ORDER BY listing_id")).all() == [
        (1, "bed"), (2, "oven")]
    assert con.execute(text("SELECT listing_id, photo_id FROM listing_photos")).all() == [(1, 1)]
