"""What a training run of :func:`~roomscan.radioactive.classifier.train_classifier` needs around it: a seeded,
stratified held-out split, per-class accuracy, and a checkpoint file to continue an interrupted run from.

A checkpoint file holds a :class:`~roomscan.radioactive.classifier.ClassifierCheckpoint` plus a ``run`` mapping of
plain values (the config, the class names, the settings, a fingerprint of the data) that the caller compares
before resuming; it is written atomically and read with ``weights_only=True`` (no pickle), like a saved classifier.

Example:
    >>> train, held = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], 0.25, seed=0)
    >>> len(train), len(held)
    (6, 2)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from roomscan.radioactive._torchfile import read_payload, write_payload
from roomscan.radioactive.classifier import ClassifierCheckpoint, EpochStats, ImageClassifier, predict_logits
from roomscan.radioactive.errors import RadioactiveError

__all__ = [
    "checkpoint_path_for",
    "class_accuracies",
    "data_fingerprint",
    "load_checkpoint",
    "save_checkpoint",
    "stratified_split",
]

_CHECKPOINT_FORMAT = "roomscan-classifier-checkpoint"
_CHECKPOINT_VERSION = 1


def stratified_split(
    labels: Sequence[int], fraction: float, *, seed: int, class_names: Sequence[str] | None = None
) -> tuple[list[int], list[int]]:
    """Indices ``(train, held_out)``: ``round(fraction * n)`` of each class's ``n`` images (at least one) held out,
    chosen at random for ``seed``; both lists sorted.

    Raises:
        RadioactiveError: ``fraction`` outside (0, 1), or a class with too few images to keep one on each side.
    """
    if not 0 < fraction < 1:
        raise RadioactiveError(f"the held-out fraction must be in (0, 1), got {fraction:g}")
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    train: list[int] = []
    held: list[int] = []
    for k in np.unique(y):
        members = np.flatnonzero(y == k)
        n_held = max(1, round(fraction * len(members)))
        if len(members) - n_held < 1:
            name = class_names[int(k)] if class_names is not None else str(int(k))
            raise RadioactiveError(
                f"class {name!r} has {len(members)} image(s): too few to hold out {fraction:g} of them "
                "and still train on one"
            )
        chosen = rng.permutation(members)
        held += chosen[:n_held].tolist()
        train += chosen[n_held:].tolist()
    return sorted(train), sorted(held)


def class_accuracies(
    model: ImageClassifier, images: Sequence[Image.Image], labels: Sequence[int]
) -> dict[str, tuple[int, int]]:
    """Per class of ``model`` that has images here: ``(correct, images)``; ``labels`` index ``model.class_names``."""
    if len(images) != len(labels):
        raise RadioactiveError(f"{len(images)} images and {len(labels)} labels: give one label per image")
    predicted = predict_logits(model, images).argmax(1).tolist() if images else []
    out: dict[str, tuple[int, int]] = {}
    for k, name in enumerate(model.class_names):
        hits = [p == k for p, y in zip(predicted, labels, strict=True) if y == k]
        if hits:
            out[name] = (sum(hits), len(hits))
    return out


def data_fingerprint(paths: Sequence[Path], labels: Sequence[int], root: Path) -> str:
    """SHA-256 of each image's path under ``root``, label and size: it changes when images are added, removed,
    relabelled or rewritten with another size, which a resumed run must not see."""
    digest = hashlib.sha256()
    for path, label in zip(paths, labels, strict=True):
        digest.update(f"{path.relative_to(root).as_posix()}\0{label}\0{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def checkpoint_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Where a training run writing ``model_path`` keeps its checkpoint: beside it, ``NAME.checkpoint.pt``."""
    path = Path(model_path)
    return path.with_name(path.stem + ".checkpoint.pt")


def save_checkpoint(
    checkpoint: ClassifierCheckpoint, path: str | os.PathLike[str], *, run: dict[str, Any]
) -> Path:
    """Write ``checkpoint`` and ``run`` (plain values: str, int, float, bool, None, lists, dicts) atomically."""
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "version": _CHECKPOINT_VERSION,
        "epoch": checkpoint.epoch,
        "history": [[h.epoch, h.loss, h.accuracy] for h in checkpoint.history],
        "model": checkpoint.model,
        "optimizer": checkpoint.optimizer,
        "generator": checkpoint.generator,
        "run": run,
    }
    return write_payload(payload, path, prefix="checkpoint")


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[ClassifierCheckpoint, dict[str, Any]]:
    """Read a file written by :func:`save_checkpoint`: the checkpoint and its ``run`` mapping.

    Raises:
        RadioactiveError: a missing file, or one that is not a roomscan classifier checkpoint.
    """
    path, payload = read_payload(
        path,
        kind="classifier training checkpoint",
        file_kind="checkpoint",
        writer="roomscan train-classifier",
        file_format=_CHECKPOINT_FORMAT,
        version=_CHECKPOINT_VERSION,
    )
    try:
        history = tuple(EpochStats(int(e), float(loss), float(acc)) for e, loss, acc in payload["history"])
        checkpoint = ClassifierCheckpoint(
            epoch=int(payload["epoch"]),
            history=history,
            model=dict(payload["model"]),
            optimizer=dict(payload["optimizer"]),
            generator=payload["generator"],
        )
        run = payload["run"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RadioactiveError(
            f"{path}: a damaged checkpoint ({exc}); start the run again without resuming"
        ) from None
    if not isinstance(run, dict) or not isinstance(checkpoint.generator, torch.Tensor):
        raise RadioactiveError(f"{path}: a damaged checkpoint; start the run again without resuming")
    return checkpoint, run
