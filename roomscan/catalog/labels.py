"""Hosts' decisions as training labels: a roomscan dataset of the boxes hosts confirmed, and every decision.

A host's ``confirmed`` verdict on an amenity the model reported turns the model's boxes for it into verified
labels; a ``rejected`` verdict marks the model's boxes as false positives. ``export_decisions`` writes::

    OUT/
      images/<sha256>.<ext>   the photos of listings with at least one decision (bytes as uploaded)
      annotations.json        COCO boxes of host-confirmed amenities (the model's boxes at or above threshold)
      taxonomy.yaml           the taxonomy the category ids index
      decisions.jsonl         one line per decision: listing, amenity, verdict, when, model, photo boxes

Other amenities in these photos are not labelled (hosts only judged what they were shown): train with that in
mind, or review the photos in a labelling tool (``roomscan data convert OUT --to labelstudio``).

Example:
    >>> with sessions() as session:                                          # doctest: +SKIP
    ...     summary = export_decisions(session, photos, model_id, taxonomy, "labels/")
    >>> summary.images, summary.boxes, summary.decisions                    # doctest: +SKIP
    (12, 17, 9)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from roomscan.catalog.models import AmenityDecision, ListingPhoto, Model, Photo
from roomscan.catalog.photos import PhotoStore
from roomscan.catalog.store import photo_detections
from roomscan.detection.core import labels_of, make_detections
from roomscan.errors import RoomscanError
from roomscan.taxonomy import Taxonomy

__all__ = ["ExportSummary", "export_decisions"]

_SUFFIX = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp",
           "TIFF": ".tif"}


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    decisions: int
    images: int
    boxes: int
    conflicts: tuple[str, ...]
    """``photo <id>: <amenity>`` where one listing confirmed and another rejected the same photo's boxes."""


def export_decisions(
    session: Session, photos: PhotoStore, model_id: int, taxonomy: Taxonomy, out: str | os.PathLike[str]
) -> ExportSummary:
    """Write hosts' decisions under model ``model_id`` as a roomscan dataset plus ``decisions.jsonl``.

    Raises:
        RoomscanError: ``out`` exists and is not empty, or no host has decided anything yet.
    """
    from roomscan.data.dataset import DetectionDataset, ImageRecord

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RoomscanError(f"{out} is not empty: choose a new folder for the export")
    decisions = session.scalars(select(AmenityDecision).order_by(AmenityDecision.listing_id, AmenityDecision.amenity)).all()
    if not decisions:
        raise RoomscanError("no host has confirmed or rejected an amenity yet: nothing to export")
    model = session.get(Model, model_id)
    listing_ids = sorted({d.listing_id for d in decisions})
    photo_ids_of: dict[int, list[int]] = {}
    for listing_id, photo_id in session.execute(
        select(ListingPhoto.listing_id, ListingPhoto.photo_id)
        .where(ListingPhoto.listing_id.in_(listing_ids))
        .order_by(ListingPhoto.listing_id, ListingPhoto.position)
    ):
        photo_ids_of.setdefault(listing_id, []).append(photo_id)
    all_photo_ids = sorted({p for ids in photo_ids_of.values() for p in ids})
    dets = photo_detections(session, all_photo_ids, model_id)

    # A photo's verdicts: the union over the listings that show it; both verdicts on one amenity is a conflict.
    verdicts: dict[int, dict[str, set[str]]] = {}
    for d in decisions:
        for photo_id in photo_ids_of.get(d.listing_id, []):
            verdicts.setdefault(photo_id, {}).setdefault(d.amenity, set()).add(d.decision)

    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    records, annotations, conflicts = [], {}, []
    boxes_total = 0
    photo_rows = {p.id: p for p in session.scalars(select(Photo).where(Photo.id.in_(list(verdicts))))}
    for photo_id in sorted(verdicts):
        photo = photo_rows[photo_id]
        confirmed = set()
        for amenity, said in sorted(verdicts[photo_id].items()):
            if len(said) > 1:
                conflicts.append(f"photo {photo_id}: {amenity}")
            elif said == {"confirmed"}:
                confirmed.add(amenity)
        file_name = photo.sha256 + _SUFFIX.get(photo.format, ".img")
        (images_dir / file_name).write_bytes(photos.get(photo.sha256))
        records.append(ImageRecord(id=photo_id, file_name=file_name, width=photo.width, height=photo.height))
        keep = _verified(dets[photo_id], confirmed, taxonomy)
        annotations[photo_id] = keep
        boxes_total += len(keep)

    DetectionDataset(images_dir=images_dir, taxonomy=taxonomy, images=records, annotations=annotations).save(
        out, copy_images=False
    )
    with (out / "decisions.jsonl").open("w", encoding="utf-8") as f:
        for d in decisions:
            boxes = []
            for photo_id in photo_ids_of.get(d.listing_id, []):
                for label, score, box in _seen(dets[photo_id], taxonomy):
                    if label == d.amenity:
                        boxes.append({"photo_id": photo_id, "score": score, "box": box})
            f.write(json.dumps({
                "listing_id": d.listing_id,
                "amenity": d.amenity,
                "decision": d.decision,
                "decided_at": d.decided_at.isoformat(),
                "model": model.key if model else None,
                "boxes": boxes,
            }) + "\n")
    return ExportSummary(out, len(decisions), len(records), boxes_total, tuple(conflicts))


def _seen(dets, taxonomy: Taxonomy) -> list[tuple[str, float, list[float]]]:  # type: ignore[no-untyped-def]
    """The detections at or above their amenity's threshold, as ``(slug, score, [x1, y1, x2, y2])``."""
    if len(dets) == 0:
        return []
    out = []
    for label, score, box in zip(labels_of(dets), dets.confidence, dets.xyxy, strict=True):
        if label in taxonomy and float(score) >= taxonomy[label].threshold:
            out.append((label, round(float(score), 4), [round(float(v), 2) for v in box]))
    return out


def _verified(dets, confirmed: set[str], taxonomy: Taxonomy):  # type: ignore[no-untyped-def]
    kept = [(label, score, box) for label, score, box in _seen(dets, taxonomy) if label in confirmed]
    return make_detections(
        np.array([box for _, _, box in kept], dtype=np.float32).reshape(-1, 4),
        [score for _, score, _ in kept],
        [taxonomy.index(label) for label, _, _ in kept],
        [label for label, _, _ in kept],
    )
