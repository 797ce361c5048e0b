"""The detection worker: runs persisted photo jobs through the detector and updates listings' roll-ups.

Jobs live in the catalog (``photo_jobs``), so an accepted photo survives a crash: a job is claimed by setting it
``running`` with a lease held by this process (``leased_by``) and renewed while the job is worked on. If the
process dies, a worker on the same host (the restarted server, ``roomscan worker``) sees that the holder is gone
and takes its jobs over at once; a worker elsewhere waits for the lease (a minute) to run out, so a live worker
on another host, however slow its batch, is never robbed. Several workers, in one process or many, can share one
catalog.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from roomscan.backends._base import Detector
from roomscan.catalog import store
from roomscan.catalog.models import Listing, ListingPhoto, Photo, PhotoJob
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.image import load_image
from roomscan.errors import RoomscanError
from roomscan.taxonomy import Taxonomy

log = logging.getLogger(__name__)

__all__ = ["DetectionWorker", "WorkerStats", "lease_holder"]

# Tells this process apart from an earlier one that had the same pid (a container's pid 1 after a restart).
_BOOT = secrets.token_hex(4)


def _now() -> datetime:
    return datetime.now(UTC)


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


@dataclass
class WorkerStats:
    done: int = 0
    failed: int = 0
    retried: int = 0
    refreshed: int = 0
    """Listings whose stale roll-up this worker recomputed."""
    reclaimed: int = 0
    """Running jobs taken over from a process of this host that was gone (killed, crashed)."""


class DetectionWorker:
    """Claims pending jobs for one model, detects, stores detections, refreshes the affected listings.

    Args:
        sessions: session factory of the catalog.
        photos: where photo bytes are stored.
        detector: the loaded detector; its ``info`` names the model the jobs are for.
        model_id: the catalog id of that model (``store.ensure_model``).
        taxonomy: thresholds for the roll-up (the detector's taxonomy).
        batch_size: photos per detector call.
        lease: how long a claimed job is ours before another worker may take it over; renewed every third of it
            while the job is worked on, so it bounds how long a dead worker's jobs wait, not how long a batch takes.
        max_attempts: a job that fails this many times is marked ``failed`` with its error.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        photos: PhotoStore,
        detector: Detector,
        model_id: int,
        taxonomy: Taxonomy,
        *,
        batch_size: int = 4,
        lease: timedelta = timedelta(minutes=1),
        max_attempts: int = 3,
    ) -> None:
        self.sessions = sessions
        self.photos = photos
        self.detector = detector
        self.model_id = model_id
        self.taxonomy = taxonomy
        self.batch_size = batch_size
        self.lease = lease
        self.max_attempts = max_attempts
        self.holder = lease_holder()
        self.stats = WorkerStats()

    # -- claiming -----------------------------------------------------------------------------------------------
    def reclaim_orphans(self) -> int:
        """End the leases of running jobs whose holder was a process of this host that is gone (killed mid-way,
        crashed), so that they are claimed at once rather than when their lease runs out. Returns how many.

        Called on start-up and before every claim. Holders on other hosts are never touched: their leases decide.
        A job ended this way still counts its attempt, so a photo that kills the worker every time is failed
        after ``max_attempts`` (see :meth:`claim`).
        """
        now = _now()
        with self.sessions() as session:
            holders = session.scalars(
                select(PhotoJob.leased_by)
                .distinct()
                .where(
                    PhotoJob.state == "running",
                    PhotoJob.leased_until >= now,
                    PhotoJob.leased_by.startswith(_host() + "/", autoescape=True),
                )
            ).all()
            gone = [holder for holder in holders if holder and _holder_is_gone(holder)]
            if not gone:
                return 0
            result = session.execute(
                update(PhotoJob)
                .where(PhotoJob.state == "running", PhotoJob.leased_by.in_(gone))
                .values(leased_until=now - timedelta(seconds=1))
                .execution_options(synchronize_session=False)
            )
            session.commit()
        reclaimed = int(result.rowcount or 0)  # type: ignore[attr-defined]  # a CursorResult for UPDATE
        log.info("taking over %d job(s) left running by %s, which no longer runs", reclaimed, ", ".join(gone))
        self.stats.reclaimed += reclaimed
        return reclaimed

    def claim(self, limit: int) -> list[tuple[int, int]]:
        """Atomically take up to ``limit`` jobs (pending, or running with an expired lease or a gone holder).

        Returns ``(job_id, attempt)`` pairs: the attempt number is this worker's token, so a worker whose lease ran
        out and was taken over cannot complete or fail a job that now belongs to another.
        """
        if reclaimed := self.reclaim_orphans():
            log.warning("took over %d job(s) a stopped worker of this host had left running", reclaimed)
        now = _now()
        expired = (PhotoJob.state == "running") & (PhotoJob.leased_until < now)
        claimable = or_(PhotoJob.state == "pending", expired & (PhotoJob.attempts < self.max_attempts))
        claimed: list[tuple[int, int]] = []
        with self.sessions() as session:
            # A job whose worker died on every attempt (a photo that kills the process) stops here.
            session.execute(
                update(PhotoJob)
                .where(PhotoJob.model_id == self.model_id, expired, PhotoJob.attempts >= self.max_attempts)
                .values(
                    state="failed",
                    leased_until=None,
                    leased_by=None,
                    error=f"the worker stopped while detecting this photo, {self.max_attempts} times; "
                    "`roomscan worker --retry-failed` tries again",
                )
                .execution_options(synchronize_session=False)
            )
            session.commit()
            candidates = session.execute(
                select(PhotoJob.id, PhotoJob.attempts)
                .where(PhotoJob.model_id == self.model_id, claimable)
                .order_by(PhotoJob.id)
                .limit(limit * 2)
            ).all()
            for job_id, attempts in candidates:
                # Conditional update: only one worker's UPDATE matches, even under concurrency.
                result = session.execute(
                    update(PhotoJob)
                    .where(PhotoJob.id == job_id, PhotoJob.attempts == attempts, claimable)
                    .values(state="running", leased_until=now + self.lease, leased_by=self.holder,
                            attempts=attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                session.commit()
                if result.rowcount == 1:  # type: ignore[attr-defined]  # a CursorResult for UPDATE
                    claimed.append((job_id, attempts + 1))
                if len(claimed) >= limit:
                    break
        return claimed

    def pending_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(
                select(func.count()).where(
                    PhotoJob.model_id == self.model_id, PhotoJob.state.in_(("pending", "running"))
                )
            ) or 0

    # -- processing ---------------------------------------------------------------------------------------------
    def refresh_stale(self, limit: int = 100) -> int:
        """Recompute the roll-ups that lag their photos (a photo attached while its detection was running)."""
        with self.sessions() as session, session.begin():
            n = store.refresh_stale_listings(session, self.model_id, self.taxonomy, limit=limit)
        self.stats.refreshed += n
        return n

    def stale_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).where(Listing.rollup_stale)) or 0

    def process_once(self) -> int:
        """Claim and process one batch. Returns how many jobs were processed (0 when there was no work)."""
        claimed = self.claim(self.batch_size)
        if not claimed:
            return 0
        attempt_of = dict(claimed)
        with self._heartbeat(attempt_of):
            return self._process(attempt_of)

    @contextmanager
    def _heartbeat(self, attempt_of: dict[int, int]) -> Iterator[None]:
        """Renew the leases of the jobs being worked on every third of a lease, so that a slow batch keeps
        them while a dead worker's lease runs out soon (one lease after its last renewal)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    self._renew(attempt_of)
                except Exception:  # noqa: BLE001 - e.g. the database is away for a moment: the next beat retries
                    log.warning("renewing the leases of jobs %s failed:\n%s", list(attempt_of), traceback.format_exc())

        thread = threading.Thread(target=beat, name="roomscan-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _renew(self, attempt_of: dict[int, int]) -> None:
        until = _now() + self.lease
        with self.sessions() as session, session.begin():
            for job_id, attempt in attempt_of.items():
                session.execute(
                    update(PhotoJob)
                    .where(PhotoJob.id == job_id, PhotoJob.state == "running", PhotoJob.attempts == attempt)
                    .values(leased_until=until)
                    .execution_options(synchronize_session=False)
                )

    def _process(self, attempt_of: dict[int, int]) -> int:
        with self.sessions() as session:
            jobs = session.scalars(select(PhotoJob).where(PhotoJob.id.in_(attempt_of))).all()
            sha_by_photo = dict(
                session.execute(select(Photo.id, Photo.sha256).where(Photo.id.in_([j.photo_id for j in jobs]))).all()
            )
        images, ready = [], []
        for job in jobs:
            try:
                loaded = load_image(self.photos.get(sha_by_photo[job.photo_id]), name=f"photo {job.photo_id}")
            except RoomscanError as exc:
                self._fail(job.id, attempt_of[job.id], str(exc), final=True)
                continue
            images.append(loaded.image)
            ready.append(job)
        if not ready:
            return len(jobs)
        try:
            results = self.detector.predict(images, batch_size=self.batch_size)
        except Exception as exc:
            log.exception("detection failed for jobs %s", [j.id for j in ready])
            for job in ready:
                attempt = attempt_of[job.id]
                self._fail(job.id, attempt, f"{type(exc).__name__}: {exc}", final=attempt >= self.max_attempts)
            return len(jobs)
        for job, dets in zip(ready, results, strict=True):
            attempt = attempt_of[job.id]
            try:
                self._complete(job.id, attempt, job.photo_id, dets)
            except Exception as exc:
                log.exception("storing the detections of job %s failed", job.id)
                self._fail(job.id, attempt, f"{type(exc).__name__}: {exc}", final=attempt >= self.max_attempts)
        return len(jobs)

    def _settle(self, session: Session, job_id: int, attempt: int, state: str, error: str | None) -> bool:
        """Move the job to ``state`` if this worker still holds it (running, with our attempt number).

        One conditional UPDATE: it takes the row's write lock (on SQLite the database's) before checking, so no
        worker that took the job over can slip in between the check and the result. False when we lost it: the
        new holder stores its own result.
        """
        result = session.execute(
            update(PhotoJob)
            .where(PhotoJob.id == job_id, PhotoJob.state == "running", PhotoJob.attempts == attempt)
            .values(state=state, error=error, leased_until=None, leased_by=None)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]  # a CursorResult for UPDATE

    def _complete(self, job_id: int, attempt: int, photo_id: int, dets) -> None:  # type: ignore[no-untyped-def]
        with self.sessions() as session, session.begin():
            if not self._settle(session, job_id, attempt, "done", None):
                return
            store.save_detections(session, photo_id, self.model_id, dets)
            listing_ids = session.scalars(
                select(ListingPhoto.listing_id).where(ListingPhoto.photo_id == photo_id).order_by(ListingPhoto.listing_id)
            ).all()
            for listing_id in listing_ids:
                listing = session.get(Listing, listing_id)
                if listing is None:  # deleted since its photos were read
                    continue
                # The refresh locks the listing: two workers finishing two of its photos do not interleave.
                store.refresh_listing_amenities(session, listing, self.model_id, self.taxonomy)
        self.stats.done += 1

    def _fail(self, job_id: int, attempt: int, error: str, *, final: bool) -> None:
        with self.sessions() as session, session.begin():
            if not self._settle(session, job_id, attempt, "failed" if final else "pending", error[:2000]):
                return
        if final:
            self.stats.failed += 1
        else:
            self.stats.retried += 1

    # -- loops --------------------------------------------------------------------------------------------------
    def run_until_idle(self, on_progress: Callable[[int], None] | None = None) -> WorkerStats:
        """Process jobs until none is claimable, then refresh stale roll-ups; ``on_progress(n)`` is called after
        each batch of ``n`` jobs."""
        while True:
            n = self.process_once()
            if n == 0 and self.refresh_stale() == 0:
                return self.stats
            if n and on_progress:
                on_progress(n)

    def run_forever(self, stop: threading.Event, poll_seconds: float = 1.0) -> None:
        """Serve jobs (and stale roll-ups) until ``stop`` is set; errors are logged and never end the loop."""
        while not stop.is_set():
            try:
                n = self.process_once() or self.refresh_stale()
            except Exception:  # noqa: BLE001
                log.error("worker iteration failed:\n%s", traceback.format_exc())
                n = 0
            if n == 0:
                stop.wait(poll_seconds)

    def start_thread(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run_forever, args=(stop,), name="roomscan-worker", daemon=True)
        thread.start()
        return thread, stop
