"""Where sweeps live: an Optuna storage chosen by URL.

* ``None``: the SQLite file ``<ROOMSCAN_HOME>/sweeps/sweeps.db`` (``~/.roomscan/sweeps``).
* any SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://user@host/db``): Optuna's ``RDBStorage``, with
  its heartbeat (a killed agent's trial turns FAIL after the grace period and its configuration is re-queued).
* ``journal:///abs/path.log`` or ``journal://relative.log``: Optuna's ``JournalStorage`` on a
  ``JournalFileBackend``, for shared file systems where SQLite's locking fails (NFS); the agent keeps its own
  heartbeat there (see :mod:`roomscan.sweep.agent`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["HEARTBEAT_S", "SweepError", "default_storage_url", "open_storage"]

HEARTBEAT_S = int(os.environ.get("ROOMSCAN_SWEEP_HEARTBEAT", "10"))


class SweepError(RoomscanError):
    """A sweep operation failed for a reason the user can act on (unknown id, unreachable storage, ...)."""


def default_storage_url() -> str:
    from roomscan.settings import default_home

    home = default_home()
    return f"sqlite:///{home / 'sweeps' / 'sweeps.db'}"


def open_storage(url: str | None = None, *, retry_stale: bool = True) -> BaseStorage:
    """An Optuna storage for ``url`` (see the module docstring); creates the default SQLite file's folder.

    Args:
        url: storage URL, or ``None`` for the default SQLite file.
        retry_stale: re-queue the configuration of a trial whose agent died (RDB storages, once per trial).

    Raises:
        SweepError: a malformed URL, a missing database driver or an unreachable server, named.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = url or default_storage_url()
    if url.startswith("journal://"):
        path = Path(url[len("journal://") :]).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise SweepError(f"{url}: cannot open the journal file ({exc})") from None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SweepError(f"{url}: cannot create {path.parent} ({exc})") from None
    if "://" not in url:
        raise SweepError(
            f"{url!r}: not a storage URL; use sqlite:///path.db, postgresql+psycopg://..., or "
            "journal:///path.log"
        )
    import warnings

    kwargs: dict = {}
    if url.startswith("sqlite"):
        # Agents in other processes hold the write lock briefly; wait for it rather than fail.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1) if retry_stale else None
            storage = optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=3 * HEARTBEAT_S,
                heartbeat_stale_trial_callback=callback,
                **kwargs,
            )
        if url.startswith("sqlite:///") and ":memory:" not in url:
            _sqlite_wal(storage)
        return storage
    except ImportError as exc:
        raise SweepError(
            f"{url}: the database driver is not installed ({exc}); for PostgreSQL: pip install "
            "'roomscan[postgres]'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's ArgumentError, OperationalError, driver errors
        raise SweepError(f"{url}: cannot open the sweep storage ({type(exc).__name__}: {exc})") from None


def _sqlite_wal(storage: object) -> None:
    """WAL journal + synchronous=NORMAL: a commit no longer waits for an fsync of the whole database, which
    dominated each trial's storage time (readers also do not block the writer). Local disks only: on NFS use
    ``journal://``."""
    from sqlalchemy import event

    engine = storage.engine  # type: ignore[attr-defined]

    def pragmas(dbapi_connection: object, _record: object) -> None:
        cur = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened while creating the tables reconnect with the pragmas
