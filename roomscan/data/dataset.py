"""``DetectionDataset``: the one in-memory form of a labelled detection dataset.

Every format reader returns one and every writer takes one (``formats/<fmt>.py``); training, evaluation and the
data report read only this. On disk, roomscan's own format is a directory::

    DATASET/
      images/...            the image files (any sub-folders)
      annotations.json      COCO detection JSON (images, annotations with bbox [x, y, w, h], categories)
      taxonomy.yaml         the amenities; category ``id`` i (0-based) is taxonomy class ``i``

Example:
    >>> ds = DetectionDataset.load("data/amenities-train")     # doctest: +SKIP
    >>> len(ds), ds.taxonomy.slugs[:2], ds.annotations[ds.images[0].id].xyxy.shape
    (1200, ['bathtub', 'bed'], (3, 4))
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roomscan.detection.core import Detections, make_detections
from roomscan.errors import RoomscanError
from roomscan.taxonomy import Taxonomy, load_taxonomy

ANNOTATIONS_FILE = "annotations.json"
TAXONOMY_FILE = "taxonomy.yaml"
IMAGES_DIR = "images"

__all__ = [
    "ANNOTATIONS_FILE",
    "DatasetError",
    "DetectionDataset",
    "ImageRecord",
    "Skipped",
    "empty_detections",
    "skipped_lines",
]


class DatasetError(RoomscanError, ValueError):
    """A dataset file is missing or malformed; the message names the file, the record and the problem."""


@dataclass(frozen=True)
class ImageRecord:
    """One image of a dataset. ``file_name`` is relative to the dataset's images directory."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class Skipped:
    """Something a reader left out, changed or chose while reading, and why (never silently).

    ``kind`` is one of: ``orphan label file`` (a label file without its image; skipped), ``unknown class`` (a box
    whose class id or name is not in the class list; dropped), ``box clipped`` (reached outside its image; cut to
    it), ``box dropped`` (wholly outside its image), ``image without labels`` (kept, with no boxes),
    ``annotation`` (which of a task's annotations was used, or why one was left out). ``where`` names the file and
    record; ``reason`` says what was done.
    """

    kind: str
    where: str
    reason: str


def skipped_lines(skipped: list[Skipped] | tuple[Skipped, ...], *, examples: int = 3) -> list[str]:
    """One line per kind, e.g. ``"2 orphan label files (labels/a.txt, labels/b.txt): no image with that name"``."""
    by_kind: dict[str, list[Skipped]] = {}
    for item in skipped:
        by_kind.setdefault(item.kind, []).append(item)
    lines = []
    for kind, items in by_kind.items():
        shown = ", ".join(i.where for i in items[:examples]) + (", ..." if len(items) > examples else "")
        reasons = sorted({i.reason for i in items})
        reason = reasons[0] if len(reasons) == 1 else f"{reasons[0]} (and {len(reasons) - 1} other reasons)"
        lines.append(f"{len(items):,} x {kind} ({shown}): {reason}")
    return lines


def empty_detections() -> Detections:
    return make_detections(np.zeros((0, 4), dtype=np.float32), [], [], [])


@dataclass
class DetectionDataset:
    """Images, their ground-truth boxes, and the taxonomy the class ids index.

    Attributes:
        images_dir: where ``ImageRecord.file_name`` paths resolve.
        taxonomy: class ``i`` is ``taxonomy.amenities[i]``.
        images: the images, in a stable order.
        annotations: image id -> ground truth as ``Detections`` (``confidence`` all 1, ``class_id`` and
            ``data["class_name"]`` set; extra per-box fields such as ``iscrowd`` may live in ``data``).
        skipped: what the reader left out or changed, and why (see :class:`Skipped`); empty for a clean read.
    """

    images_dir: Path
    taxonomy: Taxonomy
    images: list[ImageRecord]
    annotations: dict[int, Detections] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images_dir = Path(self.images_dir)
        ids = [im.id for im in self.images]
        if len(set(ids)) != len(ids):
            raise DatasetError("image ids must be unique")
        for im in self.images:
            self.annotations.setdefault(im.id, empty_detections())
        unknown = set(self.annotations) - set(ids)
        if unknown:
            raise DatasetError(f"annotations refer to unknown image ids {sorted(unknown)[:5]}")

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[tuple[ImageRecord, Detections]]:
        for im in self.images:
            yield im, self.annotations[im.id]

    def path(self, image: ImageRecord) -> Path:
        return self.images_dir / image.file_name

    @property
    def num_boxes(self) -> int:
        return sum(len(d) for d in self.annotations.values())

    def subset(self, fraction: float, seed: int = 0) -> DetectionDataset:
        """A random fraction of the images (at least one), reproducible by ``seed``."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        n = max(1, round(len(self.images) * fraction))
        chosen = sorted(random.Random(seed).sample(range(len(self.images)), n))
        images = [self.images[i] for i in chosen]
        return DetectionDataset(self.images_dir, self.taxonomy, images, {im.id: self.annotations[im.id] for im in images})

    def fingerprint(self) -> str:
        """Hash of the taxonomy, image list and boxes: two runs on the same fingerprint saw the same data."""
        h = hashlib.sha256(self.taxonomy.fingerprint().encode())
        for im, dets in self:
            h.update(f"{im.id}|{im.file_name}|{im.width}x{im.height}|".encode())
            h.update(np.ascontiguousarray(dets.xyxy, dtype=np.float32).tobytes())
            h.update(np.ascontiguousarray(dets.class_id, dtype=np.int64).tobytes() if dets.class_id is not None else b"")
        return h.hexdigest()[:16]

    # -- roomscan's own on-disk format ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DetectionDataset:
        """Read a dataset directory in roomscan's format (see the module docstring)."""
        from roomscan.data.formats import coco

        root = Path(path)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset directory not found")
        ann = root / ANNOTATIONS_FILE
        if not ann.is_file():
            raise DatasetError(f"{root}: no {ANNOTATIONS_FILE}; is this a roomscan dataset? (`roomscan data convert` makes one)")
        taxonomy = load_taxonomy(root / TAXONOMY_FILE) if (root / TAXONOMY_FILE).is_file() else None
        return coco.read(ann, images_dir=root / IMAGES_DIR, taxonomy=taxonomy)

    def save(self, path: str | os.PathLike[str], *, copy_images: bool = True) -> Path:
        """Write the dataset in roomscan's format; images are copied (or hard-linked) into ``images/``."""
        import shutil

        from roomscan.data.formats import coco

        root = Path(path)
        (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        if copy_images:
            for im in self.images:
                src, dst = self.path(im), root / IMAGES_DIR / im.file_name
                if src.resolve() == dst.resolve() or not src.exists():
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
        self.taxonomy.save(root / TAXONOMY_FILE)
        coco.write(self, root / ANNOTATIONS_FILE)
        return root


def write_json_atomic(path: Path, payload: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)
