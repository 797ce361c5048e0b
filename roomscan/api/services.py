"""What the app serves from: settings, catalog, photo store, the loaded detector and its worker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from roomscan.backends._base import Detector
from roomscan.catalog.photos import PhotoStore
from roomscan.settings import Settings
from roomscan.taxonomy import Taxonomy
from roomscan.worker import DetectionWorker


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    photos: PhotoStore
    detector: Detector
    model_id: int
    worker: DetectionWorker
    _threads: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.detector.taxonomy

    @property
    def model_key(self) -> str:
        return self.detector.info.key
