"""``roomscan train``, ``roomscan evaluate`` and ``roomscan runs list|show|compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from roomscan.cli._console import console, err_console

runs_app = typer.Typer(help="Training runs: list them, show one, compare several.", no_args_is_help=True)


def _log(message: str) -> None:
    err_console.print(message, highlight=False, soft_wrap=True)


def train(
    data: Path | None = typer.Option(None, "--data", help="Training dataset directory (images/, annotations.json, taxonomy.yaml)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Hub id (PekingU/rtdetr_v2_r18vd, ustc-community/dfine_nano_coco) or a local model directory."),
    val: Path | None = typer.Option(None, "--val", help="Validation dataset directory (default: hold out --val-fraction of --data)."),
    val_fraction: float | None = typer.Option(None, "--val-fraction", help="Share of --data held out for validation when --val is not given (0: validate on the training set)."),
    scratch: bool = typer.Option(False, "--scratch", help="Random initialisation from the model's known architecture; downloads nothing."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over the training set."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per step per process (under torchrun the global batch is this x processes)."),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate (backbone: x0.1)."),
    image_size: int | None = typer.Option(None, "--image-size", help="Square input side, a multiple of 32 (default 640)."),
    subset: float | None = typer.Option(None, "--subset", help="Train on this fraction of the data (fast iteration)."),
    cache: bool | None = typer.Option(None, "--cache/--no-cache", help="Cache decoded, resized images so later epochs and runs skip decoding (default on)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Image cache directory (default ~/.roomscan/cache/images)."),
    overfit: bool = typer.Option(False, "--overfit-batch", help="Train repeatedly on one batch; the loss must fall toward zero."),
    overfit_steps: int | None = typer.Option(None, "--overfit-steps", min=1, help="Steps of --overfit-batch (default 200)."),
    patience: int | None = typer.Option(None, "--patience", help="Stop after this many epochs without a better val AP (0: never)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this directory from its last checkpoint."),
    out: Path | None = typer.Option(None, "--out", help="Directory runs are created in (default ./runs)."),
    name: str | None = typer.Option(None, "--name", help="Run directory name (default: model, date and time)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of init, data order, augmentation and split."),
    dropout: float | None = typer.Option(
        None, "--dropout", min=0.0, max=0.99,
        help="Dropout rate of the model's attention and feed-forward layers (default: the architecture's); "
        "above 0, `roomscan active rank --mc-dropout` can sample the trained model.",
    ),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or auto."),
    workers: int | None = typer.Option(None, "--workers", help="Threads decoding images ahead of the model."),
    config: Path | None = typer.Option(None, "--config", help="YAML file of TrainConfig keys; flags override it."),
) -> None:
    """Fine-tune an RT-DETRv2 / D-FINE detector on a dataset; writes RUN/model, checkpoints and metrics.jsonl.

    Several GPUs: torchrun --nproc-per-node 4 $(which roomscan) train ... (data parallel; rank 0 writes the run).
    """
    from roomscan.train.config import ConfigError, load_config
    from roomscan.train.distributed import is_main_process
    from roomscan.train.engine import fit

    if resume is not None:
        given = [flag for flag, value in (("--data", data), ("--model", model), ("--config", config)) if value is not None]
        if given:
            raise ConfigError(f"--resume continues a run with its saved config; drop {', '.join(given)}")
        run_dir = fit(resume=resume, log=_log)
    else:
        if data is None and config is None:
            raise ConfigError("--data DATASET is required (or --config FILE with a 'data' key, or --resume RUN_DIR)")
        overrides: dict[str, Any] = {
            "data": str(data) if data else None, "model": model, "val_data": str(val) if val else None,
            "val_fraction": val_fraction, "scratch": True if scratch else None, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "image_size": image_size, "subset": subset, "cache": cache,
            "cache_dir": str(cache_dir) if cache_dir else None, "overfit_batch": True if overfit else None,
            "overfit_steps": overfit_steps,
            "patience": patience, "out": str(out) if out else None, "name": name, "seed": seed, "dropout": dropout, "device": device,
            "num_workers": workers,
        }
        run_dir = fit(load_config(config, **overrides), log=_log)
    if not is_main_process():  # under torchrun every process gets here; one answer is enough
        return
    console.print(f"run: {run_dir}")
    if (run_dir / "model").is_dir():
        console.print(f"model: {run_dir / 'model'}  (roomscan detect --model {run_dir / 'model'} PHOTOS)")


def _fmt(value: float | None) -> str:
    return "-" if value is None or value < 0 else f"{value:.3f}"


def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="A model directory (e.g. RUN/model), hub id or name."),
    data: Path = typer.Option(..., "--data", help="Dataset directory with ground truth."),
    out: Path | None = typer.Option(None, "--out", help="Write report.json, pr_curves.png and confusion_matrix.png here."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per forward pass."),
    min_score: float = typer.Option(0.001, "--min-score", min=0.0, max=1.0, help="Keep detections above this score (low for a fair AP)."),
    image_size: int | None = typer.Option(None, "--image-size", help="Model input size (default: the model's own)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
) -> None:
    """COCO AP / AP50 / AP75 / AP by size / AR@100 and per-class AP of a detector on a dataset."""
    from roomscan.backends import get_detector
    from roomscan.cli._console import progress
    from roomscan.data.dataset import DetectionDataset
    from roomscan.train.evaluate import evaluate_detector, write_report

    dataset = DetectionDataset.load(data)
    with err_console.status(f"Loading model {model}…"):
        kwargs: dict[str, Any] = {"image_size": image_size} if image_size else {}
        detector = get_detector(model, device=device, score_threshold=min_score, **kwargs)
    with progress() as bar:
        task = bar.add_task("evaluating", total=len(dataset))
        report, predictions = evaluate_detector(
            detector, dataset, batch_size=batch_size, progress=lambda n: bar.advance(task, n)
        )
    summary = Table("AP", "AP50", "AP75", "AP small", "AP medium", "AP large", "AR@100", "images", "boxes",
                    title=f"{model} on {data}")
    summary.add_row(*(_fmt(v) for v in (report.ap, report.ap50, report.ap75, report.ap_small, report.ap_medium,
                                          report.ap_large, report.ar100)), str(report.n_images), str(report.n_gt))
    console.print(summary)
    per_class = Table("amenity", "AP", "AP50", "boxes", title="per class")
    for c in sorted(report.per_class, key=lambda c: -1 if c.ap is None else c.ap, reverse=True):
        per_class.add_row(c.name, _fmt(c.ap), _fmt(c.ap50), str(c.n_gt))
    console.print(per_class)
    if out is not None:
        written = write_report(report, out, dataset, predictions)
        err_console.print(f"wrote {', '.join(str(p) for p in written.values())}", highlight=False)


@runs_app.command("list")
def runs_list(runs_dir: Path = typer.Argument(Path("runs"), help="Directory holding run directories.")) -> None:
    """Every run under RUNS_DIR: model, data, status, epochs, best val AP."""
    from roomscan.train.runs import list_runs

    table = Table("run", "model", "status", "epochs", "best AP", "AP50", "best epoch", "started")
    for r in list_runs(runs_dir):
        table.add_row(r.name, Path(r.model).name, r.status, f"{r.epochs_done}/{r.epochs}", _fmt(r.best_ap),
                      _fmt(r.best_ap50), "-" if r.best_epoch is None else str(r.best_epoch), r.started or "-")
    console.print(table)


@runs_app.command("show")
def runs_show(run: Path = typer.Argument(..., help="A run directory.")) -> None:
    """A run's config, provenance and per-epoch metrics."""
    from roomscan.train.runs import read_run

    r = read_run(run)
    info = Table("key", "value", title=str(r.path))
    for key, value in [("status", r.status), ("git commit", r.commit or "-"), ("dataset fingerprint", r.dataset or "-"),
                       ("started", r.started or "-"), *((k, str(v)) for k, v in r.config.items())]:
        info.add_row(key, str(value))
    console.print(info)
    epochs = Table("epoch", "loss", "lr", "val AP", "AP50", "img/s", "seconds", title="metrics")
    for m in r.metrics:
        epochs.add_row(str(m.get("epoch", m.get("step", "-"))), f"{m.get('loss', float('nan')):.4f}",
                       f"{m.get('lr', float('nan')):.2e}", _fmt(m.get("val_ap")), _fmt(m.get("val_ap50")),
                       str(m.get("images_per_s", "-")), str(m.get("train_seconds", m.get("seconds", "-"))))
    console.print(epochs)


@runs_app.command("compare")
def runs_compare(runs: list[Path] = typer.Argument(..., help="Two or more run directories.")) -> None:
    """Runs side by side: the config keys that differ, and their best validation metrics."""
    from roomscan.train.runs import read_run

    summaries = [read_run(p) for p in runs]
    keys = sorted({k for s in summaries for k in s.config})
    differing = [k for k in keys if len({repr(s.config.get(k)) for s in summaries}) > 1]
    table = Table("", *(s.name for s in summaries), title="runs compared")
    for key in differing:
        table.add_row(key, *(str(s.config.get(key)) for s in summaries))
    table.add_row("dataset", *(s.dataset or "-" for s in summaries))
    table.add_row("epochs", *(f"{s.epochs_done}/{s.epochs}" for s in summaries))
    table.add_row("best AP", *(_fmt(s.best_ap) for s in summaries))
    table.add_row("best AP50", *(_fmt(s.best_ap50) for s in summaries))
    console.print(table)
