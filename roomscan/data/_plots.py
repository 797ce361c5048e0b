"""The data report's pictures: matplotlib charts (Agg, no pyplot state) and per-class sample strips, as bytes.

matplotlib is imported inside each function so that importing the data package stays light.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "aspect_ratio_histogram",
    "box_size_bars",
    "boxes_per_image_histogram",
    "class_count_bars",
    "image_size_scatter",
    "sample_strip",
    "thumbnail_with_boxes",
]

THUMB_PX = 160
_BAR_COLOURS = ("#d95f02", "#7570b3", "#1b9e77")  # small, medium, large


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - a dependency of the train extra
        raise ImportError("the data report needs matplotlib: pip install 'roomscan[train]'") from exc
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _bar_height(n: int) -> float:
    return min(12.0, 1.2 + 0.28 * max(n, 1))


def class_count_bars(names: Sequence[str], counts: Sequence[int]) -> bytes:
    """Horizontal bars of boxes per class, largest on top; a log axis when the counts span over 50x."""
    order = np.argsort(counts, kind="stable")
    fig, ax = _figure(7.5, _bar_height(len(names)))
    values = [counts[i] for i in order]
    ax.barh([names[i] for i in order], values, color="#4c72b0")
    positive = [v for v in values if v > 0]
    if positive and max(positive) > 50 * min(positive):
        ax.set_xscale("log")
    ax.set_xlabel("boxes")
    ax.set_title("Boxes per class")
    return _png(fig)


def boxes_per_image_histogram(boxes_per_image: Sequence[int]) -> bytes:
    """How many images carry 0, 1, 2... boxes."""
    fig, ax = _figure(7.5, 3.2)
    top = max(boxes_per_image, default=0)
    ax.hist(boxes_per_image, bins=np.arange(-0.5, top + 1.5, 1), color="#4c72b0", edgecolor="white")
    ax.set_xlabel("boxes in the image")
    ax.set_ylabel("images")
    ax.set_title("Boxes per image")
    return _png(fig)


def box_size_bars(
    names: Sequence[str], small: Sequence[int], medium: Sequence[int], large: Sequence[int]
) -> bytes:
    """Stacked bars per class of COCO small / medium / large boxes."""
    fig, ax = _figure(7.5, _bar_height(len(names)))
    left = np.zeros(len(names))
    for label, values, colour in zip(
        ("small < 32²", "medium", "large > 96²"), (small, medium, large), _BAR_COLOURS
    ):
        ax.barh(list(names), values, left=left, label=label, color=colour)
        left += np.asarray(values, dtype=float)
    ax.invert_yaxis()
    fig.legend(loc="outside right upper", fontsize="small")
    ax.set_xlabel("boxes")
    ax.set_title("Box sizes per class (COCO area ranges, px²)")
    return _png(fig)


def aspect_ratio_histogram(ratios: Sequence[float] | np.ndarray) -> bytes:
    """Box width / height on a log2 axis (1 = square, 2 = twice as wide, 0.5 = twice as tall)."""
    fig, ax = _figure(7.5, 3.2)
    # Quarter-octave bins; ratios beyond 1/16..16 land in the end bins.
    values = np.clip(np.log2(np.asarray(ratios, dtype=float)), -4.4, 4.4) if len(ratios) else np.zeros(0)
    ax.hist(values, bins=np.linspace(-4.5, 4.5, 37), color="#4c72b0", edgecolor="white")
    ticks = np.arange(-4, 5)
    ax.set_xticks(ticks, [f"{2.0**t:g}" for t in ticks])
    ax.set_xlim(-4.5, 4.5)
    ax.set_xlabel("box width / height (log scale)")
    ax.set_ylabel("boxes")
    ax.set_title("Box aspect ratios")
    return _png(fig)


def image_size_scatter(sizes: Sequence[tuple[int, int, int]]) -> bytes:
    """Decoded image sizes, one dot per distinct (width, height), dot area growing with its count."""
    fig, ax = _figure(6.0, 4.5)
    if sizes:
        w, h, n = (np.asarray(col, dtype=float) for col in zip(*sizes))
        ax.scatter(
            w,
            h,
            s=20 + 180 * np.sqrt(n / n.max()),
            alpha=0.6,
            color="#4c72b0",
            edgecolors="black",
            linewidths=0.4,
        )
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("Image sizes")
    return _png(fig)


def thumbnail_with_boxes(image: Image.Image, xyxy: np.ndarray, size: int = THUMB_PX) -> Image.Image:
    """A copy of ``image`` shrunk to fit ``size`` px with the boxes ``[n, 4]`` (in its pixels) drawn on it."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    sx, sy = thumb.width / image.width, thumb.height / image.height
    draw = ImageDraw.Draw(thumb)
    for x1, y1, x2, y2 in np.asarray(xyxy, dtype=float).reshape(-1, 4):
        box = [x1 * sx, y1 * sy, max(x1, x2) * sx, max(y1, y2) * sy]
        draw.rectangle(box, outline=(255, 255, 255), width=3)
        draw.rectangle(box, outline=(230, 20, 120), width=1)
    return thumb


def sample_strip(thumbs: Sequence[Image.Image], size: int = THUMB_PX, gap: int = 4) -> bytes:
    """Thumbnails side by side on a light background, as JPEG bytes."""
    strip = Image.new("RGB", (max(1, len(thumbs)) * (size + gap) - gap, size), (245, 245, 245))
    for k, thumb in enumerate(thumbs):
        strip.paste(thumb, (k * (size + gap) + (size - thumb.width) // 2, (size - thumb.height) // 2))
    buf = io.BytesIO()
    strip.save(buf, "JPEG", quality=85)
    return buf.getvalue()
