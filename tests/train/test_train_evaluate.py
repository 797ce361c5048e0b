"""Our COCO evaluation equals pycocotools run by hand; hand-checkable cases; confusion matrix; report files."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from roomscan.data.dataset import DetectionDataset
from roomscan.detection.core import make_detections
from roomscan.train.evaluate import confusion_matrix, evaluate_predictions, write_report


@pytest.fixture(scope="module")
def dataset(shapes_dir):
    return DetectionDataset.load(shapes_dir)


def noisy_predictions(dataset, seed=0):
    """Jittered true boxes (some with the wrong class), plus random false alarms, with random scores."""
    rng = np.random.default_rng(seed)
    slugs = dataset.taxonomy.slugs
    out = {}
    for record, gt in dataset:
        boxes = gt.xyxy + rng.normal(0, 4, gt.xyxy.shape)
        classes = np.where(rng.random(len(gt)) < 0.2, rng.integers(0, 3, len(gt)), gt.class_id)
        extra = rng.uniform(0, 60, (2, 2))
        boxes = np.concatenate([boxes, np.concatenate([extra, extra + 30], axis=1)])
        classes = np.concatenate([classes, rng.integers(0, 3, 2)]).astype(int)
        out[record.id] = make_detections(boxes, rng.random(len(boxes)), classes, [slugs[c] for c in classes])
    return out


def pycocotools_stats(annotations_file, predictions):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = []
    for image_id, dets in predictions.items():
        for box, cls, score in zip(dets.xyxy, dets.class_id, dets.confidence):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append({"image_id": image_id, "category_id": int(cls) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations_file))
        coco_eval = COCOeval(gt, gt.loadRes(results), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_pycocotools_on_the_same_predictions(dataset, shapes_dir, seed):
    predictions = noisy_predictions(dataset, seed)
    report = evaluate_predictions(dataset, predictions)
    stats = pycocotools_stats(shapes_dir / "annotations.json", predictions)
    ours = [report.ap, report.ap50, report.ap75, report.ap_small, report.ap_medium, report.ap_large, report.ar100]
    assert ours == pytest.approx([stats[i] for i in (0, 1, 2, 3, 4, 5, 8)], abs=1e-12)
    assert 0.05 < report.ap50 < 0.95  # a case where the numbers mean something


@pytest.mark.parametrize(
    ("case", "ap", "ap50"),
    [("perfect", 1.0, 1.0), ("none", 0.0, 0.0), ("wrong class", 0.0, 0.0)],
)
def test_hand_checkable_cases(dataset, case, ap, ap50):
    predictions = {}
    for record, gt in dataset:
        classes = gt.class_id if case != "wrong class" else (gt.class_id + 1) % 3
        if case != "none":
            predictions[record.id] = make_detections(gt.xyxy, np.ones(len(gt)), classes,
                                                     [dataset.taxonomy.slugs[c] for c in classes])
    report = evaluate_predictions(dataset, predictions)
    assert (report.ap, report.ap50) == pytest.approx((ap, ap50))
    assert [c.slug for c in report.per_class] == ["circle", "square", "triangle"]
    assert all(c.ap == pytest.approx(ap) for c in report.per_class)


def test_confusion_matrix_counts_hits_confusions_misses_and_false_alarms(dataset):
    record, gt = next((r, g) for r, g in dataset if len(g) == 2)
    one = DetectionDataset(dataset.images_dir, dataset.taxonomy, [record], {record.id: gt})
    a, b = int(gt.class_id[0]), int(gt.class_id[1])
    wrong = (b + 1) % 3
    dets = make_detections(
        [gt.xyxy[0], gt.xyxy[1], [0, 0, 5, 5], gt.xyxy[0] + 1],
        [0.9, 0.8, 0.7, 0.1],  # the last scores below the 0.25 floor: ignored
        [a, wrong, 2, a],
        [dataset.taxonomy.slugs[c] for c in (a, wrong, 2, a)],
    )
    matrix = confusion_matrix(one, {record.id: dets})
    expected = np.zeros((4, 4), dtype=int)
    expected[a, a] += 1
    expected[b, wrong] += 1
    expected[3, 2] += 1
    assert matrix.tolist() == expected.tolist()
    missed = confusion_matrix(one, {})  # no detections: every true box is a miss
    assert missed[:, 3].sum() == 2 and missed[:3, :3].sum() == 0 and missed[3].sum() == 0


def test_write_report_writes_json_and_images(dataset, tmp_path):
    predictions = noisy_predictions(dataset)
    report = evaluate_predictions(dataset, predictions)
    written = write_report(report, tmp_path / "eval", dataset, predictions)
    payload = json.loads(written["report"].read_text())
    assert payload["ap50"] == report.ap50 and len(payload["per_class"]) == 3
    assert payload["confusion_matrix"]["labels"][-1] == "background"
    for key in ("pr_curves", "confusion_matrix"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predictions_for_unknown_images_are_an_error(dataset):
    with pytest.raises(ValueError, match="not in the dataset"):
        evaluate_predictions(dataset, {10_000: make_detections([[0, 0, 1, 1]], [1.0], [0], ["circle"])})
