"""Draw detections on a photo: a box and a "label score" caption per detection, one colour per amenity.

Built on supervision's ``BoxAnnotator`` and ``LabelAnnotator`` (which read our ``Detections`` as they are), with
line width and text size scaled to the photo so captions stay legible on a 4000 px photo and a thumbnail alike.

Example:
    >>> from roomscan.detection.draw import annotate
    >>> annotate(photo.image, dets).save("annotated.jpg")  # doctest: +SKIP
"""

from __future__ import annotations

import supervision as sv
from PIL import Image

from roomscan.detection.core import Detections, labels_of
from roomscan.taxonomy import Taxonomy

__all__ = ["annotate", "captions"]


def captions(dets: Detections, taxonomy: Taxonomy | None = None) -> list[str]:
    """``"label 0.87"`` per detection; the label is the amenity's display name when ``taxonomy`` knows it."""
    names = labels_of(dets)
    if taxonomy is not None:
        names = [taxonomy.amenities[taxonomy.index(n)].name if n in taxonomy else n for n in names]
    scores = dets.confidence if dets.confidence is not None else [None] * len(dets)
    return [name if score is None else f"{name} {float(score):.2f}" for name, score in zip(names, scores)]


def annotate(image: Image.Image, dets: Detections, taxonomy: Taxonomy | None = None) -> Image.Image:
    """A copy of ``image`` with each detection's box and caption drawn on it (the input is left untouched).

    Args:
        image: the photo the detections were made on (boxes in its pixels).
        dets: detections with ``data["class_name"]`` labels; the colour follows ``class_id``.
        taxonomy: when given, captions use amenity display names ("Gas stove") instead of slugs.
    """
    canvas = image.convert("RGB") if image.mode != "RGB" else image.copy()
    if len(dets) == 0:
        return canvas
    size = canvas.size
    thickness = sv.calculate_optimal_line_thickness(size)
    # supervision's optimum shrinks to unreadable on thumbnails; keep captions at least ~10 px tall.
    text_scale = max(0.35, sv.calculate_optimal_text_scale(size))
    canvas = sv.BoxAnnotator(thickness=thickness).annotate(canvas, dets)
    label_annotator = sv.LabelAnnotator(
        text_scale=text_scale,
        text_thickness=max(1, thickness // 2),
        text_padding=max(2, thickness * 2),
        smart_position=True,  # keep captions of boxes at the photo's edge inside the frame
    )
    return label_annotator.annotate(canvas, dets, labels=captions(dets, taxonomy))
