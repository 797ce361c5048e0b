"""``roomscan train-classifier``: train a small image classifier (e.g. room types) from a folder of class folders.

The model is :class:`~roomscan.radioactive.classifier.ImageClassifier` (VGG-style or ResNet, trained from scratch),
saved by ``save_classifier``: the file ``roomscan verify --model`` tests. Exit status 0 when the model was saved, 2
on input it cannot use (with a message saying what was wrong), 130 when interrupted (``--resume`` continues).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from roomscan.cli._common import JsonOpt
from roomscan.cli._console import console, err_console, progress
from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from PIL import Image

    from roomscan.radioactive.classifier import ClassifierConfig, LabelledFolder

__all__ = ["train_classifier_command"]

DEFAULT_VAL_FRACTION = 0.1
# Settings a resumed run must share with the checkpoint, and the flag that sets each (for the message).
_RUN_FLAGS = {
    "class_names": "DATA_DIR's class folders", "data": "DATA_DIR's images", "config": "--architecture/--widths/--image-size",
    "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed", "validation": "--val/--val-fraction",
}  # fmt: skip


def _refused(message: str) -> RoomscanError:
    """The package's own error, imported when needed: importing it loads scipy, which ``roomscan --help`` need not."""
    from roomscan.radioactive import RadioactiveError

    return RadioactiveError(message)


def train_classifier_command(
    data_dir: Path = typer.Argument(..., help="Training photos: one sub-folder per class, named after it (DATA_DIR/kitchen/1.jpg, DATA_DIR/bathroom/...)."),
    out: Path = typer.Option(..., "--out", metavar="MODEL", help="Where to save the classifier (a .pt file; `roomscan verify --model` reads it)."),
    val: Path | None = typer.Option(None, "--val", metavar="DIR", help="Held-out photos in the same layout (default: hold out --val-fraction of DATA_DIR)."),
    val_fraction: float | None = typer.Option(None, "--val-fraction", help=f"Share of each class held out for validation when --val is not given, seeded (default {DEFAULT_VAL_FRACTION}; 0: none)."),
    architecture: str = typer.Option("vgg", "--architecture", help="vgg (conv-BN-ReLU stages with max pooling) or resnet (residual blocks)."),
    widths: str = typer.Option("32,64,96", "--widths", help="Channels of each stage, comma-separated; the last is the feature size."),
    image_size: int = typer.Option(64, "--image-size", help="Square side in pixels photos are resized to (16..1024)."),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Passes over the training photos."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Photos per optimisation step."),
    lr: float = typer.Option(2e-3, "--lr", help="Adam's peak learning rate (cosine schedule down to 0)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the initial weights, the shuffling, the augmentation and the held-out split."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from the checkpoint beside MODEL (rooms.pt: rooms.checkpoint.pt); same data and settings."),
    force: bool = typer.Option(False, "--force", help="Replace an existing MODEL (and an interrupted run's checkpoint)."),
    json_out: bool = JsonOpt,
) -> None:
    """Train a small image classifier (e.g. room types) from scratch on a folder with one sub-folder per class.

    Photos are resized to --image-size and augmented with random crops and flips. Each epoch prints the training
    loss and accuracy, and the accuracy on held-out photos (--val DIR, or a seeded share of each class of DATA_DIR
    with --val-fraction); the end prints each class's held-out accuracy. Unreadable photos are skipped and listed.

    The model is written only when training ends, atomically; an existing MODEL is never replaced without --force.
    After each epoch a checkpoint is saved beside MODEL (rooms.pt: rooms.checkpoint.pt): after a crash or Ctrl-C,
    the same command with --resume continues from it, to the same model an uninterrupted run gives. It is removed
    once MODEL is saved.
    """
    from roomscan.radioactive.classifier_training import checkpoint_path_for

    config = _config(architecture, widths, image_size)
    if lr <= 0:
        raise _refused(f"--lr must be positive, e.g. 0.002, got {lr:g}")
    if val is not None and val_fraction is not None:
        raise _refused("give --val DIR or --val-fraction, not both")
    fraction = DEFAULT_VAL_FRACTION if val is None and val_fraction is None else (val_fraction or 0.0)
    if not 0 <= fraction < 1:
        raise _refused(f"--val-fraction must be in [0, 1) (e.g. 0.1; 0 holds nothing out), got {fraction:g}")
    checkpoint_file = checkpoint_path_for(out)
    _check_out(out, checkpoint_file, resume=resume, force=force)

    train, held, skipped, run = _read_data(data_dir, val, fraction, seed)
    run |= {"config": config.to_dict(), "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    resume_from, val_history = _resume(checkpoint_file, run) if resume else (None, [])
    summary = _train(train, held, config, run, checkpoint_file, resume_from, val_history, out=out, quiet=json_out)
    summary["skipped"] = [{"source": s.source, "reason": s.reason} for s in skipped]
    if json_out:
        console.print_json(json.dumps(summary, allow_nan=False))
    else:
        _print_summary(summary)


def _config(architecture: str, widths: str, image_size: int) -> ClassifierConfig:
    from roomscan.radioactive.classifier import ClassifierConfig

    try:
        stages = tuple(int(w) for w in widths.split(","))
    except ValueError:
        raise _refused(f"--widths {widths!r}: give whole channel counts separated by commas, e.g. 32,64,96") from None
    return ClassifierConfig(architecture=architecture.lower(), widths=stages, image_size=image_size)


def _check_out(out: Path, checkpoint_file: Path, *, resume: bool, force: bool) -> None:
    if out.is_dir():
        raise _refused(f"--out {out} is a folder; give a file name, e.g. {out / 'classifier.pt'}")
    if not out.parent.is_dir():
        raise _refused(f"--out {out}: its folder {out.parent} does not exist; create it first")
    if resume:
        if not checkpoint_file.is_file():
            finished = f" ({out} exists: that run finished)" if out.exists() else ""
            raise _refused(
                f"--resume: no checkpoint at {checkpoint_file} to continue from{finished}; run without --resume"
            )
        return  # the interrupted run was allowed to write MODEL when it started
    if out.exists() and not force:
        raise _refused(f"{out} already exists; give another --out, or --force to replace it")
    if checkpoint_file.exists() and not force:
        raise _refused(
            f"{checkpoint_file}: an interrupted run's checkpoint; --resume to continue it, or --force to start over"
        )


@dataclass(frozen=True)
class _Split:
    """Images and their label indices into the training classes ``names``."""

    images: list[Image.Image]
    labels: list[int]
    names: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        return {name: self.labels.count(k) for k, name in enumerate(self.names)}


def _read_data(
    data_dir: Path, val: Path | None, fraction: float, seed: int
) -> tuple[_Split, _Split | None, list[Any], dict[str, Any]]:
    """Training and held-out images, the files skipped, and what identifies the data in a checkpoint."""
    from roomscan.radioactive.classifier import load_labelled_folder
    from roomscan.radioactive.classifier_training import data_fingerprint, stratified_split

    folder = load_labelled_folder(data_dir)
    _check_classes(data_dir, folder)
    names = folder.class_names
    skipped = list(folder.skipped)
    everything = _Split(list(folder.images), list(folder.labels), names)
    run: dict[str, Any] = {"class_names": list(names), "data": data_fingerprint(folder.paths, folder.labels, data_dir)}
    if val is not None:
        held_folder = load_labelled_folder(val)
        unknown = [c for c in held_folder.class_names if c not in names]
        if unknown:
            raise _refused(
                f"--val {val}: classes {unknown} are not among DATA_DIR's {list(names)}; name the folders alike"
            )
        skipped += held_folder.skipped
        held_labels = [names.index(held_folder.class_names[y]) for y in held_folder.labels]
        run["validation"] = {"dir": data_fingerprint(held_folder.paths, held_folder.labels, val)}
        return everything, _Split(list(held_folder.images), held_labels, names), skipped, run
    run["validation"] = {"fraction": fraction}
    if fraction == 0:
        return everything, None, skipped, run
    try:
        train_idx, held_idx = stratified_split(folder.labels, fraction, seed=seed, class_names=names)
    except RoomscanError as exc:
        raise _refused(
            f"{data_dir}: {exc} (--val-fraction {fraction:g}); add photos to it, give held-out photos with "
            "--val DIR, or --val-fraction 0 to hold out none"
        ) from None

    def pick(idx: list[int]) -> _Split:
        return _Split([folder.images[i] for i in idx], [folder.labels[i] for i in idx], names)

    return pick(train_idx), pick(held_idx), skipped, run


def _check_classes(data_dir: Path, folder: LabelledFolder) -> None:
    """A class folder with no readable photo is a mistake here (the class would silently vanish), and a classifier
    needs two classes."""
    empty = [s for s in folder.skipped if Path(s.source).parent == data_dir and Path(s.source).is_dir()]
    if empty:
        names = ", ".join(Path(s.source).name for s in empty)
        raise _refused(
            f"{data_dir}: class folder(s) {names} hold no readable photo; add photos or remove the folder"
        )
    if len(folder.class_names) < 2:
        raise _refused(
            f"{data_dir}: only one class ({folder.class_names[0]}); a classifier needs at least two class sub-folders"
        )


def _resume(checkpoint_file: Path, run: dict[str, Any]) -> tuple[Any, list[float | None]]:
    from roomscan.radioactive.classifier_training import load_checkpoint

    checkpoint, saved = load_checkpoint(checkpoint_file)
    changed = [flag for key, flag in _RUN_FLAGS.items() if saved.get(key) != run.get(key)]
    if changed:
        raise _refused(
            f"{checkpoint_file} was made with other settings or data ({', '.join(changed)} differ): resume with the "
            "same ones, or --force to start over"
        )
    history = list(saved.get("val_history", []))[: checkpoint.epoch]
    return checkpoint, history + [None] * (checkpoint.epoch - len(history))


def _train(
    train: _Split,
    held: _Split | None,
    config: ClassifierConfig,
    run: dict[str, Any],
    checkpoint_file: Path,
    resume_from: Any,
    val_history: list[float | None],
    *,
    out: Path,
    quiet: bool,
) -> dict[str, Any]:
    from roomscan.radioactive import classifier_training as training
    from roomscan.radioactive.classifier import save_classifier, train_classifier

    epochs = run["epochs"]
    done = 0 if resume_from is None else resume_from.epoch
    with progress() as bar:
        task = bar.add_task("Training", total=epochs, completed=done)
        if done and not quiet:
            bar.console.print(f"resuming from {checkpoint_file} after epoch {done}", highlight=False)

        def on_epoch_end(model: Any, checkpoint: Any) -> None:
            accuracy = None
            if held is not None:
                counts = training.class_accuracies(model, held.images, held.labels)
                accuracy = sum(c for c, _ in counts.values()) / len(held.images)
            val_history.append(accuracy)
            training.save_checkpoint(checkpoint, checkpoint_file, run=run | {"val_history": val_history})
            stats = checkpoint.history[-1]
            line = f"epoch {stats.epoch}/{epochs}: loss {stats.loss:.4f}, training accuracy {stats.accuracy:.1%}"
            held_text = "" if accuracy is None else f", held-out accuracy {accuracy:.1%}"
            bar.console.print(line + held_text, highlight=False)
            bar.update(task, completed=stats.epoch)

        try:
            result = train_classifier(train.images, train.labels, train.names, config, epochs=epochs, seed=run["seed"],
                                      batch_size=run["batch_size"], lr=run["lr"], on_epoch_end=on_epoch_end,
                                      resume_from=resume_from)  # fmt: skip
        except KeyboardInterrupt:
            bar.stop()
            if checkpoint_file.exists():
                err_console.print(
                    f"interrupted; the same command with --resume continues from {escape(str(checkpoint_file))}",
                    highlight=False, soft_wrap=True,
                )  # fmt: skip
            raise typer.Exit(130) from None
    save_classifier(result.model, out)
    checkpoint_file.unlink(missing_ok=True)
    per_class = training.class_accuracies(result.model, held.images, held.labels) if held is not None else {}
    return _summary(result, train, held, per_class, val_history, out=out, config=config, resumed=done or None)


def _summary(
    result: Any,
    train: _Split,
    held: _Split | None,
    per_class: dict[str, tuple[int, int]],
    val_history: list[float | None],
    *,
    out: Path,
    config: ClassifierConfig,
    resumed: int | None,
) -> dict[str, Any]:
    train_counts = train.counts()
    held_counts = held.counts() if held is not None else {}
    correct = sum(c for c, _ in per_class.values())
    return {
        "model": str(out),
        "config": config.to_dict(),
        "classes": {
            name: {
                "train": train_counts[name],
                "val": held_counts.get(name, 0),
                "val_correct": per_class[name][0] if name in per_class else None,
                "val_accuracy": per_class[name][0] / per_class[name][1] if name in per_class else None,
            }
            for name in train.names
        },
        "epochs": [
            {"epoch": h.epoch, "loss": h.loss, "train_accuracy": h.accuracy, "val_accuracy": v}
            for h, v in zip(result.history, val_history, strict=True)
        ],
        "train_images": len(train.images),
        "val_images": len(held.images) if held is not None else 0,
        "val_accuracy": correct / len(held.images) if held is not None else None,
        "resumed_after_epoch": resumed,
    }


def _print_summary(summary: dict[str, Any]) -> None:
    held = summary["val_accuracy"] is not None
    table = Table(box=box.SIMPLE_HEAD, title="Per class" + (" (held-out accuracy)" if held else ""))
    table.add_column("class")
    table.add_column("training photos", justify="right")
    if held:
        table.add_column("held-out photos", justify="right")
        table.add_column("correct", justify="right")
        table.add_column("accuracy", justify="right")
    for name, c in summary["classes"].items():
        cells = [escape(name), str(c["train"])]
        if held:
            accuracy = "-" if c["val_accuracy"] is None else f"{c['val_accuracy']:.1%}"
            cells += [str(c["val"]), "-" if c["val_correct"] is None else str(c["val_correct"]), accuracy]
        table.add_row(*cells)
    console.print(table)
    last = summary["epochs"][-1]
    console.print(f"training accuracy (last epoch, augmented): {last['train_accuracy']:.1%}", highlight=False)
    if held:
        console.print(
            f"held-out accuracy: {summary['val_accuracy']:.1%} on {summary['val_images']} photos", highlight=False
        )
    else:
        console.print("no held-out photos (--val-fraction 0): no held-out accuracy", highlight=False)
    missing = [n for n, c in summary["classes"].items() if held and c["val"] == 0]
    if missing:
        err_console.print(f"[yellow]note:[/] no held-out photos of {escape(', '.join(missing))}", highlight=False)
    if summary["skipped"]:
        err_console.print(f"[yellow]{len(summary['skipped'])} file(s) skipped:[/]", highlight=False)
        for s in summary["skipped"]:
            err_console.print(f"  {escape(s['source'])}: {escape(s['reason'])}", highlight=False, soft_wrap=True)
    console.print(f"model saved to {escape(summary['model'])}", highlight=False, soft_wrap=True)
