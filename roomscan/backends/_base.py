"""The narrow interface every detector backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from roomscan.detection.core import Detections
from roomscan.taxonomy import Taxonomy


@dataclass(frozen=True)
class ModelInfo:
    """What produced a set of detections; stored with every detection in the catalog.

    Attributes:
        backend: backend name (``owlv2``, ``detr``, ``onnx``).
        name: the model's hub id, or the resolved local directory.
        version: the weights' identity: the hub commit, or a hash of the local weight files.
        taxonomy: fingerprint of the taxonomy the model detects (prompts and thresholds included).
        settings: inference settings that change the scores, when not the model's defaults (``size=640``).
    """

    backend: str
    name: str
    version: str
    taxonomy: str
    settings: str = ""

    @property
    def key(self) -> str:
        """One string that changes whenever the weights, the backend, the taxonomy or the settings change."""
        key = f"{self.backend}:{self.name}@{self.version[:12]}+{self.taxonomy}"
        return f"{key}/{self.settings}" if self.settings else key


class Detector(ABC):
    """A detector turns RGB images into :class:`~roomscan.detection.core.Detections` of taxonomy amenities.

    Implementations load their weights in ``__init__`` (raising
    :class:`~roomscan.errors.ModelUnavailableError` when they cannot) and implement :meth:`predict`.
    ``class_id`` of each detection indexes ``self.taxonomy``; ``data["class_name"]`` holds the slug;
    ``metadata`` holds ``image_size`` and ``model`` (``self.info.key``).
    """

    taxonomy: Taxonomy
    info: ModelInfo
    device: str = "cpu"

    @abstractmethod
    def predict(self, images: Sequence[Image.Image], *, batch_size: int = 4) -> list[Detections]:
        """Detect amenities in each image; one ``Detections`` per input image, in order."""

    def predict_one(self, image: Image.Image) -> Detections:
        return self.predict([image], batch_size=1)[0]
