"""Label Studio JSON export (the "JSON" export of an image project with a ``RectangleLabels`` control)::

    [{"id": 1, "data": {"image": "/data/local-files/?d=rooms/a.jpg"},
      "annotations": [{"result": [{"type": "rectanglelabels", "original_width": 640, "original_height": 480,
                                   "value": {"x": 10.0, "y": 20.0, "width": 30.0, "height": 25.0,
                                             "rotation": 0, "rectanglelabels": ["bed"]}}]}]}]

``x``/``y``/``width``/``height`` are percentages of the original image size; rotated rectangles become their
enclosing box. Which of a task's annotations count (``annotations=``):

* ``latest`` (default): the annotation flagged ``ground_truth`` if there is one, else the latest one that was not
  cancelled (by ``updated_at``, then ``created_at``, then ``id``);
* ``first``: the ground-truth one if flagged, else the earliest one not cancelled;
* ``all``: the boxes of every annotation not cancelled (several annotators' boxes side by side).

Cancelled annotations and ``predictions`` (model output, not ground truth) are never used; ``choices``,
``textarea`` and other non-box results (even sharing a region id with a rectangle) carry no box and are left out.
Every such choice is listed in ``DetectionDataset.skipped``. ``data.image`` (an upload path
``/data/upload/<project>/<8 hex>-<name>``, a ``?d=`` local-files path, an ``s3://``/``gs://``/``http`` URL or a
relative path) is matched to a file by its relative path or, failing that, its base name under ``images_dir``
(``--image-root``), without the prefix Label Studio gives uploads. Labels are written exactly as the amenities'
names.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord, Skipped, write_json_atomic
from roomscan.data.formats._common import (
    Box,
    ClassMap,
    box_rows,
    build_dataset,
    fail,
    fit_box,
    image_size,
    place_images,
)
from roomscan.taxonomy import Taxonomy

EXPORT_FILE = "labelstudio.json"
IMAGES_DIR = "images"

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")

ANNOTATION_POLICIES = ("latest", "first", "all")

__all__ = ["ANNOTATION_POLICIES", "EXPORT_FILE", "IMAGES_DIR", "read", "write"]


def _image_ref(value: str) -> str:
    """``data.image`` -> a relative path: the ``d=`` of local files, else the URL's path (uploads drop a prefix)."""
    parsed = urlparse(value)
    if "d" in parse_qs(parsed.query):
        return unquote(parse_qs(parsed.query)["d"][0])
    return unquote(parsed.path) if parsed.scheme in ("http", "https", "s3", "gs") else unquote(value)


def _resolve_file(ref: str, json_dir: Path, images_dir: Path) -> tuple[str, Path | None]:
    """``(file_name relative to images_dir, the file if found)``; unknown files keep their base name."""
    parts = [p for p in Path(ref).parts if p not in ("/", "..")]
    rel = Path(*parts) if parts else Path(ref)
    stripped = Path(*rel.parts[1:]) if rel.parts[:1] == (IMAGES_DIR,) and len(rel.parts) > 1 else rel
    # Uploaded files are renamed "<8 hex>-<original name>" by Label Studio.
    original = _UPLOAD_PREFIX.sub("", rel.name)
    for candidate in (images_dir / stripped, images_dir / rel, json_dir / rel, images_dir / rel.name, images_dir / original):
        if candidate.is_file():
            try:
                return candidate.resolve().relative_to(images_dir.resolve()).as_posix(), candidate
            except ValueError:
                return rel.name, candidate
    return original, None


def _found_only_beside_json(tasks: list[Any], json_dir: Path, root: Path) -> bool:
    """Whether some task's image exists relative to the export's folder but not under ``root``."""
    for task in tasks:
        image = task.get("data", {}).get("image") if isinstance(task, dict) and isinstance(task.get("data"), dict) else None
        if not isinstance(image, str) or not image:
            continue
        name, found = _resolve_file(_image_ref(image), json_dir, root)
        if found is not None and not found.resolve().is_relative_to(root.resolve()):
            return True
    return False


def _when(annotation: dict[str, Any]) -> tuple[str, str, float]:
    ident = annotation.get("id")
    return (str(annotation.get("updated_at") or ""), str(annotation.get("created_at") or ""),
            float(ident) if isinstance(ident, (int, float)) else 0.0)


def _pick_results(
    task: dict[str, Any], policy: str, path: Path, where: str, skipped: list[Skipped]
) -> list[tuple[str, Any]]:
    """``[(where, result), ...]`` of the annotations ``policy`` chooses (module docstring); notes what it left."""
    annotations = task.get("annotations", task.get("completions", []))
    if not isinstance(annotations, list):
        raise fail(path, where, "'annotations' is not a list")
    place = f"{path}: {where}"
    predictions = task.get("predictions")
    if isinstance(predictions, list) and predictions:
        skipped.append(Skipped("prediction", place, "predictions are model output, not ground truth; not used"))
    indexed = [(j, a) for j, a in enumerate(annotations) if isinstance(a, dict)]
    for j, a in indexed:
        if a.get("was_cancelled"):
            skipped.append(Skipped("cancelled annotation", f"{place} annotation[{j}]", "was_cancelled; not used"))
    usable = [(j, a) for j, a in indexed if not a.get("was_cancelled")]
    if policy != "all" and len(usable) > 1:
        truth = [(j, a) for j, a in usable if a.get("ground_truth")]
        ordered = sorted(usable, key=lambda ja: (_when(ja[1]), ja[0]))
        chosen = truth[0] if truth else ordered[-1] if policy == "latest" else ordered[0]
        why = "the one flagged ground_truth" if truth else f"the {policy} one"
        skipped.append(Skipped("annotation choice", f"{place} annotation[{chosen[0]}]",
                               f"{policy}: of several annotations, used {why}; the others not used"))
        usable = [chosen]
    picked = []
    for j, a in usable:
        result = a.get("result", [])
        if not isinstance(result, list):
            raise fail(path, f"{where} annotation[{j}]", "annotation 'result' is not a list")
        picked.extend((f"{where} result[{k}]" if len(usable) == 1 else f"{where} annotation[{j}] result[{k}]", r)
                      for k, r in enumerate(result))
    return picked


def _box(value: dict[str, Any], size: tuple[int, int], path: Path, where: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
        rotation = float(value.get("rotation", 0) or 0)
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(path, where, f"value needs numeric x, y, width and height (percent), got {value!r}") from exc
    W, H = size
    x1, y1, bw, bh = x / 100 * W, y / 100 * H, w / 100 * W, h / 100 * H
    if bw < 0 or bh < 0:
        raise fail(path, where, f"negative width or height in {value!r}")
    if rotation % 360:
        # Label Studio rotates the rectangle clockwise about its top-left corner.
        t = math.radians(rotation)
        corners = [(x1 + u * math.cos(t) - v * math.sin(t), y1 + u * math.sin(t) + v * math.cos(t))
                   for u, v in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        return max(0.0, min(xs)), max(0.0, min(ys)), min(float(W), max(xs)), min(float(H), max(ys))
    return x1, y1, x1 + bw, y1 + bh


def read(
    path: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    taxonomy: Taxonomy | None = None,
    annotations: str = "latest",
) -> DetectionDataset:
    """Read a Label Studio JSON export (a file, or a directory holding ``labelstudio.json``).

    Args:
        path: the export file.
        images_dir: where the images are (default ``images/`` beside the file, else the file's folder); upload and
            S3 paths are looked up under it by relative path, then by base name.
        taxonomy: resolve labels through it; default: the labels met, sorted, become the taxonomy.
        annotations: which of a task's annotations count: ``latest``, ``first`` or ``all`` (module docstring).

    Example:
        >>> ds = labelstudio.read("project-3.json", images_dir="photos", annotations="all")  # doctest: +SKIP
        >>> ds.skipped[0].kind                                                               # doctest: +SKIP
        'cancelled annotation'

    Raises:
        DatasetError: not JSON, not a list of tasks, a task without ``data.image``, a rectangle without numeric
            percentages or labels, or no image size; the message names the file and the task.
    """
    if annotations not in ANNOTATION_POLICIES:
        raise DatasetError(f"unknown annotations choice {annotations!r}; choose one of {', '.join(ANNOTATION_POLICIES)}")
    path = Path(path)
    if path.is_dir():
        path = path / EXPORT_FILE
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise fail(path, "top level", "expected a list of tasks")
    json_dir = path.parent
    root = Path(images_dir) if images_dir is not None else (json_dir / IMAGES_DIR if (json_dir / IMAGES_DIR).is_dir() else json_dir)
    if images_dir is None and root != json_dir and _found_only_beside_json(tasks, json_dir, root):
        root = json_dir  # some images sit beside the export, outside images/: their common root is the folder
    classes = ClassMap(taxonomy)
    skipped: list[Skipped] = []
    records: list[ImageRecord] = []
    boxes: dict[int, list[Box]] = {}
    seen_names: set[str] = set()
    for i, task in enumerate(tasks):
        where = f"task[{i}]" + (f" (id {task.get('id')})" if isinstance(task, dict) and "id" in task else "")
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise fail(path, where, "not a task object with a 'data' mapping")
        image = task["data"].get("image")
        if not isinstance(image, str) or not image:
            raise fail(path, where, "data.image is missing")
        file_name, file_path = _resolve_file(_image_ref(image), json_dir, root)
        if file_name in seen_names:
            raise fail(path, where, f"image {file_name!r} appears in two tasks")
        seen_names.add(file_name)
        rects = []
        size: tuple[int, int] | None = None
        for rwhere, res in _pick_results(task, annotations, path, where, skipped):
            kind = res.get("type", "rectanglelabels") if isinstance(res, dict) else type(res).__name__
            if kind != "rectanglelabels":
                skipped.append(Skipped("non-box result", f"{path}: {rwhere}", f"a {kind} result carries no box; not used"))
                continue
            value = res.get("value")
            labels = value.get("rectanglelabels") if isinstance(value, dict) else None
            if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
                raise fail(path, rwhere, f"value.rectanglelabels must hold exactly one label, got {labels!r}")
            try:
                size = (int(res["original_width"]), int(res["original_height"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise fail(path, rwhere, "original_width and original_height are missing or not numbers") from exc
            rects.append((rwhere, dict(value), classes.slug(labels[0], path, rwhere)))  # type: ignore[arg-type]
        if size is None:
            data = task["data"]
            if isinstance(data.get("width"), int) and isinstance(data.get("height"), int):
                size = (data["width"], data["height"])
            elif file_path is not None:
                size = image_size(file_path)
            else:
                raise fail(path, where, f"no boxes give the image size and {file_name!r} is not under {root}")
        if size[0] <= 0 or size[1] <= 0:
            raise fail(path, where, f"image size {size[0]}x{size[1]} is not positive")
        image_id = i + 1
        records.append(ImageRecord(image_id, file_name, *size))
        if not rects:
            skipped.append(Skipped("image without labels", f"{path}: {where}", "no boxes in the annotations used; kept"))
        items = []
        for rwhere, value, slug in rects:
            xyxy = _box(value, size, path, rwhere)
            fitted = fit_box(xyxy, size, path, rwhere, skipped)
            if fitted is not None:
                items.append(Box(fitted, slug))
        boxes[image_id] = items
    if not records:
        raise DatasetError(f"{path}: the export has no tasks")
    return build_dataset(root, classes.finish(str(path)), records, boxes, skipped)


def to_tasks(dataset: DetectionDataset, *, image_prefix: str = f"{IMAGES_DIR}/") -> list[dict[str, Any]]:
    """The dataset as Label Studio tasks; ``data.image`` is ``image_prefix + file_name``."""
    tasks = []
    names = [a.name for a in dataset.taxonomy]
    for im, dets in dataset:
        result = []
        for k, (box, cls) in enumerate(box_rows(dets)):
            x1, y1, x2, y2 = box
            result.append({
                "id": f"{im.id}-{k}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                "original_width": im.width, "original_height": im.height, "image_rotation": 0,
                "value": {"x": x1 / im.width * 100, "y": y1 / im.height * 100, "width": (x2 - x1) / im.width * 100,
                          "height": (y2 - y1) / im.height * 100, "rotation": 0, "rectanglelabels": [names[int(cls)]]},
            })
        tasks.append({
            "id": im.id,
            "data": {"image": f"{image_prefix}{im.file_name}", "width": im.width, "height": im.height},
            "annotations": [{"id": im.id, "result": result, "was_cancelled": False, "ground_truth": False}],
        })
    return tasks


def write(
    dataset: DetectionDataset, path: str | os.PathLike[str], *, copy_images: bool = True, image_prefix: str = f"{IMAGES_DIR}/"
) -> Path:
    """Write ``path/labelstudio.json`` and (by default) ``path/images/``.

    To import into Label Studio with local-file serving, pass ``image_prefix="/data/local-files/?d=<dir>/"``.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / EXPORT_FILE, to_tasks(dataset, image_prefix=image_prefix))
    if copy_images:
        place_images(dataset, root / IMAGES_DIR)
    return root
