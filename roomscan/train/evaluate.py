"""Detection quality by COCO's rules (pycocotools ``COCOeval``), per-class AP, PR curves and a confusion matrix.

:func:`evaluate_predictions` scores ``Detections`` against a dataset's ground truth; :func:`evaluate_detector`
runs any :class:`~roomscan.backends.Detector` over a dataset first. AP is COCO's AP@[.5:.95] over 100 detections
per image, the figure Airbnb reported for its 2020 amenity detector (AP 43.3, AP50 62.4 on 30 Open Images classes).

Example:
    >>> report, predictions = evaluate_detector(get_detector("runs/r18/model"), DetectionDataset.load("data/val"))  # doctest: +SKIP
    >>> round(report.ap50, 3), report.per_class[0].slug  # doctest: +SKIP
    (0.624, 'bathtub')
    >>> write_report(report, "runs/r18/eval", dataset, predictions)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.data.dataset import DetectionDataset
from roomscan.detection.core import LABEL_KEY, Detections

__all__ = [
    "ClassAP",
    "EvalReport",
    "confusion_matrix",
    "evaluate_detector",
    "evaluate_predictions",
    "predictions_to_coco",
    "write_report",
]


@dataclass(frozen=True)
class ClassAP:
    """AP of one class; ``None`` where the class has no ground truth in the dataset."""

    slug: str
    name: str
    ap: float | None
    ap50: float | None
    n_gt: int


@dataclass(frozen=True)
class EvalReport:
    """COCO metrics of one set of predictions (all in [0, 1]; -1 where COCO leaves a metric undefined).

    Attributes:
        ap: AP@[.5:.95]. ap50, ap75: AP at IoU 0.5 and 0.75. ap_small/medium/large: AP by box area
            (< 32², 32²-96², > 96² pixels). ar100: recall at 100 detections per image.
        per_class: one :class:`ClassAP` per taxonomy class, in class order.
        precision: COCOeval's precision array ``[10 IoUs, 101 recalls, K classes, 4 areas, 3 maxDets]``.
    """

    ap: float
    ap50: float
    ap75: float
    ap_small: float
    ap_medium: float
    ap_large: float
    ar100: float
    per_class: tuple[ClassAP, ...]
    n_images: int
    n_gt: int
    n_predictions: int
    precision: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("precision")
        return out


def predictions_to_coco(dataset: DetectionDataset, predictions: Mapping[int, Detections]) -> list[dict[str, Any]]:
    """COCO result records ``{image_id, category_id, bbox [x, y, w, h], score}`` (category id = class id + 1).

    A detection's class is read from its ``data["class_name"]`` slug when present (so a detector with another
    taxonomy can be scored; amenities the dataset lacks are dropped), else from ``class_id``.
    """
    unknown = set(predictions) - {im.id for im in dataset.images}
    if unknown:
        raise ValueError(f"predictions for image ids not in the dataset: {sorted(unknown)[:5]}")
    index = {slug: i for i, slug in enumerate(dataset.taxonomy.slugs)}
    records = []
    for image_id, dets in predictions.items():
        if len(dets) == 0:
            continue
        names = dets.data.get(LABEL_KEY)
        ids: Any = dets.class_id if dets.class_id is not None else np.full(len(dets), -1)
        classes = [index.get(str(n), -1) for n in names] if names is not None else [int(c) for c in ids]
        scores = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        for box, cls, score in zip(dets.xyxy, classes, scores):
            if not 0 <= cls < len(index):
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            records.append(
                {"image_id": int(image_id), "category_id": cls + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)}
            )
    return records


def _coco_gt(dataset: DetectionDataset) -> Any:
    from pycocotools.coco import COCO

    from roomscan.data.formats import coco

    gt = COCO()
    gt.dataset = coco.to_dict(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def evaluate_predictions(dataset: DetectionDataset, predictions: Mapping[int, Detections]) -> EvalReport:
    """Score ``predictions`` (image id -> ``Detections`` in image pixels) against ``dataset`` with ``COCOeval``.

    Images without an entry in ``predictions`` count as images with no detections.
    """
    from pycocotools.cocoeval import COCOeval

    gt = _coco_gt(dataset)
    records = predictions_to_coco(dataset, predictions)
    n_classes = len(dataset.taxonomy)
    n_gt_per_class = np.zeros(n_classes, dtype=int)
    for _, dets in dataset:
        if len(dets):
            np.add.at(n_gt_per_class, np.asarray(dets.class_id, dtype=int), 1)
    if not records:
        stats = np.where(dataset.num_boxes > 0, 0.0, -1.0) * np.ones(12)
        precision = None
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(records)
            coco_eval = COCOeval(gt, dt, "bbox")
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        stats = coco_eval.stats
        precision = coco_eval.eval["precision"]
    per_class = []
    for k, amenity in enumerate(dataset.taxonomy):
        ap = ap50 = None
        if n_gt_per_class[k]:
            ap, ap50 = 0.0, 0.0
            if precision is not None:
                p = precision[:, :, k, 0, -1]  # [iou, recall] at area=all, maxDets=100
                ap = float(p[p > -1].mean()) if (p > -1).any() else 0.0
                p50 = p[0]
                ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0
        per_class.append(ClassAP(amenity.slug, amenity.name, ap, ap50, int(n_gt_per_class[k])))
    s = [float(v) for v in stats]
    return EvalReport(
        ap=s[0], ap50=s[1], ap75=s[2], ap_small=s[3], ap_medium=s[4], ap_large=s[5], ar100=s[8],
        per_class=tuple(per_class), n_images=len(dataset), n_gt=dataset.num_boxes,
        n_predictions=len(records), precision=precision,
    )


def evaluate_detector(
    detector: Any, dataset: DetectionDataset, *, batch_size: int = 4, progress: Any = None
) -> tuple[EvalReport, dict[int, Detections]]:
    """Run ``detector`` on every image of ``dataset`` and score it; returns the report and the predictions.

    Args:
        detector: a :class:`~roomscan.backends.Detector` (use a low ``score_threshold`` for a fair AP).
        progress: optional callable ``progress(n_done)`` called after each batch.

    Raises:
        DatasetError: an image is missing or unreadable (named).
    """
    from roomscan.data.dataset import DatasetError
    from roomscan.detection.image import load_image
    from roomscan.errors import ImageError

    predictions: dict[int, Detections] = {}
    images = dataset.images
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pixels = []
        for record in chunk:
            try:
                pixels.append(load_image(dataset.path(record)).image)
            except ImageError as exc:
                raise DatasetError(f"image id {record.id} ({record.file_name}): {exc}") from exc
        for record, dets in zip(chunk, detector.predict(pixels, batch_size=batch_size)):
            predictions[record.id] = dets
        if progress is not None:
            progress(len(chunk))
    return evaluate_predictions(dataset, predictions), predictions


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # a [n, 4], b [m, 4] xyxy -> [n, m]
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def confusion_matrix(
    dataset: DetectionDataset,
    predictions: Mapping[int, Detections],
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.25,
) -> np.ndarray:
    """Counts ``[C + 1, C + 1]``: row = true class, column = predicted class; index ``C`` is background.

    Detections scoring at least ``score_threshold`` are matched to ground truth greedily, highest score first,
    by IoU >= ``iou_threshold`` whatever their class (so a bed called a sofa lands in ``[bed, sofa]``). Unmatched
    ground truth is a miss (``[true, background]``), an unmatched detection a false alarm (``[background, pred]``).
    """
    n = len(dataset.taxonomy)
    index = {slug: i for i, slug in enumerate(dataset.taxonomy.slugs)}
    matrix = np.zeros((n + 1, n + 1), dtype=np.int64)
    for record, gt in dataset:
        dets = predictions.get(record.id)
        gt_cls = np.asarray(gt.class_id, dtype=int) if len(gt) else np.zeros(0, int)
        if dets is None or len(dets) == 0:
            matrix[:, n] += np.bincount(gt_cls, minlength=n + 1)
            continue
        names = dets.data.get(LABEL_KEY)
        cls = np.array([index.get(str(s), -1) for s in names] if names is not None else dets.class_id, dtype=int)
        confidence: Any = dets.confidence if dets.confidence is not None else np.ones(len(dets))
        keep = (confidence >= score_threshold) & (cls >= 0)
        boxes, cls, scores = dets.xyxy[keep], cls[keep], confidence[keep]
        order = np.argsort(-scores, kind="stable")
        ious = _iou_matrix(boxes[order], gt.xyxy) if len(gt) else np.zeros((len(order), 0))
        taken = np.zeros(len(gt), dtype=bool)
        for row, k in enumerate(order):
            candidates = np.where(~taken & (ious[row] >= iou_threshold))[0]
            if len(candidates):
                j = candidates[np.argmax(ious[row, candidates])]
                taken[j] = True
                matrix[gt_cls[j], cls[k]] += 1
            else:
                matrix[n, cls[k]] += 1
        matrix[:, n] += np.bincount(gt_cls[~taken], minlength=n + 1)
    return matrix


def write_report(
    report: EvalReport,
    out: str | os.PathLike[str],
    dataset: DetectionDataset,
    predictions: Mapping[int, Detections] | None = None,
) -> dict[str, Path]:
    """Write ``report.json``, ``pr_curves.png`` and (with predictions) ``confusion_matrix.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"report": out / "report.json"}
    payload = report.to_dict()
    if predictions is not None:
        payload["confusion_matrix"] = {
            "labels": [*dataset.taxonomy.slugs, "background"],
            "rows_true_cols_predicted": confusion_matrix(dataset, predictions).tolist(),
        }
    written["report"].write_text(json.dumps(payload, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    recall = np.linspace(0, 1, 101)
    for k, c in enumerate(report.per_class):
        if report.precision is None or c.ap50 is None:
            continue
        p = report.precision[0, :, k, 0, -1]  # IoU 0.5, area all, 100 dets
        ax.plot(recall, np.where(p > -1, p, 0), label=f"{c.slug} (AP50 {c.ap50:.2f})")
    ax.set(xlabel="recall", ylabel="precision", title=f"PR @ IoU 0.5 (AP50 {max(report.ap50, 0):.3f})", xlim=(0, 1), ylim=(0, 1.02))
    if report.per_class and len(report.per_class) <= 30:
        ax.legend(fontsize=6, loc="lower left", ncol=2)
    fig.tight_layout()
    written["pr_curves"] = out / "pr_curves.png"
    fig.savefig(written["pr_curves"], dpi=120)
    plt.close(fig)
    if predictions is not None:
        matrix = np.asarray(payload["confusion_matrix"]["rows_true_cols_predicted"])
        labels = payload["confusion_matrix"]["labels"]
        size = max(5.0, 0.3 * len(labels) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (IoU >= 0.5, score >= 0.25)")
        if len(labels) <= 12:
            for (i, j), v in np.ndenumerate(matrix):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        fig.tight_layout()
        written["confusion_matrix"] = out / "confusion_matrix.png"
        fig.savefig(written["confusion_matrix"], dpi=120)
        plt.close(fig)
    return written
