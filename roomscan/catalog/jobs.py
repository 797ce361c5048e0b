"""The detection job queue: one ``photo_jobs`` row per photo and model, in the catalog itself.

Everything that moves a job between states lives here: enqueue (a new photo, a model switch), claim, renew,
complete, fail, give back, retry, counts. Because the queue is the catalog, an accepted photo and its job commit
together, and a job survives any crash.

Claims take a lease. On PostgreSQL a claim is one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)``:
workers on any number of machines each take different rows without waiting for one another. On SQLite (one
machine) the same statement runs under the database's single write lock. A worker renews its leases while it
works; when it dies, its lease runs out (or, on the same host, its death is seen at once) and another worker
claims the job again. Settling a job is conditional on the attempt number the claim returned, so a job is never
completed twice, even by a worker that was presumed dead and was not.

Example:
    >>> queue = JobQueue(Session, model_id)                 # doctest: +SKIP
    >>> for claim in queue.claim(8):                        # doctest: +SKIP
    ...     with Session.begin() as session:
    ...         if queue.complete(session, claim):          # still ours: store the result in this transaction
    ...             store.save_detections(session, claim.photo_id, model_id, dets)
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from roomscan.catalog.models import JobState, ListingPhoto, PhotoJob, utcnow

log = logging.getLogger(__name__)

__all__ = [
    "Claim",
    "JobQueue",
    "JobState",
    "counts",
    "enqueue",
    "enqueue_missing",
    "lease_holder",
    "retry_failed",
]

# Tells this process apart from an earlier one that had the same pid (a container's pid 1 after a restart).
_BOOT = secrets.token_hex(4)


def _host() -> str:
    """This host as far as process ids go: the host name and the pid namespace (containers that share a host
    name, as pods with the node's network do, cannot see each other's processes)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


def lease_holder() -> str:
    """Who this process is in ``photo_jobs.leased_by``: ``host/pid-namespace/pid/boot``."""
    return f"{_host()}/{os.getpid()}/{_BOOT}"


def _holder_is_gone(holder: str) -> bool:
    """True when ``holder`` was a process of this host that no longer runs; False when it runs, may run, or
    belongs to another host (whose lease then decides)."""
    host, pid_text, boot = (holder.rsplit("/", 2) + ["", ""])[:3]
    if host != _host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return boot != _BOOT  # our own pid, another boot: the process before us
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, another user's
        return False
    return False  # running (or its pid was reused: then the lease decides)


# -- producing: in the caller's transaction ------------------------------------------------------------------------
def enqueue(session: Session, photo_id: int, model_id: int) -> PhotoJob:
    """The job of ``photo_id`` under ``model_id``, created ``pending`` if there is none (not committed).

    Idempotent, also against a concurrent enqueue of the same photo (the unique key decides; the loser reads the
    winner's row)."""
    job = session.scalar(select(PhotoJob).where(PhotoJob.photo_id == photo_id, PhotoJob.model_id == model_id))
    if job is None:
        job = PhotoJob(photo_id=photo_id, model_id=model_id, state=JobState.PENDING)
        try:
            with session.begin_nested():
                session.add(job)
        except IntegrityError:
            job = session.scalars(
                select(PhotoJob).where(PhotoJob.photo_id == photo_id, PhotoJob.model_id == model_id)
            ).one()
    return job


def enqueue_missing(session: Session, model_id: int, *, among: Select[Any] | None = None) -> int:
    """Queue every listing photo that has no job under ``model_id`` (a model switch, an import); with ``among``
    (a select of photo ids), only those. Returns how many.

    One ``INSERT ... SELECT``, so it stays quick for millions of photos; a concurrent enqueue of one of them
    makes it fall back to one photo at a time."""
    has_job = select(PhotoJob.photo_id).where(PhotoJob.model_id == model_id)
    missing = select(ListingPhoto.photo_id).distinct().where(ListingPhoto.photo_id.not_in(has_job))
    if among is not None:
        missing = missing.where(ListingPhoto.photo_id.in_(among))
    now = utcnow()
    try:
        with session.begin_nested():
            # RETURNING counts the rows: not every driver reports a row count for INSERT ... SELECT.
            result = session.execute(
                insert(PhotoJob).from_select(
                    ["photo_id", "model_id", "state", "attempts", "created_at", "updated_at"],
                    select(
                        missing.subquery().c.photo_id,
                        literal(model_id),
                        literal(str(JobState.PENDING)),
                        literal(0),
                        literal(now, PhotoJob.created_at.type),
                        literal(now, PhotoJob.updated_at.type),
                    ),
                ).returning(PhotoJob.id)
            )
            return sum(1 for _ in result)
    except IntegrityError:
        photo_ids = session.scalars(missing).all()
        for photo_id in photo_ids:
            enqueue(session, photo_id, model_id)
        session.flush()
        return len(photo_ids)


def retry_failed(session: Session, model_id: int) -> int:
    """Queue again every failed job of ``model_id`` (after fixing what made it fail). Returns how many."""
    result = session.execute(
        update(PhotoJob)
        .where(PhotoJob.model_id == model_id, PhotoJob.state == JobState.FAILED)
        .values(state=JobState.PENDING, attempts=0, error=None, leased_until=None, leased_by=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def counts(session: Session, model_id: int | None = None) -> dict[JobState, int]:
    """How many jobs are in each state (every state present, zeros included), for one model or all."""
    stmt = select(PhotoJob.state, func.count()).group_by(PhotoJob.state)
    if model_id is not None:
        stmt = stmt.where(PhotoJob.model_id == model_id)
    found = {JobState(state): n for state, n in session.execute(stmt).all()}
    return {state: found.get(state, 0) for state in JobState}


# -- consuming: workers --------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Claim:
    """A job this worker holds: the ``attempt`` number is its token for settling it."""

    job_id: int
    photo_id: int
    attempt: int


class JobQueue:
    """A worker's side of the queue for one model.

    Args:
        sessions: session factory of the catalog.
        model_id: the model whose jobs this worker takes.
        lease: how long a claim is ours before another worker may take it; :meth:`heartbeat` renews it every third
            of that while the job is worked on, so it bounds how long a dead worker's jobs wait, not how long a
            batch may take.
        max_attempts: a job whose worker died this many times (a photo that kills the process) is failed.
        holder: who holds the leases (default: this process, :func:`lease_holder`).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        model_id: int,
        *,
        lease: timedelta = timedelta(minutes=1),
        max_attempts: int = 3,
        holder: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.model_id = model_id
        self.lease = lease
        self.max_attempts = max_attempts
        self.holder = holder or lease_holder()

    def _expired(self, now: datetime) -> ColumnElement[bool]:
        return (PhotoJob.state == JobState.RUNNING) & (PhotoJob.leased_until < now)

    def claimable(self, now: datetime | None = None) -> ColumnElement[bool]:
        """The jobs of this model a claim at ``now`` may take: pending, or running with a lease that ran out (and
        attempts left). For reading what is still to do (``roomscan backfill``)."""
        now = now or utcnow()
        return (PhotoJob.model_id == self.model_id) & or_(
            PhotoJob.state == JobState.PENDING, self._expired(now) & (PhotoJob.attempts < self.max_attempts)
        )

    def reclaim_orphans(self) -> int:
        """End the leases of running jobs whose holder was a process of this host that is gone (killed, crashed),
        so that they are claimed at once rather than when their lease runs out. Returns how many.

        Holders on other hosts are never touched: their leases decide. A job ended this way still counts its
        attempt, so a photo that kills the worker every time is failed after ``max_attempts``.
        """
        now = utcnow()
        with self.sessions() as session:
            holders = session.scalars(
                select(PhotoJob.leased_by)
                .distinct()
                .where(
                    PhotoJob.state == JobState.RUNNING,
                    PhotoJob.leased_until >= now,
                    PhotoJob.leased_by.startswith(_host() + "/", autoescape=True),
                )
            ).all()
            gone = [holder for holder in holders if holder and _holder_is_gone(holder)]
            if not gone:
                return 0
            result = session.execute(
                update(PhotoJob)
                .where(PhotoJob.state == JobState.RUNNING, PhotoJob.leased_by.in_(gone))
                .values(leased_until=now - timedelta(seconds=1))
                .execution_options(synchronize_session=False)
            )
            session.commit()
        reclaimed = int(result.rowcount or 0)  # type: ignore[attr-defined]
        log.info("taking over %d job(s) left running by %s, which no longer runs", reclaimed, ", ".join(gone))
        return reclaimed

    def claim(self, limit: int, *, ids: Sequence[int] | None = None) -> list[Claim]:
        """Take up to ``limit`` jobs, oldest first: pending ones, and running ones whose lease ran out; with
        ``ids``, only among those jobs (the others, held by a live worker or done, are left alone).

        One statement: ``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) RETURNING``, so
        concurrent workers on PostgreSQL each get different jobs without waiting; SQLite serialises it.
        """
        now = utcnow()
        expired = self._expired(now)
        with self.sessions() as session, session.begin():
            # A job whose worker died on every attempt (a photo that kills the process) stops here.
            session.execute(
                update(PhotoJob)
                .where(PhotoJob.model_id == self.model_id, expired, PhotoJob.attempts >= self.max_attempts)
                .values(
                    state=JobState.FAILED,
                    leased_until=None,
                    leased_by=None,
                    error=f"the worker stopped while detecting this photo, {self.max_attempts} times; "
                    "`roomscan worker --retry-failed` tries again",
                )
                .execution_options(synchronize_session=False)
            )
            picked = (
                select(PhotoJob.id)
                .where(self.claimable(now))
                .order_by(PhotoJob.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            if ids is not None:
                picked = picked.where(PhotoJob.id.in_(list(ids)))
            rows = session.execute(
                update(PhotoJob)
                .where(PhotoJob.id.in_(picked.scalar_subquery()))
                .values(
                    state=JobState.RUNNING,
                    leased_until=now + self.lease,
                    leased_by=self.holder,
                    attempts=PhotoJob.attempts + 1,
                    updated_at=utcnow(),
                )
                .returning(PhotoJob.id, PhotoJob.photo_id, PhotoJob.attempts)
                .execution_options(synchronize_session=False)
            ).all()
        return sorted(Claim(job_id, photo_id, attempt) for job_id, photo_id, attempt in rows)

    def renew(self, claims: Sequence[Claim]) -> int:
        """Extend the leases of ``claims`` that are still ours. Returns how many were."""
        until = utcnow() + self.lease
        renewed = 0
        with self.sessions() as session, session.begin():
            for claim in claims:
                result = session.execute(
                    update(PhotoJob)
                    .where(*self._held(claim))
                    .values(leased_until=until)
                    .execution_options(synchronize_session=False)
                )
                renewed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return renewed

    @contextmanager
    def heartbeat(self, claims: Sequence[Claim]) -> Iterator[None]:
        """Renew ``claims``' leases every third of a lease while the block runs, so a slow batch keeps them while
        a dead worker's lease runs out soon (one lease after its last renewal)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    self.renew(claims)
                except Exception:  # noqa: BLE001 - e.g. the database is away for a moment: the next beat retries
                    log.warning("renewing the leases of jobs %s failed:\n%s", [c.job_id for c in claims],
                                traceback.format_exc())

        thread = threading.Thread(target=beat, name="roomscan-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _held(self, claim: Claim) -> tuple[ColumnElement[bool], ...]:
        return (PhotoJob.id == claim.job_id, PhotoJob.state == JobState.RUNNING, PhotoJob.attempts == claim.attempt)

    def _settle(self, session: Session, claim: Claim, state: JobState, error: str | None, **values: object) -> bool:
        """Move the job to ``state`` if this worker still holds it (running, with our attempt number).

        One conditional UPDATE: it takes the row's write lock (on SQLite the database's) before checking, so no
        worker that took the job over can slip in between the check and the result. False when we lost it: the
        new holder stores its own result.
        """
        result = session.execute(
            update(PhotoJob)
            .where(*self._held(claim))
            .values(state=state, error=error, leased_until=None, leased_by=None, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]

    def complete(self, session: Session, claim: Claim) -> bool:
        """Mark the job done in the caller's transaction, which stores its result too: both commit or neither.
        False (store nothing) when the job is no longer ours."""
        return self._settle(session, claim, JobState.DONE, None)

    def fail(self, claim: Claim, error: str, *, final: bool) -> bool:
        """Record an error: ``final`` fails the job; otherwise it goes back to pending for another attempt.
        False when the job is no longer ours."""
        with self.sessions() as session, session.begin():
            state = JobState.FAILED if final else JobState.PENDING
            return self._settle(session, claim, state, error[:2000])

    def release(self, claims: Sequence[Claim]) -> int:
        """Give back jobs this worker claimed but will not work on (it is stopping): pending again, the attempt
        not counted. Returns how many were still ours."""
        released = 0
        with self.sessions() as session, session.begin():
            for claim in claims:
                released += self._settle(session, claim, JobState.PENDING, None, attempts=claim.attempt - 1)
        return released

    def pending_count(self) -> int:
        """Jobs of this model still to do (pending or running)."""
        with self.sessions() as session:
            return session.scalar(
                select(func.count()).where(
                    PhotoJob.model_id == self.model_id, PhotoJob.state.in_((JobState.PENDING, JobState.RUNNING))
                )
            ) or 0
