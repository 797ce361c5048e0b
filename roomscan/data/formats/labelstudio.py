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
``textarea`` and other non-box results (even sharing a region id with a rectangle) carry no box and are left out,
as are rectangles with no label; a rectangle with several labels (``choice="multiple"``) gives one box per label.
Every such choice is listed in ``DetectionDataset.skipped``. ``data.image`` (an upload path
``/data/upload/<project>/<8 hex>-<name>``, a ``?d=`` local-files path, an ``s3://``/``gs://``/``http`` URL or a
relative path) is matched to a file by its relative path or, failing that, its base name under ``images_dir``
(``--image-root``), without the prefix Label Studio gives uploads. Labels are written exactly as the amenities'
names.

The "JSON_MIN" export (one flat row per annotation: ``image``, the boxes under the control's name with their
``original_width/height``, ``annotation_id``, ``updated_at``) is read too; rows of one task ``id`` become its
annotations. :func:`read_tasks` gives each task before its labels meet a taxonomy (``roomscan active import`` merges
it into a dataset); :func:`read` builds a dataset on it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

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

__all__ = [
    "ANNOTATION_POLICIES",
    "EXPORT_FILE",
    "IMAGES_DIR",
    "LabelStudioExport",
    "TaskLabels",
    "locate_image",
    "read",
    "read_tasks",
    "to_tasks",
    "write",
]


def _image_ref(value: str) -> str:
    """``data.image`` -> a relative path: the ``d=`` of local files, else the URL's path (uploads drop a prefix)."""
    parsed = urlparse(value)
    # Label Studio percent-encodes ``d`` once (``quote``): decode it once, and keep "+" (parse_qs would decode
    # twice, "a%2520b.jpg" -> "a b.jpg", and read "+" as a space).
    for part in parsed.query.split("&"):
        if part.startswith("d="):
            return unquote(part[2:])
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


def _locate(image: str, json_dir: Path, images_dir: Path) -> tuple[str, Path | None]:
    """:func:`_resolve_file` of the decoded ``data.image``; a plain path not found decoded is tried as written
    (a file really named ``a%20b.jpg``, as :func:`to_tasks` writes it)."""
    decoded = _resolve_file(_image_ref(image), json_dir, images_dir)
    if decoded[1] is None and "://" not in image and "?" not in image and _image_ref(image) != image:
        raw = _resolve_file(image, json_dir, images_dir)
        if raw[1] is not None:
            return raw
    return decoded


def _task_image(data: dict[str, Any]) -> str | None:
    """``data.image``; else, for a config whose ``<Image value="$img">`` names another key, the one string of
    ``data`` that points at an image file (``None`` when there is no such string, or several)."""
    from roomscan.detection.image import IMAGE_SUFFIXES

    image = data.get("image")
    if "image" in data:
        return image if isinstance(image, str) and image else None
    found = [v for v in data.values() if isinstance(v, str) and Path(_image_ref(v)).suffix.lower() in IMAGE_SUFFIXES]
    return found[0] if len(found) == 1 else None


def _found_only_beside_json(tasks: list[Any], json_dir: Path, root: Path) -> bool:
    """Whether some task's image exists relative to the export's folder but not under ``root``."""
    for task in tasks:
        image = _task_image(task["data"]) if isinstance(task, dict) and isinstance(task.get("data"), dict) else None
        if not isinstance(image, str) or not image:
            continue
        _, found = _locate(image, json_dir, root)
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
    picked: list[tuple[str, Any]] = []
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
    if not math.isfinite(rotation):
        raise fail(path, where, f"rotation {rotation} is not a finite number of degrees")
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


@dataclass(frozen=True)
class TaskLabels:
    """One task of an export as the reader sees it, before its labels meet a taxonomy.

    Attributes:
        where: ``"task[3] (id 12)"``, for messages.
        image: ``data.image`` as exported.
        file_name: the image's path relative to ``images_dir`` (its base name when found elsewhere or not at all).
        file: the image file found, or ``None``.
        size: ``(width, height)`` from the boxes, ``data.width/height`` or the file; ``None`` when nothing gives it.
        annotated: whether an annotation was used (``False``: none, or every one cancelled).
        boxes: ``(xyxy pixels, label as written, where)`` per box, already cut to the image (see ``fit_box``).
    """

    index: int
    where: str
    image: str
    file_name: str
    file: Path | None
    size: tuple[int, int] | None
    annotated: bool
    boxes: tuple[tuple[tuple[float, float, float, float], str, str], ...]


@dataclass(frozen=True)
class LabelStudioExport:
    """What :func:`read_tasks` found: the tasks in file order, the image root used, and what was left out."""

    path: Path
    images_dir: Path
    tasks: tuple[TaskLabels, ...]
    skipped: tuple[Skipped, ...]


def locate_image(image: str, json_dir: str | os.PathLike[str], images_dir: str | os.PathLike[str]) -> tuple[str, Path | None]:
    """``data.image`` -> ``(file name relative to images_dir, the file if found)``, as :func:`read` matches images:
    by relative path under ``images_dir`` or ``json_dir``, then by base name (without an upload prefix)."""
    return _locate(image, Path(json_dir), Path(images_dir))


def _from_min(tasks: list[Any]) -> list[Any]:
    """JSON_MIN rows (``{"image": ..., "<control>": [{x, y, ..., "rectanglelabels": [...]}], "annotation_id": ...}``,
    one per annotation) -> JSON tasks, rows of one task ``id`` joined as its annotations."""
    if not tasks or not all(isinstance(t, dict) and "data" not in t and isinstance(t.get("image"), str) for t in tasks):
        return tasks
    joined: dict[Any, dict[str, Any]] = {}
    for i, row in enumerate(tasks):
        result = []
        for key, value in row.items():
            if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
                continue
            for v in value:
                if "rectanglelabels" in v:
                    box = {k: v[k] for k in v if k not in ("original_width", "original_height")}
                    result.append({"type": "rectanglelabels", "from_name": key, "value": box,
                                   "original_width": v.get("original_width"), "original_height": v.get("original_height")})
                elif kinds := [k for k in v if k.endswith("labels")]:  # polygons, keypoints...: counted as skipped
                    result.append({"type": kinds[0], "from_name": key, "value": v})
        annotation = {"id": row.get("annotation_id"), "created_at": row.get("created_at"),
                      "updated_at": row.get("updated_at"), "result": result}
        key = row.get("id", f"row {i}")
        key = key if isinstance(key, (int, str)) else repr(key)  # an id of any JSON type joins rows, never crashes
        task = joined.setdefault(key, {"data": {"image": row["image"]}, "annotations": []})
        if "id" in row:
            task["id"] = row["id"]
        task["annotations"].append(annotation)
    return list(joined.values())


def read_tasks(
    path: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    annotations: str = "latest",
) -> LabelStudioExport:
    """Parse a Label Studio export (JSON, or JSON_MIN) into :class:`TaskLabels`, labels left as written.

    :func:`read` builds a dataset on it; ``roomscan active import`` merges it into one. Arguments and errors as
    :func:`read`, except that a task whose image size nothing gives is returned with ``size=None``.
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
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file (is it the JSON export? byte {exc.start}: {exc.reason})") from exc
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits, nesting past the stack
        raise DatasetError(f"{path}: not a JSON export roomscan can read ({exc})") from exc
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise fail(path, "top level", "expected a list of tasks")
    tasks = _from_min(tasks)
    json_dir = path.parent
    root = Path(images_dir) if images_dir is not None else (json_dir / IMAGES_DIR if (json_dir / IMAGES_DIR).is_dir() else json_dir)
    if images_dir is None and root != json_dir and _found_only_beside_json(tasks, json_dir, root):
        root = json_dir  # some images sit beside the export, outside images/: their common root is the folder
    skipped: list[Skipped] = []
    out: list[TaskLabels] = []
    for i, task in enumerate(tasks):
        where = f"task[{i}]" + (f" (id {task.get('id')})" if isinstance(task, dict) and "id" in task else "")
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise fail(path, where, "not a task object with a 'data' mapping")
        image = _task_image(task["data"])
        if image is None:
            keys = ", ".join(map(str, task["data"])) or "none"
            raise fail(path, where, f"data.image is missing or empty (data's keys: {keys}); give each task its photo "
                                    "under data.image, as <Image name=\"image\" value=\"$image\"/> does")
        file_name, file_path = _locate(image, json_dir, root)
        rects: list[tuple[str, dict[str, Any], str]] = []
        size: tuple[int, int] | None = None
        picked = _pick_results(task, annotations, path, where, skipped)
        used = task.get("annotations", task.get("completions", []))
        annotated = isinstance(used, list) and any(isinstance(a, dict) and not a.get("was_cancelled") for a in used)
        for rwhere, res in picked:
            kind = res.get("type", "rectanglelabels") if isinstance(res, dict) else type(res).__name__
            if kind != "rectanglelabels":
                skipped.append(Skipped("non-box result", f"{path}: {rwhere}", f"a {kind} result carries no box; not used"))
                continue
            value = res.get("value")
            labels = value.get("rectanglelabels") if isinstance(value, dict) else None
            if not isinstance(labels, list) or not all(isinstance(label, str) and label for label in labels):
                raise fail(path, rwhere, f"value.rectanglelabels must be a list of label names, got {labels!r}")
            if not labels:  # a region whose label was taken off in the editor
                skipped.append(Skipped("box without a label", f"{path}: {rwhere}", "no label chosen; not used"))
                continue
            try:
                size = (int(res["original_width"]), int(res["original_height"]))
            except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: Infinity, 1e400
                raise fail(path, rwhere, "original_width and original_height are missing or not finite numbers") from exc
            # <RectangleLabels choice="multiple">: one box per label chosen
            rects.extend((rwhere, dict(value), label) for label in labels)
        if size is None:
            data = task["data"]
            if isinstance(data.get("width"), int) and isinstance(data.get("height"), int):
                size = (data["width"], data["height"])
            elif file_path is not None:
                size = image_size(file_path)
        if size is not None and (size[0] <= 0 or size[1] <= 0):
            raise fail(path, where, f"image size {size[0]}x{size[1]} is not positive")
        boxes = []
        for rwhere, value, label in rects:
            assert size is not None  # every rectangle gives the size
            fitted = fit_box(_box(value, size, path, rwhere), size, path, rwhere, skipped)
            if fitted is not None:
                boxes.append((fitted, label, rwhere))
        out.append(TaskLabels(i, where, image, file_name, file_path, size, annotated, tuple(boxes)))
    kept = _one_task_per_image(out, path, skipped)
    return LabelStudioExport(path, root, kept, tuple(skipped))


def _one_task_per_image(tasks: list[TaskLabels], path: Path, skipped: list[Skipped]) -> tuple[TaskLabels, ...]:
    """The tasks, an image's unlabelled duplicates left out (a project that imported its photos twice);
    two labelled tasks of one image are an error: which one counts is not ours to guess."""
    by_name: dict[str, list[TaskLabels]] = {}
    for task in tasks:
        by_name.setdefault(task.file_name, []).append(task)
    kept: list[TaskLabels] = []
    for task in tasks:
        same = by_name[task.file_name]
        labelled = [t for t in same if t.annotated]
        if len(labelled) > 1:
            raise fail(path, labelled[1].where, f"image {task.file_name!r} appears in two tasks, both labelled "
                                                f"({labelled[0].where} too); delete one in Label Studio and export again")
        if task is (labelled[0] if labelled else same[0]):
            kept.append(task)
        else:
            skipped.append(Skipped("duplicate task", f"{path}: {task.where}",
                                   f"an unlabelled second task of {task.file_name!r}; not used"))
    return tuple(kept)


def read(
    path: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    taxonomy: Taxonomy | None = None,
    annotations: str = "latest",
) -> DetectionDataset:
    """Read a Label Studio JSON export (a file, or a directory holding ``labelstudio.json``); JSON_MIN exports
    (one flat row per annotation) are read too.

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
    export = read_tasks(path, images_dir=images_dir, annotations=annotations)
    path, root = export.path, export.images_dir
    classes = ClassMap(taxonomy)
    skipped = list(export.skipped)
    records: list[ImageRecord] = []
    boxes: dict[int, list[Box]] = {}
    for task in export.tasks:
        if task.size is None:
            raise fail(path, task.where, f"no boxes give the image size and {task.file_name!r} is not under {root}")
        image_id = task.index + 1
        records.append(ImageRecord(image_id, task.file_name, *task.size))
        if not task.boxes:
            skipped.append(Skipped("image without labels", f"{path}: {task.where}", "no boxes in the annotations used; kept"))
        boxes[image_id] = [Box(xyxy, classes.slug(label, path, rwhere)) for xyxy, label, rwhere in task.boxes]
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
