"""Open Images box annotations (CSV), as Google publishes them::

    DATASET/
      annotations-bbox.csv      ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,
                                IsGroupOf,IsDepiction,IsInside   (coordinates normalised to [0, 1])
      class-descriptions.csv    LabelName,DisplayName   (the MID and its name; the header is optional, as in the
                                official ``oidv7-class-descriptions-boxable.csv``)
      images.csv                optional: ImageID,FileName,Width,Height (written by roomscan; images without
                                boxes are listed only here)
      images/<ImageID>.jpg

``LabelName`` is the class MID, mapped through the taxonomy's ``mid`` (amenities without one are written by
slug). ``IsGroupOf`` becomes ``iscrowd``. Without ``images.csv``, sizes come from the image headers. Given a
taxonomy, rows of other classes are skipped: the official files hold 600 classes.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord, Skipped
from roomscan.data.formats._common import (
    Box,
    box_flags,
    box_rows,
    build_dataset,
    fail,
    find_image,
    fit_box,
    image_size,
    label_name_to_amenity,
    place_images,
)
from roomscan.errors import TaxonomyError
from roomscan.taxonomy import Amenity, Taxonomy

BOX_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
               "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
REQUIRED_BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
ANNOTATIONS_FILE = "annotations-bbox.csv"
CLASSES_FILE = "class-descriptions.csv"
IMAGES_FILE = "images.csv"
IMAGES_DIR = "images"

__all__ = ["ANNOTATIONS_FILE", "CLASSES_FILE", "IMAGES_FILE", "BoxRow", "iter_boxes", "read", "read_class_descriptions", "write"]

BoxRow = tuple[str, str, tuple[float, float, float, float], int]
"""``(image_id, mid, (xmin, ymin, xmax, ymax) normalised, is_group_of)``."""


def _open_csv(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            yield from enumerate(csv.reader(fh), start=1)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV file ({exc})") from exc


def read_class_descriptions(path: str | os.PathLike[str]) -> dict[str, str]:
    """MID -> display name from a class-descriptions CSV (with or without the ``LabelName,DisplayName`` header)."""
    path = Path(path)
    out: dict[str, str] = {}
    for lineno, row in _open_csv(path):
        if not row or not "".join(row).strip():
            continue
        if lineno == 1 and row[0] in ("LabelName", "mid", "MID"):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise fail(path, f"line {lineno}", f"expected 'mid,name', got {','.join(row)!r}")
        out[row[0].strip()] = row[1].strip()
    if not out:
        raise DatasetError(f"{path}: no classes in the class-descriptions file")
    return out


def iter_boxes(path: str | os.PathLike[str], keep: Callable[[str], bool] | None = None) -> Iterator[BoxRow]:
    """Stream the rows of a box-annotations CSV (gigabytes for the train split: nothing is held in memory).

    Args:
        path: the CSV (header row first).
        keep: ``keep(mid)`` filters rows before their numbers are parsed.

    Raises:
        DatasetError: a missing column, a non-numeric or out-of-range coordinate; the message names the line.
    """
    path = Path(path)
    rows = _open_csv(path)
    header = next(rows, (1, []))[1]
    missing = [c for c in REQUIRED_BOX_COLUMNS if c not in header]
    if missing:
        raise fail(path, "line 1", f"missing column(s) {', '.join(missing)}; expected the header {','.join(BOX_COLUMNS)}")
    col = {name: header.index(name) for name in header}
    group_col = col.get("IsGroupOf")
    for lineno, row in rows:
        if not row:
            continue
        if len(row) != len(header):
            raise fail(path, f"line {lineno}", f"{len(row)} fields, the header has {len(header)}")
        mid = row[col["LabelName"]]
        if keep is not None and not keep(mid):
            continue
        try:
            xmin, xmax, ymin, ymax = (float(row[col[c]]) for c in ("XMin", "XMax", "YMin", "YMax"))
        except ValueError as exc:
            raise fail(path, f"line {lineno}", f"coordinates are not numbers: {','.join(row)!r}") from exc
        if not (0 <= xmin <= xmax <= 1 and 0 <= ymin <= ymax <= 1):
            raise fail(path, f"line {lineno}", f"need 0 <= XMin <= XMax <= 1 and 0 <= YMin <= YMax <= 1, got "
                       f"XMin={xmin} XMax={xmax} YMin={ymin} YMax={ymax}")
        group = row[group_col].strip() if group_col is not None else "0"
        yield row[col["ImageID"]], mid, (xmin, ymin, xmax, ymax), 1 if group == "1" else 0


def _find(root: Path, explicit: str | os.PathLike[str] | None, default: str, pattern: str) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    if (root / default).is_file():
        return root / default
    found = sorted(root.glob(pattern))
    return found[0] if found else None


def _taxonomy_from_classes(classes: dict[str, str], source: str) -> Taxonomy:
    amenities = [label_name_to_amenity(name, mid if mid.startswith("/") else None) for mid, name in classes.items()]
    try:
        return Taxonomy(tuple(amenities), source=source)
    except TaxonomyError as exc:
        raise DatasetError(f"{source}: {exc}") from exc


def _read_image_list(path: Path) -> dict[str, tuple[str, int, int]]:
    rows = _open_csv(path)
    header = next(rows, (1, []))[1]
    if not {"ImageID", "FileName", "Width", "Height"} <= set(header):
        raise fail(path, "line 1", "expected the header ImageID,FileName,Width,Height")
    col = {name: header.index(name) for name in header}
    out = {}
    for lineno, row in rows:
        if not row:
            continue
        try:
            w, h = int(row[col["Width"]]), int(row[col["Height"]])
            name = row[col["FileName"]]
        except (ValueError, IndexError) as exc:
            raise fail(path, f"line {lineno}", f"expected ImageID,FileName,Width,Height, got {','.join(row)!r}") from exc
        if w <= 0 or h <= 0 or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise fail(path, f"line {lineno}", f"bad file name or size: {','.join(row)!r}")
        out[row[col["ImageID"]]] = (name, w, h)
    return out


def read(
    path: str | os.PathLike[str],
    *,
    annotations: str | os.PathLike[str] | None = None,
    classes: str | os.PathLike[str] | None = None,
    images_csv: str | os.PathLike[str] | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    taxonomy: Taxonomy | None = None,
) -> DetectionDataset:
    """Read an Open Images directory (see the module docstring); any file may be given explicitly instead.

    Raises:
        DatasetError: no annotations CSV, a malformed row, a MID missing from the class descriptions, or an
            image that is neither listed in ``images.csv`` nor found under ``images/``.
    """
    root = Path(path)
    ann = _find(root, annotations, ANNOTATIONS_FILE, "*annotations-bbox.csv")
    if ann is None:
        raise DatasetError(f"{root}: no {ANNOTATIONS_FILE} (or *annotations-bbox.csv); is this an Open Images folder?")
    cls_path = _find(root, classes, CLASSES_FILE, "*class-descriptions*.csv")
    descriptions = read_class_descriptions(cls_path) if cls_path is not None else None
    own_taxonomy = taxonomy is None
    if taxonomy is None:
        if descriptions is None:
            raise DatasetError(f"{root}: no {CLASSES_FILE}; pass the class descriptions or a taxonomy")
        taxonomy = _taxonomy_from_classes(descriptions, str(cls_path))
    by_label = {a.mid or a.slug: a for a in taxonomy}
    list_path = _find(root, images_csv, IMAGES_FILE, IMAGES_FILE)
    listed = _read_image_list(list_path) if list_path is not None else {}
    img_root = Path(images_dir) if images_dir is not None else root / IMAGES_DIR

    rows: dict[str, list[tuple[Amenity, tuple[float, float, float, float], int]]] = {k: [] for k in listed}
    skipped: list[Skipped] = []
    for image_id, mid, box, group in iter_boxes(ann):
        if not _SAFE_ID.match(image_id):  # it becomes a file name: no separators, no ".."
            raise fail(ann, f"image {image_id!r}", "ImageID must be letters, digits, '_' or '-'")
        amenity = by_label.get(mid)
        if amenity is None:
            if own_taxonomy:
                raise fail(ann, f"image {image_id}", f"LabelName {mid!r} is not in {cls_path}")
            skipped.append(Skipped("unknown class", f"{ann}: image {image_id}", f"LabelName {mid!r} is not in the taxonomy; box dropped"))
            continue
        rows.setdefault(image_id, []).append((amenity, box, group))

    records: list[ImageRecord] = []
    boxes: dict[int, list[Box]] = {}
    for image_id, items in sorted(rows.items(), key=lambda kv: listed.get(kv[0], (kv[0],))[0]):
        if image_id in listed:
            file_name, w, h = listed[image_id]
        else:
            found = find_image(img_root, image_id)
            if found is None:
                raise fail(ann, f"image {image_id}", f"no image {img_root}/{image_id}.jpg (or .png...) and no {IMAGES_FILE} entry")
            file_name, (w, h) = found.relative_to(img_root).as_posix(), image_size(found)
        rec = ImageRecord(len(records) + 1, file_name, w, h)
        records.append(rec)
        out = []
        for amenity, (x1, y1, x2, y2), group in items:
            xyxy = (x1 * w, y1 * h, x2 * w, y2 * h)
            fitted = fit_box(xyxy, (w, h), ann, f"image {image_id}", skipped)
            if fitted is not None:
                out.append(Box(fitted, amenity.slug, iscrowd=group))
        boxes[rec.id] = out
    return build_dataset(img_root, taxonomy, records, boxes, skipped)


_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def _image_id(file_name: str) -> str:
    return Path(file_name).with_suffix("").as_posix()


def write(dataset: DetectionDataset, path: str | os.PathLike[str], *, copy_images: bool = True) -> Path:
    """Write ``annotations-bbox.csv``, ``class-descriptions.csv``, ``images.csv`` and (by default) ``images/``.

    The ImageID is the file name without its suffix (Open Images' own images are ``<ImageID>.jpg``).
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    tax = dataset.taxonomy
    ids = [_image_id(im.file_name) for im in dataset.images]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{root}: two images share a name apart from the suffix; Open Images needs unique ImageIDs")
    with (root / CLASSES_FILE).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["LabelName", "DisplayName"])
        writer.writerows([a.mid or a.slug, a.name] for a in tax)
    with (root / IMAGES_FILE).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ImageID", "FileName", "Width", "Height"])
        writer.writerows([i, im.file_name, im.width, im.height] for i, im in zip(ids, dataset.images))
    with (root / ANNOTATIONS_FILE).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(BOX_COLUMNS)
        for image_id, (im, dets) in zip(ids, dataset):
            groups = box_flags(dets, "iscrowd")
            for k, (box, cls) in enumerate(box_rows(dets)):
                a = tax.amenities[int(cls)]
                x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (box[0] / im.width, box[1] / im.height,
                                                                  box[2] / im.width, box[3] / im.height))
                writer.writerow([image_id, "roomscan", a.mid or a.slug, 1, f"{x1:.7f}", f"{x2:.7f}", f"{y1:.7f}",
                                 f"{y2:.7f}", 0, 0, groups[k], 0, 0])
    if copy_images:
        place_images(dataset, root / IMAGES_DIR)
    return root
