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
