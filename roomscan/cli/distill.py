"""``roomscan distill``: a zero-shot teacher labels photos, a fast student learns from its labels, and the report
says how well the student agrees with the teacher and how much faster it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from roomscan.cli._common import DbOpt, TaxonomyOpt
from roomscan.cli._console import console, err_console


def _log(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True, markup=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None or value < 0 else f"{value:.3f}"


def distill(
    out: Path = typer.Option(..., "--out", help="Run directory: dataset/, splits/, student/, student-onnx/, report.json."),
    teacher: str = typer.Option("owlv2", "--teacher", help="Teacher detector: a name (owlv2), a hub id or a model directory."),
    images: Path | None = typer.Option(None, "--images", help="Folder of unlabelled photos for the teacher to label."),
    catalog: bool = typer.Option(False, "--catalog", help="Label every photo attached to a listing in the catalog instead."),
    from_dataset: Path | None = typer.Option(None, "--from-dataset", help="Train on labels already made: a dataset directory (e.g. a reviewed RUN/dataset) or a Label Studio JSON export."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Also take photos from sub-folders of --images."),
    taxonomy: Path | None = TaxonomyOpt,
    score_threshold: float | None = typer.Option(None, "--score-threshold", min=0.0, max=1.0, help="One minimum teacher score for every amenity instead of the taxonomy's thresholds."),
    teacher_image_size: int | None = typer.Option(None, "--teacher-image-size", min=32, max=4096, help="Teacher input size in pixels (default: its own; OWLv2 960)."),
    human_decisions: bool = typer.Option(False, "--human-decisions", help="With --catalog: drop the teacher's boxes of amenities a listing's host rejected."),
    labels_only: bool = typer.Option(False, "--labels-only", help="Stop after labelling: review RUN/dataset, then rerun with --from-dataset."),
    review: bool = typer.Option(False, "--review", help="Like --labels-only, with Label Studio tasks that load the images through Label Studio's local-file serving on this machine."),
    student: str = typer.Option("dfine_nano", "--student", help="Student: dfine_nano, rtdetr_v2_r18vd, a hub id or a local model directory."),
    scratch: bool = typer.Option(False, "--scratch", help="Build the student's architecture with random weights; downloads nothing."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Student training epochs (default 12)."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Student training batch size (default 8)."),
    lr: float | None = typer.Option(None, "--lr", help="Student learning rate (default 1e-4)."),
    image_size: int | None = typer.Option(None, "--image-size", help="Student input side, a multiple of 32 (default 640)."),
    train_config: Path | None = typer.Option(None, "--train-config", help="YAML of further TrainConfig keys for the student (as `roomscan train --config`); flags win."),
    holdout: float = typer.Option(0.2, "--holdout", min=0.01, max=0.99, help="Share of the photos the student never trains on, where its agreement with the teacher is measured."),
    int8: bool = typer.Option(False, "--int8", help="Quantise the student's ONNX export to int8."),
    eval_data: Path | None = typer.Option(None, "--eval-data", help="A dataset with human labels: AP of the teacher and of the student on it."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (teacher and student training)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the held-out split and of the student's training."),
    db: str | None = DbOpt,
) -> None:
    """Distil a zero-shot teacher into a fast student: label photos, train, export to ONNX, report.

    The teacher (OWLv2 by default, reading the taxonomy's prompts and thresholds) labels the photos into RUN/dataset,
    with RUN/dataset/labelstudio_tasks.json holding its boxes as predictions for review in Label Studio. Photos on
    which it finds nothing are kept as negatives; unreadable ones are skipped and listed. A rerun reuses a complete
    RUN/dataset and resumes an interrupted student. The report (printed, and RUN/report.json) gives the student's
    AP50 against the teacher's boxes on held-out photos, AP of both on --eval-data, and milliseconds per image of
    the teacher (PyTorch) and the student (ONNX Runtime).
    """
    from roomscan.cli._catalog import open_catalog
    from roomscan.cli._common import load_detector
    from roomscan.train.distill import DistillConfig
    from roomscan.train.distill import distill as run_distill

    config = DistillConfig(
        out=str(out), teacher=teacher, images=str(images) if images else None, catalog=catalog,
        from_dataset=str(from_dataset) if from_dataset else None, recursive=recursive,
        taxonomy=str(taxonomy) if taxonomy else None, score_threshold=score_threshold,
        teacher_image_size=teacher_image_size, human_decisions=human_decisions, labels_only=labels_only,
        review=review, student=student, scratch=scratch, train_config=str(train_config) if train_config else None,
        epochs=epochs, batch_size=batch_size, lr=lr, image_size=image_size, holdout=holdout, int8=int8,
        eval_data=str(eval_data) if eval_data else None, device=device, seed=seed,
    )
    detector = load_detector(teacher, taxonomy, device, teacher_image_size, score_threshold)
    services: Any = open_catalog(db) if catalog else None
    try:
        report = run_distill(config, teacher=detector, services=services, log=_log)
    finally:
        if services is not None:
            services.close()
    _print(report)


def _print(report: Any) -> None:
    labels = report.labels
    console.print(f"labels: {labels.photos} photos, {labels.boxes} boxes, {labels.negatives} negatives (kept), "
                  f"{len(labels.unreadable)} unreadable (skipped), {labels.removed_by_hosts} removed by hosts' "
                  f"decisions; {labels.source}{' (reused)' if labels.resumed else ''}", highlight=False)
    for note in report.notes:
        console.print(note, highlight=False)
    if report.agreement is not None:
        table = Table("amenity", "AP50", "teacher boxes", title=(
            f"student vs teacher on {report.holdout_photos} held-out photos: AP50 {_fmt(report.agreement.ap50)}"))
        for c in report.agreement.per_class:
            table.add_row(c.name, _fmt(c.ap50), str(c.n_gt))
        console.print(table)
    if report.human_teacher is not None:
        table = Table("model", "AP", "AP50", title="on human labels (--eval-data)")
        for name, r in (("teacher", report.human_teacher), ("student", report.human_student)):
            table.add_row(name, _fmt(r.ap), _fmt(r.ap50))
        console.print(table)
    if report.speed is not None:
        s = report.speed
        console.print(f"speed on {s.n_images} photos: teacher {s.teacher_ms:.1f} ms/image ({s.teacher_runtime}), "
                      f"student {s.student_ms:.1f} ms/image ({s.student_runtime}): {s.speedup:.1f}x",
                      highlight=False)
    if report.onnx_dir is not None:
        console.print(f"student: {report.onnx_dir}  (roomscan detect --model {report.onnx_dir} PHOTOS)", highlight=False)
    console.print(f"report: {report.run_dir / 'report.json'}", highlight=False)
