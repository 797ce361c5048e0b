"""Alembic environment for roomscan's catalog.

roomscan runs migrations in code (:func:`roomscan.catalog.db.migrate`) and hands over its connection in
``config.attributes["connection"]``. For developing new revisions from a checkout, a URL works too::

    python -c "from roomscan.catalog.db import alembic_config; from alembic import command; \
        c = alembic_config(); c.set_main_option('sqlalchemy.url', 'sqlite:///dev.db'); \
        command.revision(c, 'describe the change', autogenerate=True)"
"""

from __future__ import annotations

from alembic import context

from roomscan.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from roomscan.catalog.db import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("roomscan migrations need config.attributes['connection'] or sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("roomscan migrations run online only (roomscan.catalog.db.migrate)")
run_migrations_online()
