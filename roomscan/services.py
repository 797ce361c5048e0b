"""What every entry point works with: the catalog, the photo store, the detector and the job queue, opened from
``Settings``. The CLI, the API and workers reach them only through here, so they are assembled one way.

Example:
    >>> from roomscan.services import Services, open_services
    >>> services = Services.open(Settings.from_env())          # catalog + photo store, no model  # doctest: +SKIP
    >>> services = open_services(Settings.from_env())          # ... + the model, its queue, recovery  # doctest: +SKIP
    >>> services.worker.run_until_idle()                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from roomscan.catalog import jobs
from roomscan.catalog.db import open_catalog
from roomscan.catalog.jobs import JobQueue
from roomscan.catalog.photos import PhotoStore, SweepReport, open_photo_store, sweep_photo_store
from roomscan.errors import RoomscanError
from roomscan.settings import Settings
from roomscan.taxonomy import Taxonomy

if TYPE_CHECKING:
    from roomscan.backends import Detector, ResolvedModel
    from roomscan.catalog.models import Model
    from roomscan.insights.classify import RoomClassifier
    from roomscan.worker import DetectionWorker

log = logging.getLogger(__name__)

__all__ = ["Recovery", "Services", "load_detector", "open_services"]


def load_detector(settings: Settings, *, resolved: ResolvedModel | None = None, **options: Any) -> Detector:
    """The detector ``settings`` name (``model``, ``taxonomy``, ``device``), weights fetched first if needed.

    ``resolved`` is ``settings.model`` already resolved (the CLI fetches weights before showing a spinner).
    ``options`` go to the backend (``image_size``, ``score_threshold``). ``settings.taxonomy`` None lets a
    fine-tuned model directory bring its own ``taxonomy.yaml``.

    Raises:
        ModelUnavailableError: the weights are not here and cannot be downloaded (with what to do).
        RoomscanError: a bad option (``device="cuda"`` without a GPU, a bad image size).
    """
    from roomscan.backends import get_detector, resolve_model

    resolved = resolved or resolve_model(settings.model)
    try:
        return get_detector(resolved, taxonomy=settings.taxonomy, device=settings.device, **options)
    except ValueError as exc:
        if isinstance(exc, RoomscanError):
            raise
        raise RoomscanError(str(exc)) from exc


@dataclass(frozen=True)
class Recovery:
    """What start-up cleared after a crash: photo store litter, and jobs of a gone process of this host."""

    swept: SweepReport
    reclaimed: int


@dataclass
class Services:
    """The catalog (``sessions``), the photo store (``photos``) and, once :meth:`use` was called, the detector,
    its model's catalog id and its queue. Build with :meth:`open` or :func:`open_services`; :meth:`close` at the end.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    photos: PhotoStore
    detector: Detector | None = None
    model_id: int | None = None
    _worker: DetectionWorker | None = None
    _threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)
    _taxonomy: Taxonomy | None = None
    _rooms: RoomClassifier | None = None

    @classmethod
    def open(cls, settings: Settings | None = None) -> Services:
        """Open (and migrate) the catalog and open the photo store; no model is loaded."""
        settings = settings or Settings.from_env()
        engine, sessions = open_catalog(
            settings.resolved_database_url, pool_size=settings.db_pool_size, pool_timeout=settings.db_pool_timeout
        )
        try:
            photos = open_photo_store(settings.resolved_photo_store)
        except BaseException:
            engine.dispose()
            raise
        return cls(settings, engine, sessions, photos)

    # -- the model -------------------------------------------------------------------------------------------------
    def load_detector(self, **options: Any) -> Detector:
        """Load the detector ``settings`` name (see :func:`load_detector`); :meth:`use` makes it this one's."""
        return load_detector(self.settings, **options)

    def use(self, detector: Detector) -> int:
        """Make ``detector`` the model these services detect with: register it in the catalog and queue every
        photo it has not processed (after a model switch). Returns how many photos were queued."""
        from roomscan.catalog import store

        with self.sessions() as session, session.begin():
            model_id = store.ensure_model(session, detector.info).id
            queued = jobs.enqueue_missing(session, model_id)
        self.detector, self.model_id, self._worker = detector, model_id, None
        if queued:
            log.info("queued %d photo(s) not yet processed by %s", queued, detector.info.key)
        return queued

    def _need_model(self) -> tuple[Detector, int]:
        if self.detector is None or self.model_id is None:
            raise RuntimeError("no model in use: call Services.use(detector) first")
        return self.detector, self.model_id

    @property
    def taxonomy(self) -> Taxonomy:
        """The detector's taxonomy; without one, the taxonomy ``settings`` name."""
        if self.detector is not None:
            return self.detector.taxonomy
        if self._taxonomy is None:
            from roomscan.taxonomy import load_taxonomy

            self._taxonomy = load_taxonomy(self.settings.taxonomy)
        return self._taxonomy

    @property
    def model_key(self) -> str:
        return self._need_model()[0].info.key

    def catalog_model(self, session: Session, listing_id: int | None = None) -> Model | None:
        """The model whose stored results to read without loading a detector: the one in use, else that of the
        listing's roll-up, else the newest in the catalog; ``None`` in an empty catalog."""
        from roomscan.catalog.models import ListingAmenity, Model

        model_id = self.model_id
        if model_id is None and listing_id is not None:
            model_id = session.scalar(
                select(func.max(ListingAmenity.model_id)).where(ListingAmenity.listing_id == listing_id)
            )
        model_id = model_id or session.scalar(select(func.max(Model.id)))
        return session.get(Model, model_id) if model_id else None

    # -- the queue and its workers ---------------------------------------------------------------------------------
    def queue(self, **options: Any) -> JobQueue:
        """The job queue of the model in use (``JobQueue`` options: ``lease``, ``max_attempts``)."""
        return JobQueue(self.sessions, self._need_model()[1], **options)

    def new_worker(self, **options: Any) -> DetectionWorker:
        """A detection worker for the model in use (``DetectionWorker`` options: ``batch_size``, ``lease``...)."""
        from roomscan.worker import DetectionWorker

        detector, model_id = self._need_model()
        options.setdefault("rooms", self.room_classifier)
        return DetectionWorker(self.sessions, self.photos, detector, model_id, detector.taxonomy, **options)

    @property
    def room_classifier(self) -> RoomClassifier:
        """Scores photos' room types (``settings.room_types``) from the detections of the model in use; made once
        per model (it embeds the room prompts with the detector's text tower, where it has one).

        Raises:
            RoomTypesError: the room types file is missing or malformed.
        """
        from roomscan.insights.classify import RoomClassifier

        detector, _ = self._need_model()
        if self._rooms is None or self._rooms.detector is not detector:
            self._rooms = RoomClassifier(detector, self.settings.room_types)
        return self._rooms

    @property
    def worker(self) -> DetectionWorker:
        """This process's detection worker (made on first use)."""
        if self._worker is None:
            self._worker = self.new_worker()
        return self._worker

    def recover(self) -> Recovery:
        """Clear what a crashed process left: photo store litter (files no row names, unfinished writes) and,
        with a model in use, the running jobs of a process of this host that is gone (claimed again at once)."""
        swept = sweep_photo_store(self.sessions, self.photos)
        if swept.removed:
            log.warning("photo store %s: %s", self.photos, swept)
        reclaimed = self.worker.reclaim_orphans() if self.detector is not None else 0
        if reclaimed:
            log.warning("took over %d photo(s) a stopped worker had left running", reclaimed)
        return Recovery(swept, reclaimed)

    def start_worker_thread(self) -> None:
        """Run this process's worker in a background thread until :meth:`stop_threads`."""
        self._threads.append(self.worker.start_thread())

    def stop_threads(self, timeout: float = 30) -> None:
        for thread, stop in self._threads:
            stop.set()
            thread.join(timeout=timeout)
        self._threads.clear()

    def close(self) -> None:
        """Stop background threads and close the catalog's connections."""
        self.stop_threads()
        self.engine.dispose()


def open_services(settings: Settings | None = None, *, detector: Detector | None = None) -> Services:
    """Everything a server or worker process needs: the catalog, the photo store, the detector ``settings`` name
    (or ``detector``), its queue with every unprocessed photo queued, and start-up recovery done.

    Raises:
        DatabaseUnavailableError, ModelUnavailableError, RoomscanError: with what to do.
    """
    services = Services.open(settings)
    try:
        services.use(detector if detector is not None else services.load_detector())
        services.recover()
    except BaseException:
        services.close()
        raise
    return services
