"""Backfill: detect, with one model, every catalog photo that model has not processed, on Ray Data.

The driver reads the references of the photos still to do (job id, photo id, SHA-256) from the catalog in keyset
pages, into a Ray Dataset. An actor pool (:class:`_DetectActor`: one detector per actor, CPU or GPU) claims each
batch's jobs through the queue, reads the photos from the photo store and detects. The driver writes results back
in batches: each job is settled conditionally on its claim (``JobQueue.complete``) in the transaction that stores
its detections and refreshes its listings' roll-ups.

Guarantees:

* A photo is detected by one process at a time: actors claim jobs as ``DetectionWorker`` does (a lease held by
  the actor's process), so a worker running meanwhile takes other photos, and each skips what the other holds.
* A job is settled once: a result is stored only while its claim still holds (else the new holder stores its own).
* Idempotent: only jobs not ``done`` and not ``failed`` are read; a second run finds nothing to do.
* Resumable: what a stopped run finished is committed batch by batch; on start a run takes over at once the jobs
  of a process of this host that is gone (a killed run's actors), so it finishes only what is missing.
* A bad photo (missing file, corrupt bytes) fails its own job with the error; the run carries on.

Example:
    >>> stats = backfill(settings, listings="Beach%", actors=2, batch_size=8)  # doctest: +SKIP
    >>> stats.done, stats.failed
    (1200, 3)
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from roomscan.bulk._ray import quiet_ray_data, ray_session
from roomscan.bulk.selection import listing_filter
from roomscan.catalog import insights, jobs, store
from roomscan.catalog.jobs import Claim, JobQueue
from roomscan.catalog.models import JobState, Listing, ListingPhoto, Photo, PhotoJob
from roomscan.detection.core import make_detections
from roomscan.errors import RoomscanError
from roomscan.settings import Settings

if TYPE_CHECKING:
    from roomscan.taxonomy import Taxonomy

log = logging.getLogger(__name__)

__all__ = ["BackfillStats", "backfill"]

# What an actor says about each photo of its batch.
DONE, FAILED, RETRY, TAKEN = "done", "failed", "retry", "taken"


@dataclass
class BackfillStats:
    """What a backfill run did; ``total`` is what it found to do when it started."""

    model_key: str = ""
    total: int = 0
    done: int = 0
    failed: int = 0
    """Photos that cannot be detected (missing file, corrupt bytes): their jobs are ``failed`` with the error."""
    retried: int = 0
    """Photos whose detection raised (the model, not the photo): pending again for a later run or a worker."""
    skipped: int = 0
    """Photos another worker claimed first (or took over): that worker stores them."""
    queued: int = 0
    """Jobs created for selected photos that had none under this model."""
    refreshed: int = 0
    stopped: bool = False
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.retried + self.skipped

    @property
    def photos_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


# -- reading what to do (driver) ---------------------------------------------------------------------------------
def _selected_photos(listings: str | None) -> Any:
    return (
        select(ListingPhoto.photo_id)
        .join(Listing, Listing.id == ListingPhoto.listing_id)
        .where(listing_filter(listings))
    )


def queue_selected(sessions: sessionmaker[Session], model_id: int, listings: str | None) -> int:
    """Create the missing jobs of the selected listings' photos under ``model_id``. Returns how many."""
    with sessions() as session, session.begin():
        return jobs.enqueue_missing(session, model_id, among=None if listings is None else _selected_photos(listings))


def photo_refs(
    queue: JobQueue, *, listings: str | None = None, page: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """Pages of ``{job_id, photo_id, sha256}`` of the jobs still to do, in job id order (keyset: ``id > last``)."""
    after = 0
    while True:
        stmt = (
            select(PhotoJob.id, PhotoJob.photo_id, Photo.sha256)
            .join(Photo, Photo.id == PhotoJob.photo_id)
            .where(PhotoJob.id > after, queue.claimable())
            .order_by(PhotoJob.id)
            .limit(page)
        )
        if listings is not None:
            stmt = stmt.where(PhotoJob.photo_id.in_(_selected_photos(listings)))
        with queue.sessions() as session:
            rows = session.execute(stmt).all()
        if not rows:
            return
        yield [{"job_id": j, "photo_id": p, "sha256": s} for j, p, s in rows]
        after = rows[-1][0]


# -- detecting (actors) ------------------------------------------------------------------------------------------
class _DetectActor:
    """One detector per actor, loaded once; claims its batch's jobs, reads the photos, detects."""

    def __init__(self, settings: Settings, options: dict[str, Any], model_id: int, lease_s: float,
                 max_attempts: int) -> None:
        from roomscan.insights.classify import RoomClassifier
        from roomscan.services import Services, load_detector

        self.settings = settings
        self.services = Services.open(settings)
        self.detector = load_detector(settings, **options)
        self.rooms = RoomClassifier(self.detector, settings.room_types)
        self.queue = JobQueue(self.services.sessions, model_id, lease=timedelta(seconds=lease_s),
                              max_attempts=max_attempts)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from roomscan.detection.image import load_image

        job_ids = [int(j) for j in batch["job_id"]]
        claims = {c.job_id: c for c in self.queue.claim(len(job_ids), ids=job_ids)}
        outcome = {j: (TAKEN, "", "") for j in job_ids}
        images, ready = [], []
        with self.queue.heartbeat(list(claims.values())):
            for job_id, photo_id, sha in zip(job_ids, batch["photo_id"], batch["sha256"], strict=True):
                if job_id not in claims:
                    continue
                try:
                    data = self.services.photos.get(str(sha))
                    loaded = load_image(data, name=f"photo {photo_id}", max_pixels=self.settings.max_pixels)
                except RoomscanError as exc:  # a missing file (NotFoundError), corrupt bytes (ImageError)
                    outcome[job_id] = (FAILED, str(exc), "")
                    continue
                except OSError as exc:  # the store unreadable for this photo (permissions, a remote error)
                    outcome[job_id] = (FAILED, f"photo {photo_id}: {type(exc).__name__}: {exc}", "")
                    continue
                images.append(loaded.image)
                ready.append(job_id)
            if ready:
                try:
                    results = self.detector.predict(images, batch_size=len(images))
                except Exception as exc:  # the model failed, not a photo: retried later
                    log.exception("detection failed for jobs %s", ready)
                    results = None
                    for job_id in ready:
                        outcome[job_id] = (RETRY, f"{type(exc).__name__}: {exc}", "")
                if results is not None:
                    for job_id, dets in zip(ready, results, strict=True):
                        outcome[job_id] = (DONE, "", _pack(dets, self._room_scores(job_id, dets)))
        return {
            "job_id": np.asarray(job_ids, dtype=np.int64),
            "photo_id": np.asarray(batch["photo_id"], dtype=np.int64),
            "attempt": np.asarray([claims[j].attempt if j in claims else 0 for j in job_ids], dtype=np.int64),
            "outcome": np.asarray([outcome[j][0] for j in job_ids], dtype=object),
            "error": np.asarray([outcome[j][1] for j in job_ids], dtype=object),
            "detections": np.asarray([outcome[j][2] for j in job_ids], dtype=object),
            "holder": np.asarray([self.queue.holder] * len(job_ids), dtype=object),
        }


    def _room_scores(self, job_id: int, dets: Any) -> dict[str, Any] | None:
        """The photo's room scores (``RoomScores.to_dict()``), or None when scoring fails: the detections stand."""
        try:
            return self.rooms.scores(dets).to_dict()
        except Exception:
            log.exception("scoring the room type of job %s failed; its detections are stored without one", job_id)
            return None


def _pack(dets: Any, rooms: dict[str, Any] | None = None) -> str:
    from roomscan.detection.core import labels_of

    return json.dumps({
        "xyxy": np.asarray(dets.xyxy, dtype=float).tolist(),
        "confidence": np.asarray(dets.confidence if dets.confidence is not None else [], dtype=float).tolist(),
        "class_id": np.asarray(dets.class_id if dets.class_id is not None else [], dtype=int).tolist(),
        "labels": labels_of(dets),
        "rooms": rooms,
    })


def _unpack_rooms(text: str) -> Any:
    from roomscan.insights.rooms import RoomScores

    rooms = json.loads(text).get("rooms")
    return None if rooms is None else RoomScores.from_dict(rooms)


def _unpack(text: str) -> Any:
    d = json.loads(text)
    return make_detections(d["xyxy"], d["confidence"], d["class_id"], d["labels"])


# -- writing back (driver) ---------------------------------------------------------------------------------------
class _Writer:
    """Settles the actors' results batch by batch: a job done with its detections and its listings' roll-ups in
    one transaction, conditional on the claim."""

    def __init__(self, sessions: sessionmaker[Session], queue: JobQueue, taxonomy: Taxonomy,
                 stats: BackfillStats) -> None:
        self.sessions, self.queue, self.taxonomy, self.stats = sessions, queue, taxonomy, stats
        self.holders: set[str] = set()

    def write(self, batch: dict[str, np.ndarray]) -> None:
        rows = list(zip(batch["job_id"], batch["photo_id"], batch["attempt"], batch["outcome"], batch["error"],
                        batch["detections"], batch["holder"], strict=True))
        self.holders.update(str(h) for h in batch["holder"])
        done_photos: list[int] = []
        with self.sessions() as session, session.begin():
            for job_id, photo_id, attempt, outcome, _error, packed, _holder in rows:
                if outcome != DONE:
                    continue
                if self.queue.complete(session, Claim(int(job_id), int(photo_id), int(attempt))):
                    store.save_detections(session, int(photo_id), self.queue.model_id, _unpack(str(packed)))
                    if (rooms := _unpack_rooms(str(packed))) is not None:  # before the roll-ups, which read them
                        insights.save_room_scores(session, int(photo_id), self.queue.model_id, rooms)
                    done_photos.append(int(photo_id))
                else:
                    self.stats.skipped += 1  # the lease ran out and another worker took it over
            if done_photos:
                listing_ids = session.scalars(
                    select(ListingPhoto.listing_id)
                    .distinct()
                    .where(ListingPhoto.photo_id.in_(done_photos))
                    .order_by(ListingPhoto.listing_id)  # id order: two writers lock listings without deadlock
                ).all()
                for listing_id in listing_ids:
                    listing = session.get(Listing, listing_id)
                    if listing is not None:
                        store.refresh_listing_amenities(session, listing, self.queue.model_id, self.taxonomy)
        self.stats.done += len(done_photos)
        for job_id, photo_id, attempt, outcome, error, _packed, _holder in rows:
            claim = Claim(int(job_id), int(photo_id), int(attempt))
            if outcome == TAKEN:
                self.stats.skipped += 1
            elif outcome in (FAILED, RETRY):
                final = outcome == FAILED or claim.attempt >= self.queue.max_attempts
                if not self.queue.fail(claim, str(error), final=final):
                    self.stats.skipped += 1
                elif final:
                    self.stats.failed += 1
                    if len(self.stats.errors) < 20:
                        self.stats.errors.append(str(error))
                else:
                    self.stats.retried += 1

    def release_unsettled(self) -> int:
        """After a stop: give back the jobs our actors claimed whose results never came (attempt not counted)."""
        if not self.holders:
            return 0
        with self.sessions() as session:
            rows = session.execute(
                select(PhotoJob.id, PhotoJob.photo_id, PhotoJob.attempts).where(
                    PhotoJob.model_id == self.queue.model_id,
                    PhotoJob.state == JobState.RUNNING,
                    PhotoJob.leased_by.in_(sorted(self.holders)),
                )
            ).all()
        return self.queue.release([Claim(j, p, a) for j, p, a in rows])


# -- the run -----------------------------------------------------------------------------------------------------
def backfill(
    settings: Settings,
    *,
    listings: str | None = None,
    ray_address: str | None = None,
    actors: int = 1,
    batch_size: int = 8,
    gpus_per_actor: float = 0.0,
    detector_options: dict[str, Any] | None = None,
    page_size: int = 1000,
    lease: timedelta = timedelta(minutes=5),
    max_attempts: int = 3,
    on_start: Callable[[BackfillStats], None] | None = None,
    on_progress: Callable[[BackfillStats], None] | None = None,
    stop: threading.Event | None = None,
) -> BackfillStats:
    """Detect with ``settings.model`` every selected photo it has not processed; see the module docstring.

    Args:
        settings: the catalog, the photo store and the model (``model``, ``taxonomy``, ``device``).
        listings: an id range (``100-200``) or a title pattern (SQL LIKE, ``Beach%``); all listings when None.
        ray_address: a Ray cluster (``ray://head:10001``, ``auto``); a local Ray when None.
        actors: detector actors (each loads the model once).
        batch_size: photos per detector call, and per write-back transaction.
        gpus_per_actor: GPUs each actor reserves (0: CPU, fractions share a GPU).
        detector_options: backend options (``image_size``, ``score_threshold``).
        page_size: job references read per catalog query.
        lease: how long an actor's claim holds without renewal (renewed while it detects).
        on_start, on_progress: called with the stats once the work is counted, and after each written batch.
        stop: set it to end the run after the batch in hand; unsettled claims are given back.

    Raises:
        ModelUnavailableError: the weights are not here and cannot be downloaded.
        RoomscanError: Ray cannot be started or reached, or an actor could not start (the cause in the message).
    """
    from roomscan.services import Services, load_detector

    options = dict(detector_options or {})
    if gpus_per_actor <= 0 and settings.device == "auto":
        # Ray hides GPUs from actors that reserved none; say so rather than let torch probe.
        settings = replace(settings, device="cpu")
    services = Services.open(settings)
    try:
        # Load the model here first: a missing-weights error is the clear ModelUnavailableError, before any Ray
        # start-up, and the catalog learns the model's key and taxonomy.
        detector = load_detector(replace(settings, device="cpu"), **options)  # the actors use the GPUs
        taxonomy, info = detector.taxonomy, detector.info
        del detector
        with services.sessions() as session, session.begin():
            model_id = store.ensure_model(session, info).id
        stats = BackfillStats(model_key=info.key)
        queue = JobQueue(services.sessions, model_id, lease=lease, max_attempts=max_attempts)
        queue.reclaim_orphans()  # a killed run's actors: their jobs are claimable at once
        stats.queued = queue_selected(services.sessions, model_id, listings)
        refs = [ref for page in photo_refs(queue, listings=listings, page=page_size) for ref in page]
        stats.total = len(refs)
        if on_start:
            on_start(stats)
        started = time.monotonic()
        if refs:
            _run(refs, settings, options, model_id, services.sessions, queue, taxonomy, stats,
                 ray_address=ray_address, actors=actors, batch_size=batch_size, gpus_per_actor=gpus_per_actor,
                 lease=lease, max_attempts=max_attempts, on_progress=on_progress, stop=stop, started=started)
        if not stats.stopped:
            while True:
                with services.sessions() as session, session.begin():
                    n = store.refresh_stale_listings(session, model_id, taxonomy, limit=100)
                stats.refreshed += n
                if n < 100:
                    break
        stats.seconds = time.monotonic() - started
        return stats
    finally:
        services.close()


def _run(refs: list[dict[str, Any]], settings: Settings, options: dict[str, Any], model_id: int,
         sessions: sessionmaker[Session], queue: JobQueue, taxonomy: Taxonomy, stats: BackfillStats, *,
         ray_address: str | None, actors: int, batch_size: int, gpus_per_actor: float, lease: timedelta,
         max_attempts: int, on_progress: Callable[[BackfillStats], None] | None, stop: threading.Event | None,
         started: float) -> None:
    import ray
    import ray.data

    writer = _Writer(sessions, queue, taxonomy, stats)
    with ray_session(ray_address):
        quiet_ray_data()
        blocks = max(1, min(len(refs) // max(batch_size, 1), 200))
        dataset = ray.data.from_items(refs, override_num_blocks=blocks).map_batches(
            _DetectActor,
            fn_constructor_args=(settings, options, model_id, lease.total_seconds(), max_attempts),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=gpus_per_actor or None,
            num_cpus=1,
        )
        batches = iter(dataset.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=1))
        try:
            for batch in batches:
                writer.write(batch)
                stats.seconds = time.monotonic() - started
                if on_progress:
                    on_progress(stats)
                if stop is not None and stop.is_set():
                    stats.stopped = True
                    break
        except ray.exceptions.RayError as exc:
            cause = str(exc).strip().splitlines()
            raise RoomscanError(f"backfill stopped: a Ray actor failed: {cause[-1] if cause else exc}") from exc
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # ends the execution: its actors stop claiming before claims are given back
            # Stopped, failed or interrupted: what was written stays; claims in flight go back to the queue.
            if stats.stopped or sys.exc_info()[0] is not None:
                released = writer.release_unsettled()
                log.info("stopped: %d claimed photo(s) given back", released)
