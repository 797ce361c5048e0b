"""A synthetic detection dataset: coloured shapes on textured backgrounds, with exact boxes.

Small, fast to make, and learnable by a tiny detector in a few epochs, so tests and benchmarks can train and
evaluate for real without downloading anything.

With ``rare_fraction > 0`` a fourth class joins: a small, low-contrast ``diamond`` (drawn in a colour close to
the background under it) in about that fraction of the images, the rare and hard class an active-learning
strategy should find sooner than random sampling does.

Example:
    >>> ds = make_shapes_dataset("/tmp/shapes", n_images=32, seed=0)   # doctest: +SKIP
    >>> ds.taxonomy.slugs
    ['circle', 'square', 'triangle']
    >>> make_shapes_dataset("/tmp/rare", n_images=200, rare_fraction=0.05).taxonomy.slugs  # doctest: +SKIP
    ['circle', 'square', 'triangle', 'diamond']
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from roomscan.data.dataset import IMAGES_DIR, DetectionDataset, ImageRecord
from roomscan.detection.core import make_detections
from roomscan.taxonomy import Amenity, Taxonomy

SHAPES = ("circle", "square", "triangle")
RARE_SHAPE = "diamond"
# One colour family per class, so colour and shape both carry the label.
_COLOURS = {"circle": (220, 40, 40), "square": (40, 90, 220), "triangle": (30, 170, 60)}

__all__ = ["RARE_SHAPE", "SHAPES", "make_shapes_dataset", "shapes_taxonomy"]


def shapes_taxonomy(*, rare: bool = False) -> Taxonomy:
    """The shapes' taxonomy; ``rare`` adds :data:`RARE_SHAPE` as the last class."""
    slugs = SHAPES + ((RARE_SHAPE,) if rare else ())
    return Taxonomy(
        tuple(Amenity(slug=s, name=s.capitalize(), prompts=(f"a {s}",), threshold=0.3) for s in slugs),
        source="synthetic-shapes",
    )


def _background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    w, h = size
    base = rng.integers(90, 200, size=3)
    noise = rng.normal(0, 18, (h, w, 3))
    # Low-frequency texture: a blurred random field, like a floor or wall.
    field = Image.fromarray(rng.integers(0, 255, (h // 8 + 1, w // 8 + 1), dtype=np.uint8)).resize((w, h), Image.BILINEAR)
    tex = (np.asarray(field, dtype=np.float64)[..., None] - 128) * 0.35
    arr = np.clip(base + noise + tex, 0, 255).astype(np.uint8)
    return Image.fromarray(arr).filter(ImageFilter.GaussianBlur(0.6))


def make_shapes_dataset(
    root: str | os.PathLike[str],
    n_images: int = 64,
    *,
    image_size: tuple[int, int] = (128, 128),
    max_objects: int = 3,
    min_size: int = 18,
    seed: int = 0,
    fmt: str = "JPEG",
    rare_fraction: float = 0.0,
    rare_contrast: int = 24,
) -> DetectionDataset:
    """Generate ``n_images`` images with 1..``max_objects`` non-overlapping shapes each; save and return it.

    The dataset is written in roomscan's format under ``root`` (``images/``, ``annotations.json``,
    ``taxonomy.yaml``).

    Args:
        rare_fraction: in ``[0, 1]``; when above 0, each image gets, with this probability, one small
            :data:`RARE_SHAPE` (side ``min_size // 2`` to ``min_size``) on a free spot, and the taxonomy gains that
            class. 0 (the default) gives exactly the images and taxonomy of earlier versions for the same seed.
        rare_contrast: how far (per RGB channel, 0-255) the rare shape's colour lies from the mean of the
            background it covers: small is hard to see.
    """
    if not 0.0 <= rare_fraction <= 1.0:
        raise ValueError(f"rare_fraction must be in [0, 1], got {rare_fraction}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    images_dir = root / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    taxonomy = shapes_taxonomy(rare=rare_fraction > 0)
    w, h = image_size
    records, annotations = [], {}
    ext = {"JPEG": "jpg", "PNG": "png"}[fmt]
    for i in range(n_images):
        image = _background(rng, image_size)
        draw = ImageDraw.Draw(image)
        boxes: list[list[float]] = []
        classes: list[int] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            for _attempt in range(20):
                side = int(rng.integers(min_size, max(min_size + 1, min(w, h) // 2)))
                x1, y1 = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
                box = [x1, y1, x1 + side, y1 + side]
                if all(_iou(box, b) == 0 for b in boxes):
                    break
            else:
                continue
            cls = int(rng.integers(0, len(SHAPES)))
            colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in _COLOURS[SHAPES[cls]])
            x1, y1, x2, y2 = box
            if SHAPES[cls] == "circle":
                draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=colour)
            elif SHAPES[cls] == "square":
                draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=colour)
            else:
                draw.polygon([((x1 + x2) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=colour)
            boxes.append([float(v) for v in box])
            classes.append(cls)
        if rare_fraction > 0 and rng.random() < rare_fraction:  # no draws at 0: older datasets stay the same
            rare_box = _draw_rare(image, draw, rng, boxes, min_size, rare_contrast)
            if rare_box is not None:
                boxes.append(rare_box)
                classes.append(len(SHAPES))
        name = f"{i:05d}.{ext}"
        image.save(images_dir / name, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
        records.append(ImageRecord(id=i + 1, file_name=name, width=w, height=h))
        annotations[i + 1] = make_detections(
            np.array(boxes, dtype=np.float32).reshape(-1, 4),
            np.ones(len(boxes)),
            classes,
            [taxonomy.slugs[c] for c in classes],
        )
    dataset = DetectionDataset(images_dir, taxonomy, records, annotations)
    dataset.save(root, copy_images=False)
    return dataset


def _draw_rare(image: Image.Image, draw: ImageDraw.ImageDraw, rng: np.random.Generator, boxes: list[list[float]],
               min_size: int, contrast: int) -> list[float] | None:
    """A small diamond in a colour ``contrast`` away from the background it covers, on a free spot, or None."""
    w, h = image.size
    for _attempt in range(20):
        side = int(rng.integers(max(4, min_size // 2), max(min_size, 5) + 1))
        x1, y1 = int(rng.integers(0, max(1, w - side))), int(rng.integers(0, max(1, h - side)))
        box = [float(x1), float(y1), float(x1 + side), float(y1 + side)]
        if all(_iou(box, b) == 0 for b in boxes):
            break
    else:
        return None
    under = np.asarray(image.crop((x1, y1, x1 + side, y1 + side)), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    sign = np.where(under > 127, -1.0, 1.0)  # darker on light ground, lighter on dark
    colour = tuple(int(v) for v in np.clip(under + sign * contrast, 0, 255))
    x2, y2 = x1 + side - 1, y1 + side - 1
    draw.polygon([((x1 + x2) / 2, y1), (x2, (y1 + y2) / 2), ((x1 + x2) / 2, y2), (x1, (y1 + y2) / 2)], fill=colour)
    return box


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0
