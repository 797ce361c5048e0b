"""COCO detection JSON: ``images``, ``annotations`` (``bbox`` = ``[x, y, width, height]`` in pixels) and
``categories``. Also roomscan's own ``annotations.json``.

Reading maps categories onto a taxonomy: given one, category names/slugs are resolved through it (unknown ones
are an error naming them); without one, the categories become the taxonomy, in ``id`` order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord, write_json_atomic
from roomscan.data.formats._common import fail
from roomscan.detection.core import make_detections
from roomscan.errors import TaxonomyError
from roomscan.taxonomy import Amenity, Taxonomy, slugify

__all__ = ["read", "to_dict", "write"]


def read(
    path: str | os.PathLike[str], *, images_dir: str | os.PathLike[str] | None = None, taxonomy: Taxonomy | None = None
) -> DetectionDataset:
    """Read a COCO JSON file. ``images_dir`` defaults to the JSON's folder (``images/`` beside it if present)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(doc, dict):
        raise fail(path, "top level", "expected an object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise fail(path, key, "missing or not a list")

    # Categories -> taxonomy class ids.
    cat_to_class: dict[int, int] = {}
    categories = doc["categories"]
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or isinstance(cat.get("id"), bool) or not isinstance(cat.get("id"), int) \
                or not isinstance(cat.get("name"), str):
            raise fail(path, f"categories[{i}]", "needs an integer 'id' and a string 'name'")
    if taxonomy is None:
        amenities = []
        for i, cat in enumerate(sorted(categories, key=lambda c: c["id"])):
            slug = cat.get("slug") or slugify(cat["name"])
            amenities.append(Amenity(slug=slug, name=cat["name"], mid=cat.get("mid"), prompts=(f"a photo of a {cat['name'].lower()}",)))
            cat_to_class[int(cat["id"])] = i
        try:
            taxonomy = Taxonomy(tuple(amenities), source=str(path))
        except TaxonomyError as exc:
            raise fail(path, "categories", str(exc)) from exc
    else:
        for i, cat in enumerate(categories):
            key = cat.get("slug") or cat["name"]
            try:
                cat_to_class[int(cat["id"])] = taxonomy.index(key)
            except TaxonomyError as exc:
                raise fail(path, f"categories[{i}] ({cat['name']!r})", f"not in the taxonomy: {exc}") from exc

    images: list[ImageRecord] = []
    for i, im in enumerate(doc["images"]):
        try:
            rec = ImageRecord(id=int(im["id"]), file_name=str(im["file_name"]), width=int(im["width"]), height=int(im["height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(path, f"images[{i}]", f"needs id, file_name, width and height ({exc!r})") from exc
        if rec.width <= 0 or rec.height <= 0:
            raise fail(path, f"images[{i}] (id {rec.id})", f"size {rec.width}x{rec.height} is not positive")
        if Path(rec.file_name).is_absolute() or ".." in Path(rec.file_name).parts:
            raise fail(path, f"images[{i}] (id {rec.id})", f"file_name {rec.file_name!r} must be relative, inside the dataset")
        images.append(rec)
    known = {im.id: im for im in images}
    if len(known) != len(images):
        raise fail(path, "images", "image ids are not unique")

    rows: dict[int, list[tuple[list[float], int, int]]] = {im.id: [] for im in images}
    for i, ann in enumerate(doc["annotations"]):
        where = f"annotations[{i}]" + (f" (id {ann.get('id')})" if isinstance(ann, dict) and "id" in ann else "")
        if not isinstance(ann, dict):
            raise fail(path, where, "not an object")
        image_id, cat_id, bbox = ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
        if image_id not in known:
            raise fail(path, where, f"image_id {image_id!r} is not in images")
        if cat_id not in cat_to_class:
            raise fail(path, where, f"category_id {cat_id!r} is not in categories")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise fail(path, where, f"bbox must be [x, y, width, height] numbers, got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise fail(path, where, f"bbox has negative width or height {bbox}")
        rows[image_id].append(([x, y, x + w, y + h], cat_to_class[cat_id], int(bool(ann.get("iscrowd", 0)))))

    annotations = {}
    for image_id, items in rows.items():
        annotations[image_id] = make_detections(
            np.array([r[0] for r in items], dtype=np.float32).reshape(-1, 4),
            np.ones(len(items)),
            [r[1] for r in items],
            [taxonomy.amenities[r[1]].slug for r in items],
            iscrowd=np.array([r[2] for r in items], dtype=np.int64),
        )
    if images_dir is None:
        images_dir = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    return DetectionDataset(Path(images_dir), taxonomy, images, annotations)


def to_dict(dataset: DetectionDataset) -> dict[str, Any]:
    """The dataset as a COCO dict (category ids are taxonomy class ids + 1; COCO reserves 0)."""
    images, annotations = [], []
    ann_id = 1
    for im, dets in dataset:
        images.append({"id": im.id, "file_name": im.file_name, "width": im.width, "height": im.height})
        crowd = dets.data.get("iscrowd") if len(dets) else None
        for k, (box, cls) in enumerate(zip(dets.xyxy, dets.class_id if dets.class_id is not None else [])):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": im.id,
                    "category_id": int(cls) + 1,
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2),
                    "iscrowd": int(crowd[k]) if crowd is not None else 0,
                }
            )
            ann_id += 1
    categories = [
        {"id": i + 1, "name": a.name, "slug": a.slug, **({"mid": a.mid} if a.mid else {}), "supercategory": a.group}
        for i, a in enumerate(dataset.taxonomy)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


def write(dataset: DetectionDataset, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, to_dict(dataset))
    return path

