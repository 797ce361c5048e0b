"""Radioactive data: mark published photos imperceptibly, then test whether a model was trained on them.

The method of Sablayrolles, Douze, Schmid and Jégou ("Radioactive data: tracing through training", ICML 2020),
implemented from the paper. A fixed *marking network* ``phi`` maps images to features in ``d`` dimensions; each
class (or set of unlabelled photos) gets a random unit *carrier* ``u_k`` there; each published image of class ``k``
is changed, within an L-infinity bound and above a PSNR floor, so that ``phi`` of it (under random crops, flips and
blur) moves along ``u_k``. A classifier trained on enough marked images learns class weights that lean towards the
carriers; under the null hypothesis (never trained on them) the cosine between a weight and its carrier follows an
exact, known law, so the lean becomes a p-value.

Modules:

* ``stats``: :func:`cosine_pvalue` (exact null law), :func:`combine_pvalues` (Fisher), :func:`random_carriers`.
* ``key``: :class:`MarkingKey` (carriers, network identity, settings, marked files; a pickle-free ``.npz``).
* ``config``: :class:`NetworkConfig`, :class:`AugmentConfig`.
* ``network`` (torch): :class:`MarkingNetwork`, :class:`PretrainedBackbone`, :func:`train_marking_network`,
  :func:`save_network` / :func:`load_network`, :func:`network_identity`, :func:`weights_sha256`.
* ``augment`` (torch): differentiable random resized crop, flip and blur.
* ``mark`` (torch): :func:`mark_images` (PIL images -> :class:`MarkedImage`), :func:`psnr`.
* ``files`` (torch): :func:`mark_files` (photo files -> marked copies in the same format, checked as written).
* ``synthetic``: :func:`make_pattern_images`, labelled generated images to train a marking network on.
* ``classifier`` (torch): :class:`ImageClassifier` (a VGG-style or ResNet classifier, not the marking network's
  architecture), :func:`train_classifier`, :func:`load_labelled_folder`, :func:`save_classifier` /
  :func:`load_classifier`, :func:`accuracy`: the kind of model verification tests.
* ``detector`` (torch): :class:`DetectorFeatures`, :func:`load_detector`: a DETR-family detector trained by
  ``roomscan train`` (its decoder's query features and class head), testable by :func:`verify_whitebox`.
* ``verify`` (torch): :func:`verify_whitebox` (class weights vs carriers, through a least-squares alignment of
  feature spaces), :func:`verify_blackbox` (loss on marked copies vs originals), :func:`verdict_text`.

The torch-based names load on first use, so ``import roomscan.radioactive`` stays light.

Example:
    >>> from roomscan.radioactive import random_carriers, cosine_pvalue, combine_pvalues
    >>> u = random_carriers(3, 128, seed=0)
    >>> combine_pvalues(cosine_pvalue([0.3, 0.25, 0.28], 128)) < 1e-6
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from roomscan.radioactive.config import AugmentConfig, NetworkConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import KEY_FORMAT_VERSION, MarkedFile, MarkingKey, NetworkIdentity
from roomscan.radioactive.stats import combine_pvalues, cosine_pvalue, random_carriers, row_cosines
from roomscan.radioactive.synthetic import PatternImages, make_pattern_images

_LAZY = {
    "MarkingNetwork": "network",
    "PretrainedBackbone": "network",
    "TrainResult": "network",
    "features": "network",
    "load_network": "network",
    "network_identity": "network",
    "save_network": "network",
    "train_marking_network": "network",
    "weights_sha256": "network",
    "MarkedImage": "mark",
    "linf_distance": "mark",
    "mark_images": "mark",
    "psnr": "mark",
    "MarkFilesResult": "files",
    "SkippedFile": "files",
    "estimate_jpeg_quality": "files",
    "mark_files": "files",
    "ClassifierConfig": "classifier",
    "ClassifierTrainResult": "classifier",
    "ImageClassifier": "classifier",
    "accuracy": "classifier",
    "load_classifier": "classifier",
    "load_labelled_folder": "classifier",
    "predict_logits": "classifier",
    "save_classifier": "classifier",
    "train_classifier": "classifier",
    "DetectorFeatures": "detector",
    "load_detector": "detector",
    "BlackboxResult": "verify",
    "ClassTest": "verify",
    "Verdict": "verify",
    "WhiteboxResult": "verify",
    "verdict_text": "verify",
    "verify_blackbox": "verify",
    "verify_whitebox": "verify",
}

__all__ = [
    "KEY_FORMAT_VERSION",
    "AugmentConfig",
    "BlackboxResult",
    "ClassTest",
    "ClassifierConfig",
    "ClassifierTrainResult",
    "DetectorFeatures",
    "ImageClassifier",
    "MarkFilesResult",
    "MarkedFile",
    "MarkedImage",
    "MarkingKey",
    "MarkingNetwork",
    "NetworkConfig",
    "NetworkIdentity",
    "PatternImages",
    "PretrainedBackbone",
    "RadioactiveError",
    "SkippedFile",
    "TrainResult",
    "Verdict",
    "WhiteboxResult",
    "accuracy",
    "combine_pvalues",
    "cosine_pvalue",
    "estimate_jpeg_quality",
    "features",
    "linf_distance",
    "load_classifier",
    "load_detector",
    "load_labelled_folder",
    "load_network",
    "make_pattern_images",
    "mark_files",
    "mark_images",
    "network_identity",
    "predict_logits",
    "psnr",
    "random_carriers",
    "row_cosines",
    "save_classifier",
    "save_network",
    "train_classifier",
    "train_marking_network",
    "verdict_text",
    "verify_blackbox",
    "verify_whitebox",
    "weights_sha256",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roomscan.radioactive' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(f"roomscan.radioactive.{module}"), name)
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise RadioactiveError(f"{name} needs torch: pip install 'roomscan[radioactive]'") from exc
    globals()[name] = value
    return value
