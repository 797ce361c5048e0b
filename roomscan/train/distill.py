"""Distil a zero-shot teacher (OWLv2) into a fast student (D-FINE-N, RT-DETRv2) without human labels.

Read top to bottom: the teacher labels photos (:func:`label_with_teacher`: its per-amenity thresholds, class-aware
NMS) into a roomscan dataset, ``RUN/dataset``, with Label Studio tasks beside it (the teacher's boxes as
*predictions*) so a person can review them before training; the photos are split into training and held-out
photos; the student trains with :func:`roomscan.train.fit`, is exported to ONNX, and :func:`distill` reports the
student's agreement with the teacher on the held-out photos (AP50 treating the teacher's boxes as ground truth),
AP of both on human labels when there are some, and the serving speed of each on the same photos.

This module holds :class:`DistillConfig`, the split, the student's training and export, the report and
:func:`distill`; the labelling (the photo sources, :func:`label_with_teacher`, :class:`DistillError`) is in
:mod:`roomscan.train.distill_labels`, its public names re-exported here.

A run directory::

    RUN/
      dataset/                 the teacher's labels (images/, annotations.json, taxonomy.yaml),
                               labelstudio_tasks.json, teacher.json (who labelled, counts)
      splits/train, holdout/   the photos the student trains on, and those it never sees
      student/                 the training run (student/model: the best epoch)
      student-onnx/            the ONNX export (ONNX Runtime serves it)
      report.json              :class:`DistillReport`
      student_labels.json      the fingerprint of the labels the student trained on (other labels: retrain)

Photos on which the teacher finds nothing stay in the dataset as negatives (counted); unreadable photos are
skipped and listed. The dataset is written to a temporary directory and renamed into place, so ``RUN/dataset``
is complete or absent; a rerun finds it and skips labelling, and a student run interrupted mid-training resumes
from its last checkpoint.

Example:
    >>> report = distill(DistillConfig(out="runs/distill", teacher="owlv2", images="photos/"))  # doctest: +SKIP
    >>> report.agreement.ap50, report.speed.student_ms  # doctest: +SKIP
    (0.71, 9.8)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from roomscan.backends import Detector
from roomscan.data.dataset import DetectionDataset, write_json_atomic
from roomscan.train.distill_labels import (
    TASKS_FILE,
    TEACHER_FILE,
    DistillError,
    Log,
    PhotoSource,
    catalog_photos,
    folder_photos,
    label_with_teacher,
)

DATASET_DIR = "dataset"
SPLITS_DIR = "splits"
STUDENT_RUN = "student"
ONNX_DIR = "student-onnx"
REPORT_FILE = "report.json"
STUDENT_LABELS_FILE = "student_labels.json"  # the training split's fingerprint the student was trained on
EVAL_MIN_SCORE = 0.001  # detections kept for AP: all but the noise, as `roomscan evaluate` does

# Short student names -> the hub checkpoints the training code fine-tunes (with --scratch: the architecture only).
STUDENTS = {"dfine_nano": "ustc-community/dfine_nano_coco", "rtdetr_v2_r18vd": "PekingU/rtdetr_v2_r18vd"}

__all__ = [
    "STUDENTS",
    "DistillConfig",
    "DistillError",
    "DistillReport",
    "LabelSummary",
    "PhotoSource",
    "Speed",
    "catalog_photos",
    "distill",
    "folder_photos",
    "label_with_teacher",
    "load_teacher",
]


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run.

    Attributes:
        out: the run directory (see the module docstring).
        teacher: any detector spec ``get_detector`` takes (``owlv2``, a hub id, a model directory).
        images: a folder of photos to label; or ``catalog``: every photo attached to a listing in the catalog; or
            ``from_dataset``: labels already made (a roomscan dataset directory, or a Label Studio JSON export of
            ``RUN/dataset/labelstudio_tasks.json`` after review). Exactly one of the three.
        recursive: also take photos from sub-folders of ``images``.
        taxonomy: the amenities the teacher looks for (YAML; its prompts and thresholds); default: the teacher's.
        score_threshold: one minimum teacher score for every amenity instead of the taxonomy's thresholds.
        nms_threshold: IoU above which the teacher's lower-scoring box of the same amenity is dropped.
        teacher_image_size: the teacher's input side (default: its own).
        human_decisions: with ``catalog``: on photos of a listing whose host rejected an amenity, drop the teacher's
            boxes of that amenity.
        labels_only: stop after labelling (review ``RUN/dataset``, then rerun with ``from_dataset``).
        review: like ``labels_only``, and the Label Studio tasks point at the images through Label Studio's
            local-file serving (``/data/local-files/?d=...``), for a Label Studio running on this machine.
        student: a name of :data:`STUDENTS`, a hub id or a local model directory.
        scratch: build the student's architecture with random weights (downloads nothing).
        train_config: a YAML file of further ``TrainConfig`` keys (warm-up, augmentation, cache...); the fields
            here win.
        epochs, batch_size, lr, image_size: the student's training (``None``: ``TrainConfig``'s defaults).
        holdout: share of the photos the student never trains on, where its agreement with the teacher is measured.
        int8: quantise the ONNX export to int8.
        eval_data: a dataset with human labels: AP of the teacher and of the student on it.
        speed_images: photos timed for the serving speed of each model.
        batch: photos per teacher forward pass.
        device: ``cpu``, ``cuda`` or ``auto``, for the teacher and the student's training.
        seed: the split and the student's training.
    """

    out: str
    teacher: str = "owlv2"
    images: str | None = None
    catalog: bool = False
    from_dataset: str | None = None
    recursive: bool = False
    taxonomy: str | None = None
    score_threshold: float | None = None
    nms_threshold: float = 0.5
    teacher_image_size: int | None = None
    human_decisions: bool = False
    labels_only: bool = False
    review: bool = False
    student: str = "dfine_nano"
    scratch: bool = False
    train_config: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    holdout: float = 0.2
    int8: bool = False
    eval_data: str | None = None
    speed_images: int = 8
    batch: int = 4
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        sources = [name for name, given in (("--images", self.images), ("--catalog", self.catalog),
                                            ("--from-dataset", self.from_dataset)) if given]
        checks = [
            (len(sources) == 1, "give exactly one photo source: --images DIR, --catalog or --from-dataset DATASET"
             + (f" (got {', '.join(sources)})" if sources else "")),
            (not self.human_decisions or self.catalog, "--human-decisions reads hosts' decisions: it needs --catalog"),
            (self.score_threshold is None or 0.0 <= self.score_threshold <= 1.0,
             f"--score-threshold must be in [0, 1], got {self.score_threshold}"),
            (0.0 < self.nms_threshold <= 1.0, f"nms_threshold must be in (0, 1], got {self.nms_threshold}"),
            (0.0 < self.holdout < 1.0, f"--holdout must be between 0 and 1, got {self.holdout}"),
            (self.speed_images >= 1, f"speed_images must be at least 1, got {self.speed_images}"),
            (self.batch >= 1, f"batch must be at least 1, got {self.batch}"),
            (bool(self.out), "--out RUN (the run directory) is required"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise DistillError("; ".join(problems))

    @property
    def stops_after_labels(self) -> bool:
        return self.labels_only or self.review


@dataclass(frozen=True)
class LabelSummary:
    """What the labelling gave: photos, boxes, negatives (photos without a box, kept), photos skipped as unreadable,
    boxes removed by hosts' decisions; ``resumed`` when an earlier run's complete dataset was reused."""

    source: str
    teacher: str
    photos: int
    boxes: int
    negatives: int
    unreadable: tuple[str, ...] = ()
    removed_by_hosts: int = 0
    resumed: bool = False


@dataclass(frozen=True)
class Speed:
    """Mean milliseconds per image, one image per call after a warm-up, on the same ``n_images`` photos."""

    teacher_ms: float
    student_ms: float
    n_images: int
    teacher_runtime: str
    student_runtime: str

    @property
    def speedup(self) -> float:
        return self.teacher_ms / max(self.student_ms, 1e-9)


@dataclass(frozen=True)
class DistillReport:
    """The outcome of :func:`distill`; ``to_dict()`` is what ``RUN/report.json`` holds.

    Attributes:
        agreement: the student (ONNX) on the held-out photos, scored with the teacher's boxes as ground truth.
        human_teacher, human_student: both models on ``eval_data`` (``None`` without it).
        student_dir, onnx_dir, agreement, speed: ``None`` after ``labels_only``.
    """

    run_dir: Path
    dataset: Path
    labels: LabelSummary
    train_photos: int = 0
    holdout_photos: int = 0
    student_dir: Path | None = None
    onnx_dir: Path | None = None
    agreement: Any = None  # EvalReport (roomscan.train.evaluate loads pycocotools lazily)
    human_teacher: Any = None
    human_student: Any = None
    speed: Speed | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        def evaluation(report: Any) -> dict[str, Any] | None:
            return None if report is None else report.to_dict()

        return {
            "run_dir": str(self.run_dir), "dataset": str(self.dataset), "labels": {
                **{k: getattr(self.labels, k) for k in ("source", "teacher", "photos", "boxes", "negatives",
                                                         "removed_by_hosts", "resumed")},
                "unreadable": list(self.labels.unreadable)},
            "train_photos": self.train_photos, "holdout_photos": self.holdout_photos,
            "student_dir": str(self.student_dir) if self.student_dir else None,
            "onnx_dir": str(self.onnx_dir) if self.onnx_dir else None,
            "agreement_with_teacher": evaluation(self.agreement),
            "human_labels": None if self.human_teacher is None else {
                "teacher": evaluation(self.human_teacher), "student": evaluation(self.human_student)},
            "speed": None if self.speed is None else {
                "teacher_ms_per_image": self.speed.teacher_ms, "student_ms_per_image": self.speed.student_ms,
                "speedup": self.speed.speedup, "images": self.speed.n_images,
                "teacher_runtime": self.speed.teacher_runtime, "student_runtime": self.speed.student_runtime},
            "notes": list(self.notes),
        }


# -- the run ---------------------------------------------------------------------------------------------------
def load_teacher(config: DistillConfig) -> Detector:
    """The teacher ``config`` names, with its taxonomy, thresholds and input size."""
    from roomscan.backends import get_detector

    options: dict[str, Any] = {"taxonomy": config.taxonomy, "device": config.device,
                               "score_threshold": config.score_threshold}
    if config.teacher_image_size:
        options["image_size"] = config.teacher_image_size
    return get_detector(config.teacher, **options)


def distill(
    config: DistillConfig,
    *,
    teacher: Detector | None = None,
    services: Any = None,
    log: Log = print,
) -> DistillReport:
    """Label, split, train, export, evaluate (module docstring); writes ``RUN/report.json`` and returns the report.

    Args:
        config: the run.
        teacher: a loaded teacher (default: :func:`load_teacher`).
        services: ``roomscan.services.Services`` for ``config.catalog`` (the CLI opens them).
        log: progress lines.

    Raises:
        DistillError, DatasetError, TrainingError, ExportError, ModelUnavailableError: named, actionable problems.
    """
    run = Path(config.out)
    if run.exists() and not run.is_dir():
        raise DistillError(f"{run}: exists and is not a directory; pick another --out for the run directory")
    eval_ds = None
    if not config.stops_after_labels:  # mistakes in what comes after labelling, found before hours of it
        _student_recipe(config, run)
        eval_ds = DetectionDataset.load(config.eval_data) if config.eval_data else None
    teacher = teacher or load_teacher(config)
    dataset, labels = _labelled(config, teacher, services, run, log)
    if config.stops_after_labels:
        report = DistillReport(run, run / DATASET_DIR, labels, notes=(_review_note(run),))
        _save(report, run)
        return report
    train_ds, holdout_ds = _split(dataset, run / SPLITS_DIR, config.holdout, config.seed)
    log(f"split: {len(train_ds)} photos to train the student, {len(holdout_ds)} held out")
    student_dir = _train_student(config, run, train_ds.fingerprint(), log)
    from roomscan.train.export import ExportConfig, export_onnx

    log("exporting the student to ONNX" + (" (int8)" if config.int8 else ""))
    onnx_dir = export_onnx(student_dir, run / ONNX_DIR, ExportConfig(int8=config.int8), progress=log).path

    from roomscan.backends import get_detector
    from roomscan.train.evaluate import evaluate_detector

    student = get_detector(str(onnx_dir), device="cpu", score_threshold=EVAL_MIN_SCORE)
    agreement, _ = evaluate_detector(student, holdout_ds, batch_size=config.batch)
    log(f"student vs teacher on {len(holdout_ds)} held-out photos: AP50 {agreement.ap50:.3f}")
    human_teacher = human_student = None
    if eval_ds is not None:
        with _min_score(teacher, EVAL_MIN_SCORE):
            human_teacher, _ = evaluate_detector(teacher, eval_ds, batch_size=config.batch)
        human_student, _ = evaluate_detector(student, eval_ds, batch_size=config.batch)
        log(f"on {config.eval_data}: teacher AP50 {human_teacher.ap50:.3f}, student AP50 {human_student.ap50:.3f}")
    speed = _speed(teacher, student, holdout_ds, config.speed_images, int8=config.int8)
    report = DistillReport(run, run / DATASET_DIR, labels, len(train_ds), len(holdout_ds), student_dir, onnx_dir,
                           agreement, human_teacher, human_student, speed)
    _save(report, run)
    return report


def _labelled(config: DistillConfig, teacher: Detector, services: Any, run: Path,
              log: Log) -> tuple[DetectionDataset, LabelSummary]:
    """The dataset to train on: reviewed labels, an earlier run's complete labelling, or the teacher's new one."""
    dataset_dir = run / DATASET_DIR
    key = teacher.info.key
    if config.from_dataset:
        dataset = _reviewed(Path(config.from_dataset), teacher, dataset_dir, log)
        negatives = sum(1 for _, dets in dataset if len(dets) == 0)
        return dataset, LabelSummary(f"reviewed: {config.from_dataset}", key, len(dataset), dataset.num_boxes,
                                     negatives)
    if dataset_dir.exists():
        info_file = dataset_dir / TEACHER_FILE
        if not info_file.is_file():
            raise DistillError(f"{dataset_dir}: exists but is not a complete labelling (no {TEACHER_FILE}); "
                               "remove it or pick another --out")
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise TypeError(f"a {type(info).__name__}, not an object")
            summary = _label_summary(dataset_dir, resumed=True)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise DistillError(f"{info_file}: unreadable ({exc}); remove {dataset_dir} to label again, or pick "
                               "another --out") from exc
        if info.get("teacher") != key:
            raise DistillError(f"{dataset_dir} was labelled by {info.get('teacher')}, not {key}: pick another --out, "
                               f"or train on it with --from-dataset {dataset_dir}")
        log(f"{dataset_dir} is complete (labelled by {key}): skipping labelling")
        return DetectionDataset.load(dataset_dir), summary
    if config.catalog:
        if services is None:
            raise DistillError("--catalog needs the catalog: pass services (roomscan.services.Services.open)")
        photos = catalog_photos(services, human_decisions=config.human_decisions)
    else:
        assert config.images is not None
        photos = folder_photos(config.images, recursive=config.recursive)
    log(f"labelling {len(photos)} photos with {key}")
    prefix = f"/data/local-files/?d={quote(str((dataset_dir / 'images').resolve()))}/" if config.review else "images/"
    dataset = label_with_teacher(teacher, photos, dataset_dir, nms_threshold=config.nms_threshold,
                                 batch=config.batch, image_prefix=prefix, log=log)
    summary = _label_summary(dataset_dir, resumed=False)
    log(f"the teacher labelled {summary.photos} photos: {summary.boxes} boxes, {summary.negatives} negatives "
        "(photos without a box, kept)")
    return dataset, summary


def _label_summary(dataset_dir: Path, *, resumed: bool) -> LabelSummary:
    info = json.loads((dataset_dir / TEACHER_FILE).read_text())
    return LabelSummary("teacher", info["teacher"], info["photos"], info["boxes"], info["negatives"],
                        tuple(info.get("unreadable", ())), info.get("removed_by_hosts", 0), resumed=resumed)


def _reviewed(path: Path, teacher: Detector, dataset_dir: Path, log: Log) -> DetectionDataset:
    """A roomscan dataset directory, or a Label Studio JSON export read through the teacher's taxonomy."""
    from roomscan.data.dataset import DatasetError, skipped_lines
    from roomscan.data.formats import labelstudio

    if path.is_dir():
        dataset = DetectionDataset.load(path)
    elif path.is_file():
        images = dataset_dir / "images"
        dataset = labelstudio.read(path, images_dir=images if images.is_dir() else None, taxonomy=teacher.taxonomy)
    else:
        raise DistillError(f"{path}: no such dataset directory or Label Studio export")
    for line in skipped_lines([s for s in dataset.skipped if s.kind != "prediction"]):
        log(f"{path}: {line}")
    missing = [im.file_name for im in dataset.images if not dataset.path(im).is_file()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} image(s) not found under {dataset.images_dir}: "
                           f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
    if dataset.num_boxes == 0:
        raise DistillError(f"{path}: no boxes to train on (a Label Studio export keeps reviewed annotations, not "
                           "the teacher's predictions: accept or correct them in Label Studio first)")
    return dataset


def _split(dataset: DetectionDataset, root: Path, holdout: float, seed: int) -> tuple[DetectionDataset, DetectionDataset]:
    """Hold out a seeded share of the photos; written as two datasets (hard links) the training code reads."""
    if len(dataset) < 2:
        raise DistillError(f"{len(dataset)} photo: at least 2 are needed (some to train on, some held out)")
    order = list(range(len(dataset)))
    random.Random(seed).shuffle(order)
    n_hold = min(len(dataset) - 1, max(1, round(len(dataset) * holdout)))
    parts = {"holdout": sorted(order[:n_hold]), "train": sorted(order[n_hold:])}
    out = {}
    for name, indices in parts.items():
        images = [dataset.images[i] for i in indices]
        part = DetectionDataset(dataset.images_dir, dataset.taxonomy, images,
                                {im.id: dataset.annotations[im.id] for im in images})
        target = root / name
        work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=_mkdir(root)))
        try:
            part.save(work)
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        out[name] = DetectionDataset.load(target)
    return out["train"], out["holdout"]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _train_student(config: DistillConfig, run: Path, labels: str, log: Log) -> Path:
    """Train (or resume, or reuse a finished) student run at ``RUN/student``; returns its best model directory.

    ``labels`` is the training split's fingerprint: a student of other labels (a rerun with reviewed ones) is
    trained again, never reused or resumed."""
    from roomscan.train import runs
    from roomscan.train.engine import fit

    run_dir = run / STUDENT_RUN
    model_dir = run_dir / runs.MODEL_DIR
    marker = run / STUDENT_LABELS_FILE
    try:
        trained_on = json.loads(marker.read_text(encoding="utf-8"))["train_fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        trained_on = None  # a run from before the marker: its student is taken as it is
    if run_dir.exists() and trained_on is not None and trained_on != labels:
        log(f"{run_dir} was trained on other labels: training the student again")
        shutil.rmtree(run_dir)
    if (run_dir / runs.INFO_FILE).is_file() and runs.read_run(run_dir).status == "finished" and model_dir.is_dir():
        log(f"{run_dir} has finished training: reusing its model")
        return model_dir
    if (run_dir / runs.CHECKPOINT_FILE).is_file():
        log(f"resuming the student's training in {run_dir}")
        fit(resume=run_dir, log=log)
        return model_dir
    shutil.rmtree(run_dir, ignore_errors=True)  # a start that died before its first checkpoint
    train_config = _student_recipe(config, run)
    write_json_atomic(marker, {"train_fingerprint": labels})
    log(f"training the student ({train_config.model}{', from scratch' if config.scratch else ''}) for "
        f"{train_config.epochs} epochs")
    fit(train_config, log=log)
    if not model_dir.is_dir():
        raise DistillError(f"{run_dir}: training finished without a model (see its metrics.jsonl)")
    return model_dir


def _student_recipe(config: DistillConfig, run: Path) -> Any:
    """The student's ``TrainConfig``: ``--train-config`` with the flags on top (a ``ConfigError`` names a mistake)."""
    from roomscan.train.config import load_config

    model = config.student if config.scratch else STUDENTS.get(config.student, config.student)
    return load_config(
        config.train_config, data=str(run / SPLITS_DIR / "train"), model=model, scratch=config.scratch or None,
        epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, image_size=config.image_size,
        seed=config.seed, device=config.device, out=str(run), name=STUDENT_RUN,
    )


@contextmanager
def _min_score(detector: Detector, score: float) -> Iterator[None]:
    """Score every detection above ``score`` for a fair AP, whatever the detector's thresholds."""
    before = detector.thresholds
    detector.thresholds = np.full_like(before, score)
    try:
        yield
    finally:
        detector.thresholds = before


def _speed(teacher: Detector, student: Detector, dataset: DetectionDataset, n: int, *, int8: bool) -> Speed:
    from roomscan.detection.image import load_image

    images = [load_image(dataset.path(im)).image for im in dataset.images[:n]]

    def ms_per_image(detector: Detector) -> float:
        detector.predict(images[:1], batch_size=1)  # warm-up: lazy initialisation, caches
        start = time.perf_counter()
        for image in images:
            detector.predict([image], batch_size=1)
        return round((time.perf_counter() - start) / len(images) * 1000, 2)

    return Speed(ms_per_image(teacher), ms_per_image(student), len(images),
                 f"{teacher.info.backend} eager PyTorch on {teacher.device}",
                 f"ONNX Runtime on CPU{' (int8)' if int8 else ''}")


def _review_note(run: Path) -> str:
    dataset = run / DATASET_DIR
    return (f"review the teacher's boxes: import {dataset / TASKS_FILE} into Label Studio (its predictions are "
            f"pre-annotations), correct them, export JSON, then train with --from-dataset EXPORT.json "
            f"(or edit {dataset} and use --from-dataset {dataset})")


def _save(report: DistillReport, run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    path = run / REPORT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2))
    os.replace(tmp, path)
