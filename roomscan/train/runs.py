"""Run directories: each training run describes itself, so runs can be listed, compared and resumed.

A run directory holds::

    RUN/
      config.yaml          the TrainConfig
      run.json             git commit of the code, dataset fingerprints, library versions, start time, status
      metrics.jsonl        one JSON object per epoch (losses, lr, val AP/AP50, time, images/s)
      checkpoint.pt        the latest checkpoint (model, optimizer, lr_scheduler, scaler, RNG states, epoch...)
      model/               the best model (by validation AP), loadable by `roomscan detect --model RUN/model`

Example:
    >>> [r.name for r in list_runs("runs")]  # doctest: +SKIP
    ['rtdetr_v2_r18vd-20261128-2040']
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from roomscan.errors import RoomscanError

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
INFO_FILE = "run.json"
MODEL_DIR = "model"

__all__ = [
    "CHECKPOINT_FILE",
    "METRICS_FILE",
    "MODEL_DIR",
    "RunError",
    "RunSummary",
    "append_metrics",
    "git_commit",
    "list_runs",
    "load_checkpoint",
    "read_metrics",
    "read_run",
    "save_checkpoint",
    "update_info",
]


class RunError(RoomscanError):
    """A run directory is missing or incomplete; the message says which file and what to do."""


def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The commit of the code at ``path`` (default: this package), ``+dirty`` when modified; ``None`` if not git."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True, timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def update_info(run_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run.json`` (atomically) and return it."""
    file = Path(run_dir) / INFO_FILE
    info = json.loads(file.read_text()) if file.is_file() else {}
    info.update(fields)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, file)
    return info


def append_metrics(run_dir: str | os.PathLike[str], row: Mapping[str, Any]) -> None:
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(row)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The epochs recorded in ``metrics.jsonl`` (a torn last line, from a crash mid-write, is skipped)."""
    file = Path(run_dir) / METRICS_FILE
    if not file.is_file():
        return []
    rows = []
    for line in file.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_metrics(run_dir: str | os.PathLike[str], last_epoch: int) -> None:
    """Drop rows after ``last_epoch``: a crash between writing an epoch's row and its checkpoint leaves one."""
    rows = [r for r in read_metrics(run_dir) if r.get("epoch", -1) <= last_epoch]
    file = Path(run_dir) / METRICS_FILE
    tmp = file.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, file)


def save_checkpoint(run_dir: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write ``checkpoint.pt`` atomically (a crash mid-write leaves the previous checkpoint intact)."""
    import torch

    file = Path(run_dir) / CHECKPOINT_FILE
    tmp = file.with_suffix(".tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, file)
    return file


def load_checkpoint(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's latest checkpoint.

    Raises:
        RunError: no such run directory, or no readable checkpoint in it.
    """
    import torch

    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"{run}: no such run directory")
    file = run / CHECKPOINT_FILE
    if not file.is_file():
        raise RunError(f"{run}: no {CHECKPOINT_FILE}; the run stopped before its first epoch ended (start it again)")
    try:
        return torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several unrelated types for a damaged file
        raise RunError(f"{file}: checkpoint unreadable ({exc})") from exc


@dataclass(frozen=True)
class RunSummary:
    """What ``roomscan runs list`` shows of one run."""

    path: Path
    name: str
    model: str
    data: str
    status: str
    epochs_done: int
    epochs: int
    best_ap: float | None
    best_ap50: float | None
    best_epoch: int | None
    started: str | None
    commit: str | None
    dataset: str | None
    config: dict[str, Any]
    metrics: list[dict[str, Any]]


def read_run(run_dir: str | os.PathLike[str]) -> RunSummary:
    """Summarise one run directory.

    Raises:
        RunError: not a run directory (no ``config.yaml``).
    """
    import yaml

    run = Path(run_dir)
    cfg_file = run / "config.yaml"
    if not cfg_file.is_file():
        raise RunError(f"{run}: not a run directory (no config.yaml)")
    try:
        config = yaml.safe_load(cfg_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RunError(f"{cfg_file}: unreadable ({exc})") from exc
    info_file = run / INFO_FILE
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    metrics = read_metrics(run)
    scored = [m for m in metrics if m.get("val_ap") is not None]
    best = max(scored, key=lambda m: m["val_ap"]) if scored else None
    return RunSummary(
        path=run,
        name=run.name,
        model=str(config.get("model", "?")),
        data=str(config.get("data", "?")),
        status=str(info.get("status", "unknown")),
        epochs_done=len(metrics),
        epochs=int(config.get("epochs", 0) or 0),
        best_ap=best["val_ap"] if best else None,
        best_ap50=best.get("val_ap50") if best else None,
        best_epoch=best.get("epoch") if best else None,
        started=info.get("started"),
        commit=info.get("git_commit"),
        dataset=info.get("train_fingerprint"),
        config=config,
        metrics=metrics,
    )


def list_runs(runs_dir: str | os.PathLike[str]) -> list[RunSummary]:
    """Every run directory directly under ``runs_dir``, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise RunError(f"{root}: no such runs directory")
    runs = [read_run(p) for p in root.iterdir() if (p / "config.yaml").is_file()]
    return sorted(runs, key=lambda r: (r.started or "", r.name), reverse=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Tracker:
    """Optional logging to MLflow or Weights & Biases when installed and asked for (``ROOMSCAN_TRACKER``)."""

    def __init__(self, config: Mapping[str, Any], run_name: str) -> None:
        self._backend = None
        choice = os.environ.get("ROOMSCAN_TRACKER", "").strip().lower()
        try:
            if choice == "mlflow":
                import mlflow

                mlflow.start_run(run_name=run_name)
                mlflow.log_params({k: v for k, v in config.items() if v is not None})
                self._backend = mlflow
            elif choice == "wandb":
                import wandb

                wandb.init(project="roomscan", name=run_name, config=dict(config))
                self._backend = wandb
        except ImportError:
            self._backend = None

    def log(self, row: Mapping[str, Any], step: int) -> None:
        numbers = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._backend is None:
            return
        if self._backend.__name__ == "mlflow":
            self._backend.log_metrics(numbers, step=step)
        else:
            self._backend.log(numbers, step=step)

    def close(self) -> None:
        if self._backend is None:
            return
        if self._backend.__name__ == "mlflow":
            self._backend.end_run()
        else:
            self._backend.finish()
