"""``Detections``: the one type every backend produces and every consumer reads.

We build on supervision's ``sv.Detections`` rather than writing a twin: numpy arrays ``xyxy`` (pixels, shape
``[n, 4]``), ``confidence`` ``[n]`` and ``class_id`` ``[n]``, a per-detection ``data`` dict of arrays, a ``metadata``
dict, shape checks, boolean-mask indexing (``dets[dets.confidence > 0.5]``), class-aware NMS (``with_nms``) and its
annotators. roomscan's conventions on top of it:

* ``data["class_name"]`` holds the amenity slug of each detection (supervision's own key, read by its
  ``LabelAnnotator``); ``labels_of(dets)`` returns it.
* ``data["class_probs"]``, set by every detector backend: float32 ``[n, C]`` with ``C = len(detector.taxonomy)``,
  each box's probability for every amenity, in taxonomy order (0 for amenities the model does not know). A box's
  ``confidence`` equals ``class_probs[i, class_id[i]]``. How a row reads depends on ``detector.probability_kind``:
  for ``"softmax"`` models (the original DETR) the classes exclude each other and a row sums to at most 1, the rest
  being "no object"; for ``"sigmoid"`` models (OWLv2, RT-DETR, D-FINE, Deformable DETR...) each entry is an
  independent probability in ``[0, 1]``. Indexing and ``with_nms`` keep the rows aligned with their boxes.
* ``metadata`` carries ``image_size`` ``(width, height)`` and ``model`` (the backend's model key) when known.

Example:
    >>> import numpy as np
    >>> dets = make_detections([[0, 0, 10, 10]], [0.9], [3], ["oven"])
    >>> labels_of(dets[dets.confidence > 0.5])
    ['oven']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from supervision import Detections

LABEL_KEY = "class_name"
PROBS_KEY = "class_probs"

__all__ = [
    "LABEL_KEY",
    "PROBS_KEY",
    "Detections",
    "detections_from_records",
    "detections_to_records",
    "labels_of",
    "make_detections",
]


def make_detections(
    xyxy: Sequence[Sequence[float]] | np.ndarray,
    confidence: Sequence[float] | np.ndarray,
    class_id: Sequence[int] | np.ndarray,
    labels: Sequence[str] | np.ndarray,
    *,
    metadata: Mapping[str, Any] | None = None,
    **extras: Sequence[Any] | np.ndarray,
) -> Detections:
    """Build ``Detections`` from plain sequences, checking that every field has one entry per box.

    Args:
        xyxy: boxes ``[n, 4]`` as ``x1, y1, x2, y2`` in pixels.
        confidence: scores ``[n]`` in ``[0, 1]``.
        class_id: integer class ids ``[n]`` (index into the taxonomy the backend used).
        labels: amenity slugs ``[n]``.
        metadata: free-form metadata for the whole set (``image_size``, ``model``...).
        **extras: further per-detection arrays, stored in ``data``.
    """
    boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    data: dict[str, Any] = {LABEL_KEY: np.asarray(list(labels), dtype=object).astype(str).reshape(n)}
    for key, value in extras.items():
        arr = np.asarray(value)
        if len(arr) != n:
            raise ValueError(f"extra field {key!r} has {len(arr)} entries for {n} detections")
        data[key] = arr
    return Detections(
        xyxy=boxes,
        confidence=np.asarray(confidence, dtype=np.float32).reshape(n),
        class_id=np.asarray(class_id, dtype=np.int64).reshape(n),
        data=data,
        metadata=dict(metadata or {}),
    )


def labels_of(dets: Detections) -> list[str]:
    """The amenity slug of each detection, in order (empty list for no detections)."""
    if len(dets) == 0:
        return []
    names = dets.data.get(LABEL_KEY)
    if names is None:
        raise ValueError("these detections carry no labels (data['class_name'] is missing)")
    return [str(n) for n in names]


def detections_to_records(dets: Detections, ndigits: int = 2) -> list[dict[str, Any]]:
    """JSON-ready records ``{label, score, box: [x1, y1, x2, y2], class_id}``, highest score first."""
    confidence = dets.confidence if dets.confidence is not None else np.ones(len(dets), dtype=np.float32)
    class_ids = dets.class_id if dets.class_id is not None else np.full(len(dets), -1)
    order = np.argsort(-confidence, kind="stable")
    labels = labels_of(dets)
    return [
        {
            "label": labels[i],
            "score": round(float(confidence[i]), 4),
            "box": [round(float(v), ndigits) for v in dets.xyxy[i]],
            "class_id": int(class_ids[i]),
        }
        for i in order
    ]


def detections_from_records(records: Iterable[Mapping[str, Any]], **metadata: Any) -> Detections:
    """Inverse of :func:`detections_to_records` (class ids default to -1 when absent)."""
    rows = list(records)
    if not rows:
        return make_detections(np.zeros((0, 4)), [], [], [], metadata=metadata)
    return make_detections(
        [r["box"] for r in rows],
        [r["score"] for r in rows],
        [r.get("class_id", -1) for r in rows],
        [r["label"] for r in rows],
        metadata=metadata,
    )
