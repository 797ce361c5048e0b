"""Engines, migrations and sessions for the catalog database (SQLite by default, PostgreSQL for scale).

Every entry point opens the catalog the same way::

    engine, Session = open_catalog(settings.resolved_database_url)
    with Session() as session:
        ...

``open_catalog`` brings the schema up to date with the Alembic migrations shipped inside the package (no
``alembic.ini`` needed) and turns the failures a user can fix (server down, wrong password, a database written by
a newer roomscan) into a :class:`~roomscan.errors.RoomscanError` that says what to check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "DatabaseUnavailableError",
    "SchemaVersionError",
    "make_engine",
    "migrate",
    "open_catalog",
    "session_factory",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same for every roomscan process sharing a PostgreSQL database.
_PG_MIGRATION_LOCK = 0x726F6F6D  # "room"


class DatabaseUnavailableError(RoomscanError):
    """The catalog database cannot be reached or opened (server down, bad credentials, unwritable path)."""


class SchemaVersionError(RoomscanError):
    """The database's schema is not one this roomscan can migrate (written by a newer version, or unmanaged)."""


def make_engine(url: str | URL, *, pool_size: int | None = None, pool_timeout: float | None = None) -> Engine:
    """Create an engine for a catalog URL, tuned for roomscan's use.

    SQLite: the parent directory is created; every connection gets WAL journaling (readers never block the
    writer), ``foreign_keys=ON`` (so ``ON DELETE CASCADE`` works), a 30 s busy timeout and
    ``synchronous=NORMAL``; connections may cross threads (the API's thread pool, the worker). In-memory
    databases share one connection so every session sees the same data.

    PostgreSQL: ``postgresql://`` (and ``postgres://``) URLs use psycopg 3; connections are pinged before use.

    ``pool_size`` connections are kept (no overflow beyond them), and a request waits at most ``pool_timeout``
    seconds for one (then ``sqlalchemy.exc.TimeoutError``, which the server answers with 503): a server sizes
    the pool to its thread limit (``Settings.db_pool_size``), so a burst of requests queues for threads, not
    for connections that threads hold. ``None`` keeps SQLAlchemy's defaults (5 + 10 overflow, 30 s).

    No connection is made here: :func:`migrate` or :func:`open_catalog` report an unreachable database.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////var/lib/roomscan/roomscan.db`` or
            ``postgresql://roomscan:secret@db:5432/roomscan``.

    Returns:
        The engine.

    Raises:
        RoomscanError: the URL is malformed, names an unsupported database, or its driver is not installed.

    Example:
        >>> engine = make_engine("sqlite://")
        >>> engine.dialect.name
        'sqlite'
    """
    parsed = _parse_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    pool: dict[str, Any] = {}
    if pool_size is not None:
        pool.update(pool_size=pool_size, max_overflow=0)
    if pool_timeout is not None:
        pool["pool_timeout"] = pool_timeout
    try:
        if backend == "sqlite":
            engine = _make_sqlite_engine(parsed, **pool)
        elif backend == "postgresql":
            engine = create_engine(parsed, pool_pre_ping=True, **pool)
        else:
            raise RoomscanError(
                f"Unsupported database {_mask(parsed)!r}: roomscan's catalog runs on SQLite or PostgreSQL."
            )
    except (ImportError, NoSuchModuleError) as exc:
        raise RoomscanError(
            f"The database driver for {_mask(parsed)} is not installed ({exc}). "
            "For PostgreSQL install the extra: pip install 'roomscan[postgres]'."
        ) from exc
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``.

    Objects stay usable after commit (``expire_on_commit=False``) so that records can be returned from a
    ``with Session() as session:`` block to an API response or a CLI table.

    Args:
        engine: from :func:`make_engine`.

    Returns:
        The sessionmaker.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


def migrate(engine_or_url: Engine | str | URL) -> None:
    """Bring the database schema up to the newest revision (Alembic ``upgrade head``).

    Safe to call on every start: an up-to-date database is left alone, and concurrent callers (API and worker
    starting together) serialise on a lock (an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) so
    only one of them creates the tables.

    Args:
        engine_or_url: an engine from :func:`make_engine`, or a URL (an engine is made and disposed of).

    Raises:
        DatabaseUnavailableError: the database cannot be reached or opened; the message names the URL (password
            masked) and what to check.
        SchemaVersionError: the database was written by a newer roomscan, or holds roomscan tables that no
            migration created.
    """
    if isinstance(engine_or_url, Engine):
        _migrate(engine_or_url)
        return
    engine = make_engine(engine_or_url)
    try:
        _migrate(engine)
    finally:
        engine.dispose()


def open_catalog(
    url: str | URL, *, pool_size: int | None = None, pool_timeout: float | None = None
) -> tuple[Engine, sessionmaker[Session]]:
    """Open (and migrate) the catalog database: what every entry point calls first.

    Args:
        url: SQLAlchemy URL, usually ``Settings.resolved_database_url``.

    Returns:
        ``(engine, Session)``: the engine and a session factory bound to it.

    Raises:
        DatabaseUnavailableError: the database cannot be reached or opened.
        SchemaVersionError: the database was written by a newer roomscan.

    Example:
        >>> engine, Session = open_catalog("sqlite://")
        >>> with Session() as session:
        ...     session.query(Listing).count()  # doctest: +SKIP
        0
    """
    engine = make_engine(url, pool_size=pool_size, pool_timeout=pool_timeout)
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine, session_factory(engine)


def alembic_config(connection: Any | None = None) -> Config:
    """The Alembic configuration for roomscan's migrations, built in code (no ``alembic.ini``).

    Args:
        connection: a SQLAlchemy connection for ``env.py`` to run on (``config.attributes["connection"]``).

    Returns:
        The config, with ``script_location`` inside the installed package.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise RoomscanError(
            f"Invalid database URL {str(url)[:40]!r}...: expected e.g. sqlite:///path/to/roomscan.db or "
            "postgresql://user:password@host:5432/roomscan."
        ) from exc


def _mask(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database


def _make_sqlite_engine(url: URL, **pool: Any) -> Engine:
    connect_args: dict[str, Any] = {"check_same_thread": False}
    if _is_sqlite_memory(url):
        # One shared connection: otherwise each pooled connection would see its own empty database.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        if not url.query.get("uri"):
            path = Path(url.database or "").expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailableError(
                    f"Cannot create the directory for the SQLite database {path}: {exc}. "
                    "Check the path in ROOMSCAN_DATABASE_URL / ROOMSCAN_HOME and that it is writable."
                ) from exc
        engine = create_engine(url, connect_args=connect_args, **pool)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "before_cursor_execute", _sqlite_begin_before_write)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own ("legacy") transaction control is off: it never BEGINs before a SAVEPOINT, so a savepoint
    # outside a transaction committed on RELEASE, e.g. a photo row of an upload that was then refused.
    # _sqlite_begin_before_write opens transactions instead (SQLAlchemy's "sqlite_transactions" notes).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


# Statements that write (DML, DDL, SAVEPOINT), alone or after a WITH clause.
_SQLITE_WRITE = re.compile(
    r"\s*(?:(?:INSERT|UPDATE|DELETE|REPLACE|SAVEPOINT|CREATE|ALTER|DROP)\b"
    r"|WITH\b.*\b(?:INSERT|UPDATE|DELETE|REPLACE)\b)",
    re.IGNORECASE | re.DOTALL,
)


def _sqlite_begin_before_write(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
    """``BEGIN IMMEDIATE`` before a transaction's first write (or SAVEPOINT); reads before it run outside.

    Why not ``BEGIN`` at a transaction's first statement (SQLAlchemy's recipe): a transaction that read first
    holds a WAL snapshot, and its first write then fails at once with "database is locked" whenever another
    connection wrote meanwhile (SQLite skips the busy timeout for that upgrade), so every read-then-write
    (an upload, a job claim) would fail under concurrent writers. Taking the write lock up front waits out the
    busy timeout instead; reads stay concurrent, as with the driver's legacy mode, and savepoints, DDL and
    everything written after the first write are now one transaction that rolls back whole.
    """
    if not cursor.connection.in_transaction and _SQLITE_WRITE.match(statement):
        cursor.execute("BEGIN IMMEDIATE")


def _unavailable(engine: Engine, exc: Exception) -> DatabaseUnavailableError:
    orig = getattr(exc, "orig", None) or exc
    reason = " ".join(str(orig).split())[:300].rstrip(". ")
    reason += " " if reason.endswith("?") else ". "
    url = _mask(engine.url)
    if engine.dialect.name == "postgresql":
        host = f"{engine.url.host or 'localhost'}:{engine.url.port or 5432}"
        hint = (
            f"Check that the PostgreSQL server is running and reachable at {host}, that database "
            f"{engine.url.database!r} exists, and that the user and password in ROOMSCAN_DATABASE_URL are right."
        )
    else:
        hint = "Check that the file's directory exists and is writable, and that no other program holds it locked."
    return DatabaseUnavailableError(f"Cannot open the catalog database {url}: {reason}{hint}")


def _migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        connection = engine.connect()
    except DBAPIError as exc:
        raise _unavailable(engine, exc) from exc
    try:
        with connection:
            _lock_for_migration(connection)
            config = alembic_config(connection)
            script = ScriptDirectory.from_config(config)
            current = MigrationContext.configure(connection).get_current_heads()
            known = {rev.revision for rev in script.walk_revisions()}
            unknown = [rev for rev in current if rev not in known]
            if unknown:
                raise SchemaVersionError(
                    f"The catalog database {_mask(engine.url)} is at schema revision {', '.join(unknown)}, which "
                    f"this roomscan does not know (it knows up to {script.get_current_head()}): it was written by "
                    "a newer roomscan. Upgrade roomscan, or point ROOMSCAN_DATABASE_URL at another database."
                )
            if not current and inspect(connection).has_table("listings"):
                raise SchemaVersionError(
                    f"The catalog database {_mask(engine.url)} has roomscan tables but no migration history "
                    "(alembic_version), so roomscan cannot tell which schema it has. Point "
                    "ROOMSCAN_DATABASE_URL at a new database, or drop these tables."
                )
            try:
                command.upgrade(config, "head")
            except CommandError as exc:
                raise SchemaVersionError(
                    f"Cannot migrate the catalog database {_mask(engine.url)}: {exc}"
                ) from exc
            connection.commit()
    except DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc.orig, _operational_errors(engine)):
            raise _unavailable(engine, exc) from exc
        raise


def _lock_for_migration(connection: Any) -> None:
    """Serialise concurrent migrations; the lock is held until the migration transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        # Take the write lock before reading the schema version, so that a second process waits (busy_timeout)
        # and then sees the tables this one created.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _operational_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    dbapi = engine.dialect.dbapi
    return (dbapi.OperationalError,) if dbapi is not None else ()
