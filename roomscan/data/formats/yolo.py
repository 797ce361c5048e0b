"""YOLO (Ultralytics/Darknet) text labels::

    DATASET/
      data.yaml           names: [bed, oven, ...]   (a list, or a {id: name} mapping; or classes.txt / obj.names)
      images/<name>.jpg   any sub-folders (images/train/..., images/val/...)
      labels/<name>.txt   one line per box: ``class cx cy w h``, normalised to [0, 1]; a missing file = no boxes

Image sizes come from the image headers (EXIF rotation applied, as Ultralytics does), so the images must exist.
Nothing is dropped silently; ``DetectionDataset.skipped`` lists label files without an image (skipped), images
without a label file (kept, no boxes), class numbers outside the class list (box dropped) and boxes reaching outside
their image (clipped, or dropped when wholly outside).
Class names are written exactly as the amenities' names (the label strings read in).

Example:
    >>> ds = yolo.read("datasets/rooms-yolo")                     # doctest: +SKIP
    >>> yolo.write(ds, "/tmp/rooms-yolo-copy")                    # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord, Skipped
from roomscan.data.formats._common import (
    Box,
    ClassMap,
    box_rows,
    build_dataset,
    fail,
    fit_box,
    image_size,
    list_images,
    place_images,
)
from roomscan.taxonomy import Taxonomy

DATA_YAML = "data.yaml"
CLASS_FILES = ("classes.txt", "obj.names")
IMAGES_DIR = "images"
LABELS_DIR = "labels"

__all__ = ["DATA_YAML", "IMAGES_DIR", "LABELS_DIR", "read", "read_class_names", "write"]


def read_class_names(root: Path) -> list[str] | None:
    """The class names of a YOLO dataset (``data.yaml`` ``names``, else ``classes.txt``/``obj.names``), or None."""
    data_yaml = root / DATA_YAML
    if data_yaml.is_file():
        try:
            doc = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise DatasetError(f"{data_yaml}: not valid YAML ({exc})") from exc
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            try:
                keys = sorted(int(k) for k in names)
            except (TypeError, ValueError) as exc:
                raise fail(data_yaml, "names", "mapping keys must be class numbers 0..n-1") from exc
            if keys != list(range(len(keys))):
                raise fail(data_yaml, "names", f"class numbers must be 0..{len(keys) - 1}, got {keys}")
            names = [names[k] if k in names else names[str(k)] for k in keys]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise fail(data_yaml, "names", "missing or not a non-empty list of class names")
        return [n.strip() for n in names]
    for name in CLASS_FILES:
        path = root / name
        if path.is_file():
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            if not names:
                raise fail(path, "", "the class list is empty")
            return names
    return None


def read(path: str | os.PathLike[str], *, taxonomy: Taxonomy | None = None) -> DetectionDataset:
    """Read a YOLO dataset directory (see the module docstring).

    Args:
        path: the dataset root (with ``images/`` and ``labels/``).
        taxonomy: resolve class names through it (slug, name or MID); default: the names become the taxonomy.

    Raises:
        DatasetError: no class list, a label line that is not ``class cx cy w h`` numbers, a negative box size, or
            an unreadable image; the message names the file and line.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: YOLO dataset directory not found")
    names = read_class_names(root)
    if names is None:
        raise DatasetError(f"{root}: no {DATA_YAML}, {' or '.join(CLASS_FILES)}; a YOLO dataset needs its class names")
    classes = ClassMap(taxonomy, declared=names if taxonomy is None else ())
    slugs = [classes.slug(n, root / DATA_YAML, f"names[{i}]") for i, n in enumerate(names)]
    images_dir, labels_dir = root / IMAGES_DIR, root / LABELS_DIR
    files = list_images(images_dir)
    if not files:
        raise DatasetError(f"{images_dir}: no image files; a YOLO dataset keeps its images in {IMAGES_DIR}/")

    records: list[ImageRecord] = []
    boxes: dict[int, list[Box]] = {}
    skipped: list[Skipped] = []
    used_labels: set[Path] = set()
    for image_id, file_name in enumerate(files, start=1):
        size = image_size(images_dir / file_name)
        records.append(ImageRecord(image_id, file_name, *size))
        label_path = labels_dir / Path(file_name).with_suffix(".txt")
        if label_path.is_file():
            used_labels.add(label_path)
            boxes[image_id] = _read_label_file(label_path, slugs, size, skipped)
        else:
            boxes[image_id] = []
            skipped.append(Skipped("image without labels", f"{IMAGES_DIR}/{file_name}",
                                   f"no {LABELS_DIR}/{Path(file_name).with_suffix('.txt').as_posix()}; kept with no boxes"))
    if labels_dir.is_dir():
        for label_path in sorted(labels_dir.rglob("*.txt")):
            if label_path not in used_labels:
                rel = label_path.relative_to(root).as_posix()
                skipped.append(Skipped("orphan label file", rel, f"no image {IMAGES_DIR}/"
                                       f"{label_path.relative_to(labels_dir).with_suffix('').as_posix()}.* for it; skipped"))
    return build_dataset(images_dir, classes.finish(str(root)), records, boxes, skipped)


def _read_label_file(path: Path, slugs: list[str], size: tuple[int, int], skipped: list[Skipped]) -> list[Box]:
    out = []
    w, h = size
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"line {lineno}"
        if len(parts) != 5:
            raise fail(path, where, f"expected 5 values 'class cx cy w h', got {len(parts)}: {line.strip()!r}")
        try:
            cls = int(parts[0])
            cx, cy, bw, bh = (float(v) for v in parts[1:])
        except ValueError as exc:
            raise fail(path, where, f"not numbers: {line.strip()!r}") from exc
        if not 0 <= cls < len(slugs):
            skipped.append(Skipped("unknown class", f"{path}: {where}",
                                   f"class {cls} is out of range (the class list has {len(slugs)} names); box dropped"))
            continue
        if bw < 0 or bh < 0:
            raise fail(path, where, f"negative width or height: {line.strip()!r}")
        xyxy = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
        fitted = fit_box(xyxy, size, path, where, skipped)
        if fitted is not None:
            out.append(Box(fitted, slugs[cls]))
    return out


def write(dataset: DetectionDataset, path: str | os.PathLike[str], *, copy_images: bool = True) -> Path:
    """Write ``dataset`` as a YOLO directory: ``data.yaml``, ``labels/*.txt`` and (by default) ``images/``."""
    root = Path(path)
    labels_dir = root / LABELS_DIR
    labels_dir.mkdir(parents=True, exist_ok=True)
    doc = {"path": ".", "train": IMAGES_DIR, "val": IMAGES_DIR, "nc": len(dataset.taxonomy), "names": [a.name for a in dataset.taxonomy]}
    (root / DATA_YAML).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    for im, dets in dataset:
        lines = []
        for (x1, y1, x2, y2), cls in box_rows(dets):
            cx, cy = (x1 + x2) / 2 / im.width, (y1 + y2) / 2 / im.height
            bw, bh = (x2 - x1) / im.width, (y2 - y1) / im.height
            lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
        label_path = labels_dir / Path(im.file_name).with_suffix(".txt")
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text("".join(f"{line}\n" for line in lines))
    if copy_images:
        place_images(dataset, root / IMAGES_DIR)
    return root
