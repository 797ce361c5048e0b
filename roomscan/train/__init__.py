"""Training and evaluation of DETR-family amenity detectors (RT-DETRv2, D-FINE) on roomscan datasets.

* :class:`TrainConfig` (``config.py``): one run's settings, validated, saved as ``config.yaml``.
* :func:`fit`, :func:`train_one_epoch`, :func:`overfit_batch` (``engine.py``): the training loop.
* ``model.py``: hub checkpoints and offline ``--scratch`` architectures (RT-DETRv2-R18, D-FINE-N), init prior.
* ``data.py``: dataset -> batches, the decoded-image cache.
* :func:`evaluate_predictions`, :func:`evaluate_detector` (``evaluate.py``): COCO metrics, PR curves, confusion.
* ``runs.py``: self-describing run directories (list, show, compare, checkpoints).
* ``distributed.py``: data-parallel training under ``torchrun`` (process group, shards, DDP, rank-0 work);
  ``rng.py``: the random state each checkpoint keeps, per process.

Heavy libraries (torch, transformers, pycocotools, matplotlib) load inside the functions that use them.
"""

from __future__ import annotations

from typing import Any

from roomscan.train.config import ConfigError, TrainConfig, load_config

__all__ = [
    "ConfigError",
    "EvalReport",
    "TrainConfig",
    "evaluate_detector",
    "evaluate_predictions",
    "fit",
    "load_config",
    "overfit_batch",
    "train_one_epoch",
]

_LAZY = {
    "fit": "engine", "overfit_batch": "engine", "train_one_epoch": "engine",
    "EvalReport": "evaluate", "evaluate_detector": "evaluate", "evaluate_predictions": "evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"roomscan.train.{_LAZY[name]}"), name)
    raise AttributeError(name)
