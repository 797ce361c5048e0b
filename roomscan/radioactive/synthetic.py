"""Generated labelled images to train a marking network on, with no download: one shape per class on a texture.

Each class is a shape (circle, square, triangle, ...) drawn at a random place, size and colour over a noisy,
textured background, so a small CNN must learn shape, not colour or position. Marketplaces with real photos should
train on those (or plug in a pretrained backbone); these make the method runnable and testable anywhere.

Example:
    >>> data = make_pattern_images(4, n_classes=3, size=48, seed=0)
    >>> len(data.images), data.names
    (12, ('circle', 'square', 'triangle'))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from roomscan.radioactive.errors import RadioactiveError

__all__ = ["PATTERNS", "PatternImages", "make_pattern_images"]

_DISTRACTOR_RADIUS = (0.15, 0.3)  # fractions of the side; the image's own shape has 0.2-0.35
PATTERNS = ("circle", "square", "triangle", "cross", "ring", "stripes", "diamond", "dots")


@dataclass(frozen=True)
class PatternImages:
    """Images, their class index, and the class names (``names[labels[i]]`` is image ``i``'s class)."""

    images: tuple[Image.Image, ...]
    labels: tuple[int, ...]
    names: tuple[str, ...]


def make_pattern_images(
    n_per_class: int, *, n_classes: int = 4, size: int = 64, seed: int = 0, distractors: int = 0
) -> PatternImages:
    """``n_per_class`` RGB images of ``size x size`` for each of the first ``n_classes`` of :data:`PATTERNS`.

    ``distractors`` adds that many shapes of *other* classes to every image, a little smaller on average than the
    image's own shape (radius 15-30% of the side against 20-35%) and drawn over it: the label is then only partly
    readable from the pixels, as with real photos of several things, and a classifier cannot reach 100%. Marks are
    learnt where they help a model with images it finds ambiguous, so this is the setting that tests them.

    Deterministic for a seed; classes are interleaved (image ``i`` has class ``i % n_classes``).
    """
    if not 1 <= n_classes <= len(PATTERNS):
        raise RadioactiveError(f"n_classes must be 1..{len(PATTERNS)} (got {n_classes})")
    if not isinstance(distractors, int) or not 0 <= distractors < n_classes:
        raise RadioactiveError(
            f"distractors must be 0..{n_classes - 1} (other classes per image), got {distractors!r}"
        )
    if n_per_class < 1 or size < 16:
        raise RadioactiveError("need at least one image per class and a size of at least 16 pixels")
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n_per_class):
        for k in range(n_classes):
            others = [PATTERNS[j] for j in range(n_classes) if j != k]
            picked = [others[j] for j in rng.permutation(len(others))[:distractors]] if distractors else []
            images.append(_draw(PATTERNS[k], size, rng, picked))
            labels.append(k)
    return PatternImages(tuple(images), tuple(labels), PATTERNS[:n_classes])


def _draw(pattern: str, size: int, rng: np.random.Generator, distractors: list[str]) -> Image.Image:
    base = rng.integers(60, 200, size=3)
    field = rng.integers(0, 255, (size // 8 + 1, size // 8 + 1), dtype=np.uint8)
    tex = np.asarray(Image.fromarray(field).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)
    arr = base + (tex[..., None] - 128) * 0.3 + rng.normal(0, 10, (size, size, 3))
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    _shape(draw, pattern, size, rng, (0.2, 0.35))
    for other in distractors:
        _shape(draw, other, size, rng, _DISTRACTOR_RADIUS)
    return image.filter(ImageFilter.GaussianBlur(0.5))


def _shape(draw: ImageDraw.ImageDraw, pattern: str, size: int, rng: np.random.Generator,
           radius: tuple[float, float]) -> None:
    r = rng.uniform(*radius) * size
    cx, cy = rng.uniform(r, size - r, 2)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    line = max(2, int(r / 4))
    box = (cx - r, cy - r, cx + r, cy + r)
    if pattern == "circle":
        draw.ellipse(box, fill=colour)
    elif pattern == "square":
        draw.rectangle(box, fill=colour)
    elif pattern == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif pattern == "cross":
        draw.rectangle((cx - r, cy - line, cx + r, cy + line), fill=colour)
        draw.rectangle((cx - line, cy - r, cx + line, cy + r), fill=colour)
    elif pattern == "ring":
        draw.ellipse(box, outline=colour, width=line)
    elif pattern == "stripes":
        for i in range(-2, 3):
            x = cx + i * r / 2.5
            draw.line((x, cy - r, x, cy + r), fill=colour, width=max(1, line // 2))
    elif pattern == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    else:  # dots
        for dx in (-r / 2, r / 2):
            for dy in (-r / 2, r / 2):
                draw.ellipse(
                    (cx + dx - r / 4, cy + dy - r / 4, cx + dx + r / 4, cy + dy + r / 4), fill=colour
                )
