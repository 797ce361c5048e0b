"""The detection worker: runs the catalog's queued photo jobs through the detector and updates listings' roll-ups.

The queue is ``catalog.jobs``: an accepted photo's job commits with it, so it survives any crash. A worker claims
a batch with a lease, renews it while it detects, and stores each photo's detections in the same transaction that
marks its job done. Any number of workers, threads of ``roomscan serve`` or ``roomscan worker`` processes on many
machines, can share one catalog (PostgreSQL; SQLite for one machine): a dead worker's jobs are claimed again
when its lease runs out, at once by a worker of the same host, and no job is completed twice.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from roomscan.backends import Detector
from roomscan.catalog import insights, store
from roomscan.catalog.jobs import Claim, JobQueue, lease_holder
from roomscan.catalog.models import Listing, ListingPhoto, Photo, PhotoJob
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.image import load_image
from roomscan.errors import RoomscanError
from roomscan.taxonomy import Taxonomy

if TYPE_CHECKING:
    from roomscan.detection.core import Detections
    from roomscan.insights.classify import RoomClassifier
    from roomscan.insights.rooms import RoomScores

log = logging.getLogger(__name__)

__all__ = ["DetectionWorker", "WorkerStats", "lease_holder"]


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
    """Claims jobs for one model, detects, stores detections, refreshes the affected listings.

    Args:
        sessions: session factory of the catalog.
        photos: where photo bytes are stored.
        detector: the loaded detector; its ``info`` names the model the jobs are for.
        model_id: the catalog id of that model (``store.ensure_model``).
        taxonomy: thresholds for the roll-up (the detector's taxonomy).
        batch_size: photos per detector call.
        lease: how long a claimed job is ours before another worker may take it over (see ``JobQueue``).
        max_attempts: a job that fails this many times is marked ``failed`` with its error.
        on_settle: called with ``("done", job created_at)``, ``("failed", None)`` or ``("retried", None)`` for each
            job this worker settles (metrics: ``roomscan.metrics.Metrics.observe_job``).
        rooms: scores each photo's room type from its detections (``insights.classify.RoomClassifier``, built
            for ``detector``); stored with the detections. A photo whose room scoring fails keeps its detections
            (the failure is logged, no room is stored).
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
        on_settle: Callable[[str, datetime | None], None] | None = None,
        rooms: RoomClassifier | None = None,
    ) -> None:
        self.sessions = sessions
        self.photos = photos
        self.detector = detector
        self.model_id = model_id
        self.taxonomy = taxonomy
        self.batch_size = batch_size
        self.queue = JobQueue(sessions, model_id, lease=lease, max_attempts=max_attempts)
        self.stats = WorkerStats()
        # Claims of a batch the catalog went away under (their result or error could not be recorded): given
        # back once it answers again, so they do not wait out their lease under a holder that is alive.
        self._abandoned: list[Claim] = []
        self.on_settle = on_settle
        self.rooms = rooms

    @property
    def lease(self) -> timedelta:
        return self.queue.lease

    @property
    def max_attempts(self) -> int:
        return self.queue.max_attempts

    @property
    def holder(self) -> str:
        return self.queue.holder

    # -- claiming -----------------------------------------------------------------------------------------------
    def reclaim_orphans(self) -> int:
        """Take over at once the running jobs of a process of this host that is gone (``JobQueue``)."""
        reclaimed = self.queue.reclaim_orphans()
        self.stats.reclaimed += reclaimed
        return reclaimed

    def claim(self, limit: int) -> list[Claim]:
        """Take up to ``limit`` jobs (pending, or running with an expired lease or a gone holder)."""
        if reclaimed := self.reclaim_orphans():
            log.warning("took over %d job(s) a stopped worker of this host had left running", reclaimed)
        return self.queue.claim(limit)

    def pending_count(self) -> int:
        return self.queue.pending_count()

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
        if self._abandoned:
            self.queue.release(self._abandoned)  # settled ones are no longer ours: release skips them
            self._abandoned = []
        claims = self.claim(self.batch_size)
        if not claims:
            return 0
        with self.queue.heartbeat(claims):
            try:
                return self._process(claims)
            except Exception:
                self._abandoned = claims
                raise

    def _process(self, claims: list[Claim]) -> int:
        with self.sessions() as session:
            sha_by_photo = dict(
                session.execute(
                    select(Photo.id, Photo.sha256).where(Photo.id.in_([c.photo_id for c in claims]))
                ).all()
            )
        images, ready = [], []
        for claim in claims:
            try:
                if claim.photo_id not in sha_by_photo:
                    raise RoomscanError(f"photo {claim.photo_id} was deleted")
                loaded = load_image(self.photos.get(sha_by_photo[claim.photo_id]), name=f"photo {claim.photo_id}")
            except RoomscanError as exc:
                self._fail(claim, str(exc), final=True)
                continue
            images.append(loaded.image)
            ready.append(claim)
        if not ready:
            return len(claims)
        try:
            results = self.detector.predict(images, batch_size=self.batch_size)
        except Exception as exc:
            log.exception("detection failed for jobs %s", [c.job_id for c in ready])
            for claim in ready:
                self._fail(claim, f"{type(exc).__name__}: {exc}", final=claim.attempt >= self.max_attempts)
            return len(claims)
        for claim, dets in zip(ready, results, strict=True):
            try:
                self._complete(claim, dets)
            except Exception as exc:
                log.exception("storing the detections of job %s failed", claim.job_id)
                self._fail(claim, f"{type(exc).__name__}: {exc}", final=claim.attempt >= self.max_attempts)
        return len(claims)

    def _room_scores(self, claim: Claim, dets: Detections) -> RoomScores | None:
        if self.rooms is None:
            return None
        try:
            return self.rooms.scores(dets)
        except Exception:  # the detections are worth keeping without a room type
            log.exception("scoring the room type of photo %s failed; its detections are stored without one",
                          claim.photo_id)
            return None

    def _complete(self, claim: Claim, dets: Detections) -> None:
        """Store the detections (and room scores) and mark the job done in one transaction, if the job is still
        ours."""
        room = self._room_scores(claim, dets)  # before the transaction: no lock held while it computes
        with self.sessions() as session, session.begin():
            if not self.queue.complete(session, claim):
                return
            created = None
            if self.on_settle is not None:
                created = session.scalar(select(PhotoJob.created_at).where(PhotoJob.id == claim.job_id))
            store.save_detections(session, claim.photo_id, self.model_id, dets)
            if room is not None:
                # Before the roll-ups below, which read it into listing_rooms.
                insights.save_room_scores(session, claim.photo_id, self.model_id, room)
            listing_ids = session.scalars(
                select(ListingPhoto.listing_id)
                .where(ListingPhoto.photo_id == claim.photo_id)
                .order_by(ListingPhoto.listing_id)
            ).all()
            for listing_id in listing_ids:
                listing = session.get(Listing, listing_id)
                if listing is None:  # deleted since its photos were read
                    continue
                # The refresh locks the listing: two workers finishing two of its photos do not interleave.
                store.refresh_listing_amenities(session, listing, self.model_id, self.taxonomy)
        self.stats.done += 1
        self._settled("done", created)

    def _fail(self, claim: Claim, error: str, *, final: bool) -> None:
        if not self.queue.fail(claim, error, final=final):
            return
        if final:
            self.stats.failed += 1
        else:
            self.stats.retried += 1
        self._settled("failed" if final else "retried", None)

    def _settled(self, outcome: str, created: datetime | None) -> None:
        if self.on_settle is None:
            return
        try:
            self.on_settle(outcome, created)
        except Exception:  # metrics must never stop detection
            log.exception("on_settle(%r) failed", outcome)

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

    def run_forever(
        self, stop: threading.Event, poll_seconds: float = 1.0, on_batch: Callable[[int], None] | None = None
    ) -> None:
        """Serve jobs (and stale roll-ups) until ``stop`` is set, which ends it after the batch in hand; errors
        (the database away for a while) are logged and retried, never end the loop. ``on_batch(n)`` follows each
        batch of ``n`` jobs."""
        failing = 0
        while not stop.is_set():
            try:
                n = self.process_once() or self.refresh_stale()
                if failing:
                    log.warning("worker carries on after %d failed attempt(s)", failing)
                failing = 0
            except Exception:  # noqa: BLE001
                failing += 1
                if failing == 1 or failing % 30 == 0:
                    log.error("worker iteration failed (%d in a row):\n%s", failing, traceback.format_exc())
                n = 0
            if n and on_batch:
                on_batch(n)
            if n == 0:
                stop.wait(poll_seconds if not failing else min(10.0, poll_seconds * 2 ** min(failing, 4)))

    def start_thread(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run_forever, args=(stop,), name="roomscan-worker", daemon=True)
        thread.start()
        return thread, stop
