"""Helpers the format modules share: errors that name the place, image sizes from headers, class resolution,
building a dataset from plain rows, and placing image files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord, Skipped
from roomscan.detection.core import Detections, make_detections
from roomscan.detection.image import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES
from roomscan.errors import TaxonomyError
from roomscan.taxonomy import Amenity, Taxonomy, slugify


def fail(path: Path | str, where: str, problem: str) -> DatasetError:
    """A :class:`DatasetError` reading ``"<file>: <record or line>: <problem>"``."""
    return DatasetError(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


def image_size(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of an image as it is shown (EXIF rotation applied), read from its header only.

    Raises:
        DatasetError: missing file, not an image, or more pixels than ``max_pixels``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(274, 1) if hasattr(im, "getexif") else 1
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from exc
    if width * height > max_pixels:
        raise DatasetError(f"{path}: {width}x{height} is over the limit of {max_pixels / 1e6:.0f} megapixels")
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def find_image(images_dir: Path, stem: str) -> Path | None:
    """The image file ``images_dir/stem.<any image suffix>``, if one exists."""
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = images_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def list_images(images_dir: Path) -> list[str]:
    """Image files under ``images_dir`` (recursive) as sorted POSIX paths relative to it."""
    if not images_dir.is_dir():
        return []
    return sorted(
        p.relative_to(images_dir).as_posix()
        for p in images_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def label_name_to_amenity(name: str, mid: str | None = None) -> Amenity:
    """The amenity for a user's label string: ``name`` is the label exactly as written (writers emit it), the slug
    is roomscan's own identifier beside it, and the prompt reads the label as words (``closed_door`` -> "closed door")."""
    words = " ".join(name.replace("_", " ").split()).lower()
    return Amenity(slug=slugify(name), name=name, mid=mid, prompts=(f"a photo of a {words}",))


@dataclass
class ClassMap:
    """Label -> class id, through a fixed taxonomy (unknown labels are errors) or one built from the labels seen.

    Without a taxonomy, ``declared`` names (a classes file) fix the order; otherwise labels met while reading are
    sorted alphabetically at the end, so the class ids do not depend on file order.
    """

    taxonomy: Taxonomy | None = None
    declared: Sequence[str] = ()
    _seen: dict[str, Amenity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.declared:
            self._seen.setdefault(slugify(name), label_name_to_amenity(name))

    def slug(self, label: str, path: Path | str, where: str) -> str:
        """The amenity slug for ``label`` (a slug, display name or MID)."""
        if self.taxonomy is not None:
            try:
                return self.taxonomy.resolve(label).slug
            except TaxonomyError as exc:
                raise fail(path, where, f"label {label!r} is not in the taxonomy ({exc})") from exc
        slug = slugify(label)
        if not slug:
            raise fail(path, where, f"label {label!r} is empty")
        if slug not in self._seen:
            if self.declared:
                raise fail(path, where, f"label {label!r} is not in the class list ({', '.join(self.declared)})")
            self._seen[slug] = label_name_to_amenity(label)
        return slug

    def finish(self, source: str) -> Taxonomy:
        if self.taxonomy is not None:
            return self.taxonomy
        amenities = list(self._seen.values()) if self.declared else sorted(self._seen.values(), key=lambda a: a.slug)
        if not amenities:
            raise DatasetError(f"{source}: no classes found (no labels and no class list)")
        try:
            return Taxonomy(tuple(amenities), source=source)
        except TaxonomyError as exc:
            raise DatasetError(f"{source}: {exc}") from exc


@dataclass
class Box:
    """One ground-truth box while a reader collects them (pixels, ``x1, y1, x2, y2``)."""

    xyxy: tuple[float, float, float, float]
    slug: str
    iscrowd: int = 0
    difficult: int = 0


def fit_box(
    xyxy: Sequence[float], size: tuple[int, int], path: Path | str, where: str, skipped: list[Skipped]
) -> tuple[float, float, float, float] | None:
    """The box cut to its image, or ``None`` when none of it lies inside; either change is noted in ``skipped``.

    A pixel of slack is allowed without a note (exporters round). Raises on boxes no tool means: a non-finite
    coordinate or ``x2 < x1`` / ``y2 < y1``.
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    if not all(np.isfinite(v) for v in (x1, y1, x2, y2)):
        raise fail(path, where, f"box {list(xyxy)} has a non-finite coordinate")
    if x2 < x1 or y2 < y1:
        raise fail(path, where, f"box {list(xyxy)} has negative width or height")
    w, h = size
    if x1 >= -1 and y1 >= -1 and x2 <= w + 1 and y2 <= h + 1:
        return (x1, y1, x2, y2)
    shown = [round(v, 2) for v in (x1, y1, x2, y2)]
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    place = f"{path}: {where}" if where else str(path)
    if cx2 <= cx1 or cy2 <= cy1:
        skipped.append(Skipped("box dropped", place, f"box {shown} lies wholly outside the {w}x{h} image"))
        return None
    skipped.append(Skipped("box clipped", place, f"box {shown} reached outside the {w}x{h} image; cut to it"))
    return (cx1, cy1, cx2, cy2)


def build_dataset(
    images_dir: Path,
    taxonomy: Taxonomy,
    images: list[ImageRecord],
    boxes: dict[int, list[Box]],
    skipped: list[Skipped] | None = None,
) -> DetectionDataset:
    """A dataset from image records and their boxes (``iscrowd``/``difficult`` kept in ``Detections.data``)."""
    annotations = {}
    for im in images:
        items = boxes.get(im.id, [])
        annotations[im.id] = make_detections(
            np.array([b.xyxy for b in items], dtype=np.float32).reshape(-1, 4),
            np.ones(len(items)),
            [taxonomy.index(b.slug) for b in items],
            [b.slug for b in items],
            iscrowd=np.array([b.iscrowd for b in items], dtype=np.int64),
            difficult=np.array([b.difficult for b in items], dtype=np.int64),
        )
    return DetectionDataset(images_dir, taxonomy, images, annotations, list(skipped or []))


def box_flags(dets: object, key: str) -> list[int]:
    """Per-box integer flags such as ``iscrowd`` (zeros when the dataset does not carry them)."""
    data = getattr(dets, "data", {})
    n = len(dets)  # type: ignore[arg-type]
    values = data.get(key) if isinstance(data, dict) else None
    return [int(v) for v in values] if values is not None and len(values) == n else [0] * n


def box_rows(dets: Detections) -> list[tuple[list[float], int]]:
    """``[(xyxy, class_id), ...]`` of one image's ground truth, as plain Python numbers."""
    classes = dets.class_id.tolist() if dets.class_id is not None else [0] * len(dets)
    return [(box, int(cls)) for box, cls in zip(dets.xyxy.tolist(), classes)]


def place_images(
    dataset: DetectionDataset,
    dest: Path,
    *,
    on_image: Callable[[], None] | None = None,
    images: Iterable[ImageRecord] | None = None,
) -> list[str]:
    """Hard-link (or copy) every image of ``dataset`` to ``dest/<file_name>``; returns the missing sources."""
    missing = []
    for im in images if images is not None else dataset.images:
        src, dst = dataset.path(im), dest / im.file_name
        if src.is_file() and not (dst.exists() and dst.resolve() == src.resolve()):
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                dst.unlink()
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        elif not src.is_file():
            missing.append(str(src))
        if on_image is not None:
            on_image()
    return missing
