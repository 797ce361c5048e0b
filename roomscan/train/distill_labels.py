"""Teacher labelling for distillation: the photos a teacher labels, and the dataset it writes.

* :class:`PhotoSource`, :func:`folder_photos`, :func:`catalog_photos`: the photos (a folder, or every photo of a
  listing in the catalog, with the amenities its host rejected).
* :func:`label_with_teacher`: the teacher's boxes (its per-amenity thresholds, class-aware NMS) written all or
  nothing as a roomscan dataset, with ``labelstudio_tasks.json`` (the boxes as Label Studio *predictions*, for
  review) and ``teacher.json`` (who labelled, counts; written last, the marker of a complete labelling).
* :class:`DistillError`, the error of every distillation step.

:mod:`roomscan.train.distill` runs the whole distillation and re-exports these names.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from roomscan.backends import Detector
from roomscan.data.dataset import DetectionDataset, ImageRecord, Skipped, write_json_atomic
from roomscan.detection.core import Detections, labels_of, make_detections
from roomscan.errors import RoomscanError

Log = Callable[[str], None]

TASKS_FILE = "labelstudio_tasks.json"
TEACHER_FILE = "teacher.json"

__all__ = [
    "TASKS_FILE",
    "TEACHER_FILE",
    "DistillError",
    "PhotoSource",
    "catalog_photos",
    "folder_photos",
    "label_with_teacher",
]


class DistillError(RoomscanError, ValueError):
    """Distillation cannot go on (no photos, a teacher that finds nothing...); the message says what to do."""


@dataclass(frozen=True)
class PhotoSource:
    """One photo for the teacher: its file name in the dataset, and a file or a reader of its bytes.

    ``drop`` names amenities whose teacher boxes are removed on this photo (a host rejected them).
    """

    file_name: str
    name: str
    path: Path | None = None
    read: Callable[[], bytes] | None = None
    drop: frozenset[str] = frozenset()


# -- photos ----------------------------------------------------------------------------------------------------
def folder_photos(folder: str | os.PathLike[str], *, recursive: bool = False) -> list[PhotoSource]:
    """The photos of ``folder`` (by suffix, sorted), named by their path relative to it.

    Raises:
        DistillError: not a directory, or no photos in it.
    """
    from roomscan.detection.image import IMAGE_SUFFIXES

    root = Path(folder)
    if not root.is_dir():
        raise DistillError(f"{root}: not a directory of photos")
    entries = sorted(root.rglob("*") if recursive else root.iterdir())
    files = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        hint = "; it has sub-folders: add --recursive" if not recursive and any(p.is_dir() for p in entries) else ""
        raise DistillError(f"{root}: no photos ({', '.join(IMAGE_SUFFIXES)}) to label{hint}")
    return [PhotoSource(p.relative_to(root).as_posix(), str(p), path=p) for p in files]


_SUFFIX = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


def catalog_photos(services: Any, *, human_decisions: bool = False) -> list[PhotoSource]:
    """Every photo attached to a listing in the catalog, read from the photo store.

    With ``human_decisions``, a photo of a listing whose host rejected an amenity drops the teacher's boxes of
    that amenity (rejected wins where another listing showing the same photo confirmed it).

    Raises:
        DistillError: the catalog has no photos.
    """
    from sqlalchemy import select

    from roomscan.catalog.models import AmenityDecision, ListingPhoto, Photo

    with services.sessions() as session:
        rows = session.execute(
            select(Photo.id, Photo.sha256, Photo.format, ListingPhoto.listing_id)
            .join(ListingPhoto, ListingPhoto.photo_id == Photo.id).order_by(Photo.id)
        ).all()
        rejected: dict[int, set[str]] = {}
        if human_decisions:
            for listing_id, amenity in session.execute(
                select(AmenityDecision.listing_id, AmenityDecision.amenity).where(AmenityDecision.decision == "rejected")
            ):
                rejected.setdefault(listing_id, set()).add(amenity)
    if not rows:
        raise DistillError("the catalog has no photos: add listings with photos first, or use --images DIR")
    drop: dict[int, set[str]] = {}
    meta: dict[int, tuple[str, str]] = {}
    for photo_id, sha256, fmt, listing_id in rows:
        meta[photo_id] = (sha256, fmt)
        drop.setdefault(photo_id, set()).update(rejected.get(listing_id, ()))
    store = services.photos
    return [
        PhotoSource(f"{sha}{_SUFFIX.get(fmt, '.img')}", f"catalog photo {photo_id} ({sha[:12]})",
                    read=partial(store.get, sha), drop=frozenset(drop[photo_id]))
        for photo_id, (sha, fmt) in meta.items()
    ]


# -- labelling -------------------------------------------------------------------------------------------------
def label_with_teacher(
    teacher: Detector,
    photos: Sequence[PhotoSource],
    out: str | os.PathLike[str],
    *,
    nms_threshold: float = 0.5,
    batch: int = 4,
    image_prefix: str = "images/",
    log: Log = print,
) -> DetectionDataset:
    """Label ``photos`` with ``teacher`` and write the dataset to ``out`` (which must not exist), all or nothing.

    The teacher's boxes pass its per-amenity thresholds, then class-aware NMS at ``nms_threshold``. ``out`` gets
    the dataset (``images/``, ``annotations.json``, ``taxonomy.yaml``), ``labelstudio_tasks.json`` (one task per
    photo, the teacher's boxes as predictions with their scores, ``data.image`` = ``image_prefix`` + the file name,
    percent-encoded) and
    ``teacher.json``. Everything is written to a temporary directory beside ``out`` and renamed at the end.

    Returns:
        The dataset (in ``out``); ``skipped`` lists unreadable photos, negatives and boxes removed by hosts.

    Raises:
        DistillError: ``out`` exists, no photo could be read, or the teacher found nothing on any photo.
    """
    from roomscan.detection.image import load_image
    from roomscan.errors import ImageError, NotFoundError

    out = Path(out)
    if out.exists():
        raise DistillError(f"{out}: exists; labelling never writes over a dataset (remove it or pick another --out)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:  # a file where the run directory should be, a read-only folder
        raise DistillError(f"{out.parent}: cannot write the dataset there ({exc.strerror}); pick another --out") from exc
    try:
        images_dir = work / "images"
        records: list[ImageRecord] = []
        annotations: dict[int, Detections] = {}
        skipped: list[Skipped] = []
        removed = 0
        for start in range(0, len(photos), batch):
            loaded = []
            for source in photos[start : start + batch]:
                try:
                    image = load_image(source.path if source.path is not None else _read(source), name=source.name)
                except (ImageError, NotFoundError) as exc:  # a photo gone from the store is skipped like a bad one
                    skipped.append(Skipped("unreadable image", source.name, str(exc)))
                    continue
                loaded.append((source, image))
            found = teacher.predict([image.image for _, image in loaded], batch_size=batch) if loaded else []
            for (source, image), dets in zip(loaded, found):
                dets = _nms(dets, nms_threshold)
                if source.drop and len(dets):
                    keep = np.array([label not in source.drop for label in labels_of(dets)], dtype=bool)
                    if not keep.all():
                        skipped.append(Skipped("host rejected", source.name,
                                               f"{int((~keep).sum())} box(es) of {', '.join(sorted(source.drop))} removed"))
                        removed += int((~keep).sum())
                    dets = dets[keep]  # type: ignore[assignment]  # a boolean mask gives Detections
                image_id = len(records) + 1
                dest = images_dir / source.file_name
                dest.parent.mkdir(parents=True, exist_ok=True)
                if source.path is not None:
                    _link(source.path, dest)
                else:
                    dest.write_bytes(image.data)
                records.append(ImageRecord(image_id, source.file_name, image.width, image.height))
                annotations[image_id] = make_detections(dets.xyxy, np.asarray(dets.confidence), np.asarray(dets.class_id),
                                                        labels_of(dets))
                if len(dets) == 0:
                    skipped.append(Skipped("image without labels", source.name,
                                           "the teacher found nothing; kept as a negative"))
            log(f"labelled {min(start + batch, len(photos))}/{len(photos)} photos")
        unreadable = [s for s in skipped if s.kind == "unreadable image"]
        if unreadable:
            log(f"skipped {len(unreadable)} unreadable photo(s): " + "; ".join(f"{s.where}: {s.reason}" for s in unreadable))
        if not records:
            raise DistillError(f"none of the {len(photos)} photos could be read (see the warnings above)")
        dataset = DetectionDataset(images_dir, teacher.taxonomy, records, annotations, skipped)
        if dataset.num_boxes == 0:
            raise DistillError(
                f"the teacher ({teacher.info.key}) found nothing on any of the {len(records)} photos: lower its "
                "thresholds with --score-threshold (e.g. 0.1) or check the taxonomy's prompts "
                f"({teacher.taxonomy.source or 'the taxonomy file'})"
            )
        dataset.save(work, copy_images=False)
        write_json_atomic(work / TASKS_FILE, _review_tasks(dataset, teacher.info.key, image_prefix))
        negatives = sum(1 for s in skipped if s.kind == "image without labels")
        summary = {"teacher": teacher.info.key, "taxonomy": teacher.taxonomy.fingerprint(), "photos": len(records),
                   "boxes": dataset.num_boxes, "negatives": negatives, "removed_by_hosts": removed,
                   "unreadable": [f"{s.where}: {s.reason}" for s in unreadable]}
        write_json_atomic(work / TEACHER_FILE, summary)  # written last: the marker of a complete labelling
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    dataset.images_dir = out / "images"
    return dataset


def _read(source: PhotoSource) -> bytes:
    assert source.read is not None, f"{source.name}: a PhotoSource needs a path or a reader"
    return source.read()


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _nms(dets: Detections, threshold: float) -> Detections:
    if len(dets) < 2 or threshold >= 1.0:
        return dets
    return dets.with_nms(threshold=threshold, class_agnostic=False)


def _review_tasks(dataset: DetectionDataset, model_key: str, image_prefix: str) -> list[dict[str, Any]]:
    """Label Studio tasks with the teacher's boxes as pre-annotations (``predictions``), not as ground truth."""
    from roomscan.data.formats.labelstudio import to_tasks

    tasks = to_tasks(dataset, image_prefix=image_prefix)
    for task, (im, dets) in zip(tasks, dataset):
        # Percent-encoded, as Label Studio's local-file serving and labelstudio.read decode it: a "#", "&", "+"
        # or "%" in a photo's name would otherwise cut or change the name on the way back.
        task["data"]["image"] = image_prefix + quote(im.file_name)
        result = task.pop("annotations")[0]["result"]
        for item, score in zip(result, dets.confidence if dets.confidence is not None else []):
            item["score"] = round(float(score), 4)
        scores = [item["score"] for item in result if "score" in item]
        task["predictions"] = [{"model_version": model_key, "score": min(scores) if scores else 0.0, "result": result}]
    return tasks
