"""Bring people's labels back: merge a Label Studio export into a roomscan dataset (``roomscan active import``).

The export is parsed by :func:`roomscan.data.formats.labelstudio.read_tasks` (JSON or JSON_MIN; of several
annotations on a task the latest one not cancelled counts, or the one flagged ``ground_truth``). Each annotated
task is matched to a dataset image:

1. by name: ``data.image`` (``/data/local-files/?d=...``, ``/data/upload/<n>/<8 hex>-<name>``, an URL or a path)
   found under the dataset's ``images/`` by relative path or base name;
2. by content: the file found under ``images_root`` or beside the export has the same bytes (SHA-256) as a
   dataset image, whatever its name.

A matched image gets its boxes **replaced** by the person's annotation (a person's labels beat older ones); an
unmatched one with a file is copied in as a new image (under another name if its own is taken by a different
photo); one with neither is reported missing and skipped (``strict``: an error). Tasks nobody annotated (or whose
every annotation was cancelled) change nothing. Boxes reaching outside the image are cut to it, boxes with a side
under :data:`MIN_BOX_SIDE` pixels dropped; both are counted. Boxes within :data:`SAME_BOX_TOLERANCE` pixels of the
stored ones count as unchanged, so importing the same export twice changes nothing.

Nothing is half-written: new images are copied to temporary names, then renamed, then ``annotations.json`` is
replaced in one rename; a failure on the way removes what this import placed and leaves the dataset as it was.
If ``annotations.json`` changes under it (another import), the import stops the same way rather than lose that
change.

Example:
    >>> report = import_labelstudio("project-3.json", "data/rooms", label_map={"Coffee machine": "coffee-maker"})
    ...                                                                               # doctest: +SKIP
    >>> report.images_added, report.boxes_added                                       # doctest: +SKIP
    (('kitchen-7.jpg',), {'coffee-maker': 1, 'oven': 1})
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.data.dataset import (
    ANNOTATIONS_FILE,
    IMAGES_DIR,
    TAXONOMY_FILE,
    DatasetError,
    DetectionDataset,
    ImageRecord,
    skipped_lines,
    write_json_atomic,
)
from roomscan.data.formats import coco, labelstudio
from roomscan.data.formats._common import image_size
from roomscan.detection.core import Detections, make_detections
from roomscan.errors import TaxonomyError
from roomscan.taxonomy import Taxonomy, load_taxonomy, slugify

MIN_BOX_SIDE = 1.0
"""Boxes narrower or shorter than this (pixels, after cutting to the image) are dropped as degenerate."""
SAME_BOX_TOLERANCE = 0.05
"""Pixels: a box this close to a stored one of the same class is the same box (COCO stores 2 decimals)."""

__all__ = [
    "MIN_BOX_SIDE",
    "SAME_BOX_TOLERANCE",
    "ImportReport",
    "UnknownLabelsError",
    "import_labelstudio",
    "parse_label_map",
]

Box = tuple[tuple[float, float, float, float], str]  # (xyxy pixels, amenity slug)


class UnknownLabelsError(DatasetError):
    """Labels of the export that the dataset's taxonomy does not know (``labels``: label -> number of boxes)."""

    def __init__(self, message: str, labels: Mapping[str, int]) -> None:
        super().__init__(message)
        self.labels = dict(labels)


@dataclass(frozen=True)
class ImportReport:
    """What an import did (or, with ``dry_run``, would do).

    Attributes:
        images_added / images_updated: dataset file names of new images and of images whose boxes were replaced.
        images_unchanged: annotated images whose boxes were already the ones in the export.
        boxes_added / boxes_removed: amenity slug -> boxes, the difference against the dataset's old boxes.
        missing_images: ``data.image`` of annotated tasks whose photo is neither in the dataset nor on disk.
        unknown_labels: label -> boxes left out (only with ``skip_unknown``).
        unlabelled_tasks: tasks without a usable annotation (none, or all cancelled); they change nothing.
        cancelled_annotations: annotations marked cancelled (skipped) in Label Studio, never used.
        boxes_clipped / boxes_outside / boxes_degenerate: boxes cut to their image, wholly outside it (dropped),
            and with a side under :data:`MIN_BOX_SIDE` (dropped).
        renamed: ``(export name, dataset name)`` for new photos whose name a different dataset photo had.
        size_mismatches: tasks skipped because their image's shape differs from the dataset's photo.
        notes: the reader's account of what it left out, one line per kind.
        written: whether the dataset changed on disk (never with ``dry_run``).
    """

    export: str
    dataset: str
    dry_run: bool
    written: bool
    tasks: int
    images_added: tuple[str, ...] = ()
    images_updated: tuple[str, ...] = ()
    images_unchanged: int = 0
    boxes_added: dict[str, int] = field(default_factory=dict)
    boxes_removed: dict[str, int] = field(default_factory=dict)
    missing_images: tuple[str, ...] = ()
    unknown_labels: dict[str, int] = field(default_factory=dict)
    unlabelled_tasks: int = 0
    cancelled_annotations: int = 0
    boxes_clipped: int = 0
    boxes_outside: int = 0
    boxes_degenerate: int = 0
    renamed: tuple[tuple[str, str], ...] = ()
    size_mismatches: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.images_added or self.images_updated)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["renamed"] = [{"from": a, "to": b} for a, b in self.renamed]
        return doc


def parse_label_map(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["Old name=slug", ...]`` -> ``{"Old name": "slug"}`` (the last ``=`` splits: labels may hold one)."""
    out = {}
    for item in items:
        label, sep, slug = item.rpartition("=")
        if not sep or not label.strip() or not slug.strip():
            raise DatasetError(f"--map {item!r}: expected 'Label in the export=amenity slug', e.g. 'Coffee machine=coffee-maker'")
        out[label.strip()] = slug.strip()
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _ContentIndex:
    """Dataset images by SHA-256, hashing only files whose size matches the one looked up."""

    def __init__(self, dataset: DetectionDataset) -> None:
        self._dataset = dataset
        self._by_size: dict[int, list[ImageRecord]] = {}
        for im in dataset.images:
            p = dataset.path(im)
            if p.is_file():
                self._by_size.setdefault(p.stat().st_size, []).append(im)
        self._hashes: dict[int, str] = {}

    def digest(self, im: ImageRecord) -> str | None:
        if im.id not in self._hashes:
            p = self._dataset.path(im)
            self._hashes[im.id] = _sha256(p) if p.is_file() else ""
        return self._hashes[im.id] or None

    def find(self, path: Path, digest: str) -> ImageRecord | None:
        for im in self._by_size.get(path.stat().st_size, []):
            if self.digest(im) == digest:
                return im
        return None


def _resolver(taxonomy: Taxonomy, label_map: Mapping[str, str]) -> Callable[[str], str | None]:
    """``resolve(label) -> slug | None``: ``label_map`` first (exactly, or by slug), then the taxonomy."""
    mapped = {}
    for label, target in label_map.items():
        try:
            mapped[slugify(label)] = taxonomy.resolve(target).slug
        except TaxonomyError as exc:
            raise DatasetError(f"--map {label}={target}: {target!r} is not in the dataset's taxonomy ({exc})") from exc

    def resolve(label: str) -> str | None:
        if label in label_map:
            return mapped[slugify(label)]
        if slugify(label) in mapped:
            return mapped[slugify(label)]
        try:
            return taxonomy.resolve(label).slug
        except TaxonomyError:
            return None

    return resolve


def _unknown_message(export: Path, dataset_dir: Path, taxonomy: Taxonomy, unknown: Counter[str]) -> str:
    parts = []
    for label, n in sorted(unknown.items()):
        try:
            taxonomy.resolve(label)
            hint = ""
        except TaxonomyError as exc:
            text = str(exc)
            hint = "; " + text.split("; ", 1)[1] if "did you mean" in text else ""
        parts.append(f"{label!r} ({n} box{'es' if n != 1 else ''}{hint})")
    example = min(unknown)
    return (
        f"{export}: {len(unknown)} label(s) are not in the taxonomy of {dataset_dir}: {', '.join(parts)}. "
        f"Add them to {dataset_dir / TAXONOMY_FILE} (as amenities or synonyms), map them onto amenities with "
        f"--map '{example}=<slug>' (known: {', '.join(taxonomy.slugs)}), or leave their boxes out with --skip-unknown."
    )


def _diff(old: list[Box], new: list[Box]) -> tuple[Counter[str], Counter[str]]:
    """``(added, removed)`` per slug: boxes of ``new`` with no same-class box of ``old`` within the tolerance."""
    unused = list(old)
    added: Counter[str] = Counter()
    for xyxy, slug in new:
        for k, (oxyxy, oslug) in enumerate(unused):
            if oslug == slug and max(abs(a - b) for a, b in zip(xyxy, oxyxy)) <= SAME_BOX_TOLERANCE:
                del unused[k]
                break
        else:
            added[slug] += 1
    return added, Counter(slug for _, slug in unused)


def _boxes_of(dets: Detections, taxonomy: Taxonomy) -> list[Box]:
    classes = dets.class_id.tolist() if dets.class_id is not None else []
    return [(tuple(float(v) for v in box), taxonomy.amenities[int(c)].slug)  # type: ignore[misc]
            for box, c in zip(dets.xyxy.tolist(), classes)]


def _detections(boxes: list[Box], taxonomy: Taxonomy) -> Detections:
    return make_detections(
        np.array([b for b, _ in boxes], dtype=np.float32).reshape(-1, 4),
        np.ones(len(boxes)),
        [taxonomy.index(s) for _, s in boxes],
        [s for _, s in boxes],
        iscrowd=np.zeros(len(boxes), dtype=np.int64),
    )


def _open_dataset(dataset_dir: Path, taxonomy: Taxonomy | str | os.PathLike[str] | None) -> tuple[DetectionDataset, bool]:
    """``(dataset, is_new)``: an existing dataset (``taxonomy`` must agree with it) or a new empty one."""
    exists = (dataset_dir / ANNOTATIONS_FILE).is_file()
    if not exists:
        if dataset_dir.is_dir() and any(p for p in dataset_dir.iterdir() if p.name != IMAGES_DIR):
            raise DatasetError(f"{dataset_dir}: no {ANNOTATIONS_FILE}, and the folder is not empty: is this a roomscan dataset?")
        if taxonomy is None:
            raise DatasetError(f"{dataset_dir}: no roomscan dataset there; pass --taxonomy to start a new one with it")
        tax = load_taxonomy(taxonomy)
        return DetectionDataset(dataset_dir / IMAGES_DIR, tax, []), True
    dataset = DetectionDataset.load(dataset_dir)
    if taxonomy is not None:
        tax = load_taxonomy(taxonomy)
        if tax.slugs != dataset.taxonomy.slugs:
            raise DatasetError(
                f"--taxonomy {tax.source}: its amenities ({', '.join(tax.slugs)}) are not the dataset's "
                f"({', '.join(dataset.taxonomy.slugs)}, in that order), so class ids would change; leave --taxonomy "
                f"out to use the dataset's own, or convert the dataset to the new taxonomy first"
            )
        dataset = DetectionDataset(dataset.images_dir, tax, dataset.images, dataset.annotations)
    return dataset, False


@dataclass(frozen=True)
class _Target:
    """Where an annotated task's boxes go: the dataset photo ``record``, or a new photo copied from ``source``."""

    task: labelstudio.TaskLabels
    record: ImageRecord | None
    source: Path | None
    digest: str


def _in_images(path: Path, images_dir: Path) -> str | None:
    """``path`` relative to ``images_dir`` when it lies inside it."""
    resolved, base = path.resolve(), images_dir.resolve()
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else None


def _find_photo(
    task: labelstudio.TaskLabels,
    export_dir: Path,
    images_dir: Path,
    by_name: Mapping[str, ImageRecord],
    content: _ContentIndex,
) -> _Target | None:
    """The task's photo: a dataset photo named as ``data.image``, unless the file found for it has other bytes;
    else a dataset photo with the found file's bytes; else the found file, as a new photo; ``None``: missing."""
    name, found = labelstudio.locate_image(task.image, export_dir, images_dir)
    inside = found is not None and _in_images(found, images_dir) is not None
    record = by_name.get(name) if inside else None
    source = task.file
    if record is None and source is None and inside:
        source = found  # a file in images/ that annotations.json does not list yet
    if source is None:
        return None if record is None else _Target(task, record, None, "")
    digest = _sha256(source)
    if record is None or content.digest(record) != digest:
        record = content.find(source, digest)
    return _Target(task, record, source, digest)


def _task_boxes(
    task: labelstudio.TaskLabels, shape: tuple[int, int], size: tuple[int, int], resolve: Callable[[str], str | None]
) -> tuple[list[Box], int]:
    """``(boxes on the photo, degenerate boxes dropped)``: labelled at ``shape``, scaled to the photo's ``size``
    (Label Studio may show a resized copy) and cut to it; unknown labels left out (counted by the caller)."""
    sx, sy = size[0] / shape[0], size[1] / shape[1]
    boxes: list[Box] = []
    degenerate = 0
    for (x1, y1, x2, y2), label, _ in task.boxes:
        slug = resolve(label)
        if slug is None:
            continue
        box = (min(max(x1 * sx, 0.0), size[0]), min(max(y1 * sy, 0.0), size[1]),
               min(max(x2 * sx, 0.0), size[0]), min(max(y2 * sy, 0.0), size[1]))
        if box[2] - box[0] < MIN_BOX_SIDE or box[3] - box[1] < MIN_BOX_SIDE:
            degenerate += 1
            continue
        boxes.append((box, slug))
    return boxes, degenerate


def _box_notes(read: labelstudio.LabelStudioExport) -> dict[int, Counter[str]]:
    """Task index -> the reader's notes on its boxes by kind (``box clipped``, ``box dropped``)."""
    out: dict[int, Counter[str]] = {t.index: Counter() for t in read.tasks}
    prefix = f"{read.path}: task["
    for note in read.skipped:
        if note.kind in ("box clipped", "box dropped") and note.where.startswith(prefix):
            index = note.where[len(prefix):].split("]", 1)[0]
            if index.isdigit() and int(index) in out:
                out[int(index)][note.kind] += 1
    return out


def _free_name(wanted: str, digest: str, taken: set[str], images_dir: Path) -> str:
    p = Path(wanted)
    name = wanted
    if name in taken or (images_dir / name).exists():
        name = (p.parent / f"{p.stem}-{digest[:8]}{p.suffix}").as_posix()
    return name


def import_labelstudio(
    export: str | os.PathLike[str],
    dataset_dir: str | os.PathLike[str],
    *,
    taxonomy: Taxonomy | str | os.PathLike[str] | None = None,
    label_map: Mapping[str, str] | None = None,
    images_root: str | os.PathLike[str] | None = None,
    skip_unknown: bool = False,
    strict: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Merge a Label Studio export into the roomscan dataset at ``dataset_dir`` (module docstring).

    Args:
        export: the export file (JSON or JSON_MIN).
        dataset_dir: the dataset (``images/``, ``annotations.json``, ``taxonomy.yaml``); a missing or empty folder
            starts a new dataset, which needs ``taxonomy``.
        taxonomy: resolve labels through this taxonomy (it may add synonyms) instead of the dataset's; its
            amenities must be the dataset's, in order.
        label_map: export label -> amenity (slug, name or synonym), for labels the taxonomy does not know.
        images_root: where the export's photos are (default: ``images/`` beside the export, else its folder).
        skip_unknown: leave out boxes with unknown labels instead of failing.
        strict: fail on a missing photo or a shape mismatch instead of skipping the task.
        dry_run: work out the report, write nothing.

    Raises:
        UnknownLabelsError: labels neither the taxonomy nor ``label_map`` resolves (all of them, with hints).
        DatasetError: a malformed export or dataset, a taxonomy that is not the dataset's, ``strict`` and a
            missing photo; the dataset is unchanged.
    """
    export, root = Path(export), Path(dataset_dir)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"--into {root}: is a file, not a dataset folder; give the dataset's folder (or a new one)")
    if images_root is not None and not Path(images_root).is_dir():
        raise DatasetError(f"--images-root {images_root}: no such folder; give the folder that holds the export's photos")
    stamp = _stamp(root)
    dataset, is_new = _open_dataset(root, taxonomy)
    tax = dataset.taxonomy
    read = labelstudio.read_tasks(export, images_dir=images_root)
    if not read.tasks:
        raise DatasetError(f"{read.path}: the export has no tasks; export the project from Label Studio as JSON")
    resolve = _resolver(tax, dict(label_map or {}))
    by_name = {im.file_name: im for im in dataset.images}
    content = _ContentIndex(dataset)
    images_dir = root / IMAGES_DIR

    unknown: Counter[str] = Counter()
    missing: list[str] = []
    mismatched: list[str] = []
    planned: list[_Target] = []
    claimed: dict[int, str] = {}
    unlabelled = 0
    for task in read.tasks:
        if not task.annotated:
            unlabelled += 1
            continue
        target = _find_photo(task, export.parent, images_dir, by_name, content)
        if target is None:
            missing.append(task.image)
            continue
        record = target.record
        if record is not None:
            if record.id in claimed:
                raise DatasetError(f"{export}: {task.where} and {claimed[record.id]} are the same photo "
                                   f"({record.file_name}); keep one task per photo")
            claimed[record.id] = task.where
        for _, label, _ in task.boxes:
            if resolve(label) is None:
                unknown[label] += 1
        planned.append(target)

    if unknown and not skip_unknown:
        raise UnknownLabelsError(_unknown_message(export, root, tax, unknown), unknown)
    if missing and strict:
        raise DatasetError(f"{export}: {len(missing)} photo(s) are neither in {images_dir} nor found on disk: "
                           f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}; pass --images-root DIR "
                           f"where they are, or leave out --strict to skip them")

    annotations = dict(dataset.annotations)
    images = list(dataset.images)
    taken = set(by_name)
    next_id = max((im.id for im in images), default=0) + 1
    added: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    added_names: list[str] = []
    updated_names: list[str] = []
    copies: list[tuple[Path, str]] = []
    renamed: list[tuple[str, str]] = []
    unchanged = clipped = outside = degenerate = 0
    fitted = _box_notes(read)
    for task, record, source, digest in ((t.task, t.record, t.source, t.digest) for t in planned):
        size = (record.width, record.height) if record is not None else image_size(source)  # type: ignore[arg-type]
        shape = task.size or size
        if shape != size and abs(shape[0] / shape[1] - size[0] / size[1]) > 0.01 * size[0] / size[1]:
            message = f"{task.where}: the photo is {size[0]}x{size[1]} but was labelled at {shape[0]}x{shape[1]}"
            if strict:
                raise DatasetError(f"{export}: {message}; its boxes would land in the wrong place")
            mismatched.append(message)
            continue
        clipped += fitted[task.index]["box clipped"]
        outside += fitted[task.index]["box dropped"]
        new, dropped = _task_boxes(task, shape, size, resolve)
        degenerate += dropped
        if record is None:
            assert source is not None
            name = _in_images(source, images_dir) or ""
            if not name or name in taken:
                name = _free_name(task.file_name, digest, taken, images_dir)
                if name != task.file_name:
                    renamed.append((task.file_name, name))
                copies.append((source, name))
            taken.add(name)
            record = ImageRecord(next_id, name, *size)
            next_id += 1
            images.append(record)
            added_names.append(name)
            annotations[record.id] = _detections(new, tax)
            added.update(slug for _, slug in new)
            continue
        plus, minus = _diff(_boxes_of(annotations[record.id], tax), new)
        if not plus and not minus:
            unchanged += 1
            continue
        added.update(plus)
        removed.update(minus)
        updated_names.append(record.file_name)
        annotations[record.id] = _detections(new, tax)

    report = ImportReport(
        export=str(export), dataset=str(root), dry_run=dry_run, written=False, tasks=len(read.tasks),
        images_added=tuple(added_names), images_updated=tuple(updated_names), images_unchanged=unchanged,
        boxes_added=dict(sorted(added.items())), boxes_removed=dict(sorted(removed.items())),
        missing_images=tuple(missing), unknown_labels=dict(sorted(unknown.items())), unlabelled_tasks=unlabelled,
        cancelled_annotations=sum(s.kind == "cancelled annotation" for s in read.skipped),
        boxes_clipped=clipped, boxes_outside=outside, boxes_degenerate=degenerate, renamed=tuple(renamed),
        size_mismatches=tuple(mismatched), notes=tuple(skipped_lines(list(read.skipped))),
    )
    if dry_run or not report.changed:
        return report
    merged = DetectionDataset(images_dir, tax, images, annotations)
    _write(root, merged, copies, write_taxonomy=is_new, stamp=stamp)
    return replace(report, written=True)


def _stamp(root: Path) -> tuple[int, int] | None:
    try:
        st = (root / ANNOTATIONS_FILE).stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def _write(
    root: Path, dataset: DetectionDataset, copies: list[tuple[Path, str]], *, write_taxonomy: bool,
    stamp: tuple[int, int] | None,
) -> None:
    """Copy new photos to temporary names, rename them, then replace ``annotations.json`` in one rename; on any
    failure remove what was placed, so the dataset is as it was. ``annotations.json`` changed by someone else since
    it was read (``stamp``) is a failure too: replacing it would lose their change."""
    images_dir = root / IMAGES_DIR
    token = uuid.uuid4().hex[:8]
    made_dirs: list[Path] = []
    temps: list[Path] = []
    placed: list[Path] = []
    try:
        for d in [root, images_dir, *sorted({(images_dir / name).parent for _, name in copies})]:
            if not d.is_dir():
                d.mkdir(parents=True)
                made_dirs.append(d)
        for source, name in copies:
            dst = images_dir / name
            tmp = dst.with_name(f".{dst.name}.import-{token}.tmp")
            temps.append(tmp)
            shutil.copy2(source, tmp)  # a copy, never a link: the dataset owns its photos
        for tmp, (_, name) in zip(temps, copies):
            os.replace(tmp, images_dir / name)
            placed.append(images_dir / name)
        if write_taxonomy:
            tmp = root / f".{TAXONOMY_FILE}.import-{token}.tmp"
            temps.append(tmp)
            dataset.taxonomy.save(tmp)
            os.replace(tmp, root / TAXONOMY_FILE)
            placed.append(root / TAXONOMY_FILE)
        if _stamp(root) != stamp:
            raise DatasetError(f"{root / ANNOTATIONS_FILE} changed while importing (another import or edit?); "
                               f"nothing was imported: run the import again")
        write_json_atomic(root / ANNOTATIONS_FILE, coco.to_dict(dataset))
    except BaseException:
        for path in [*temps, *placed]:
            path.unlink(missing_ok=True)
        (root / f"{ANNOTATIONS_FILE}.tmp").unlink(missing_ok=True)
        for d in reversed(made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise
