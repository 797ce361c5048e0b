"""A DETR-family detector trained by ``roomscan train``, seen the way the white-box test sees a classifier.

:func:`~roomscan.radioactive.verify.verify_whitebox` needs per-image features, the linear class head that reads
them, an input size and class names. RT-DETRv2 and D-FINE (transformers' ``AutoModelForObjectDetection``) score
each of their ``Q`` object queries with a linear class head over the decoder's output: one head per decoder layer,
of which the scoring layer's (the last; D-FINE's ``eval_idx``) scores the final boxes. :class:`DetectorFeatures`
exposes:

* ``features(pixels) -> [b, d_model]``: the scoring layer's query features, one row per image. ``pooling="top"``
  (the default) keeps the query with the highest class score of the image (any class): with one object per image it
  is the query that detects it: the Hungarian matcher gives each box one query, the only one trained to score the
  box's class high, so that query's features are what pulls the class's weight row towards a marked image's
  direction (the other queries are pushed to score every class low). ``pooling="weighted"`` averages all queries
  weighted by their best class probability, for images with several objects, at the cost of mixing in background
  queries;
* ``head``: that layer's ``nn.Linear(d_model, num_labels)``: row ``k`` is class ``k``'s weight, the row the test
  maps to the marking network's space and compares with class ``k``'s carrier;
* ``class_names``: the labels (``config.id2label``, the taxonomy's slugs for a ``roomscan train`` model);
* ``preprocess(images)``: the run's own image processor (resize, rescale, normalise), so features are those of
  the model as it was trained; ``image_size``: the processor's square side.

:func:`load_labelled_dataset` reads a roomscan detection dataset as held-out images, each with one class.

D-FINE adds a localisation-quality term to the head's logits (``lqe_layers``); the test reads only the linear
head's weights, which is where a class's training signal lands.

Example:
    >>> detector = load_detector("runs/rtdetr_v2_r18vd-20261203-0210")                 # doctest: +SKIP
    >>> detector.check_key(key)                                                         # doctest: +SKIP
    >>> verify_whitebox(detector, key, marking_net, held_out_images).p_value           # doctest: +SKIP
    0.43
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from PIL import Image
from torch import nn

from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import MarkingKey

if TYPE_CHECKING:
    from roomscan.radioactive.classifier import LabelledFolder

__all__ = ["POOLINGS", "DetectorFeatures", "load_detector", "load_labelled_dataset", "model_dir_of"]

Pooling = Literal["top", "weighted"]
POOLINGS: tuple[str, ...] = ("top", "weighted")
_MODEL_DIR = "model"  # roomscan.train.runs.MODEL_DIR: the run's best model
_CHECKPOINT = "checkpoint.pt"  # roomscan.train.runs.CHECKPOINT_FILE


class DetectorFeatures(nn.Module):
    """A transformers DETR-family detector with the classifier-shaped surface :func:`verify_whitebox` reads.

    Args:
        model: an ``RTDetrV2ForObjectDetection``, ``DFineForObjectDetection`` (or RT-DETR) model.
        processor: its image processor (the one it was trained with).
        pooling: how the queries of an image become one feature row (see the module docstring).

    Raises:
        RadioactiveError: a model without a decoder class head, a head whose rows disagree with the labels, a
            processor with a non-square size, an unknown ``pooling``.
    """

    def __init__(self, model: Any, processor: Any, *, pooling: Pooling = "top") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise RadioactiveError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.model = model.eval()
        self.processor = processor
        self.pooling = pooling
        self.head = _scoring_head(model)
        labels = dict(getattr(model.config, "id2label", None) or {})
        names = tuple(str(labels[i]) if i in labels else "" for i in range(self.head.out_features))
        if len(labels) != self.head.out_features or "" in names:
            raise RadioactiveError(
                f"the detector's class head scores {self.head.out_features} classes but its config names "
                f"{len(labels)} labels ({list(labels.values())}): the checkpoint is inconsistent; retrain or "
                "re-export it with roomscan train"
            )
        self.class_names = names
        size = dict(getattr(processor, "size", None) or {})
        height, width = size.get("height"), size.get("width")
        if not isinstance(height, int) or height != width:
            raise RadioactiveError(
                f"the detector's processor resizes to {size}, not to a square: the white-box test needs a square "
                "input size (roomscan train always uses one)"
            )
        self.image_size = int(height)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images -> the model's ``pixel_values [n, 3, S, S]``, through the run's processor."""
        rgb = [im.convert("RGB") for im in images]
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"]

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``pixel_values [b, 3, S, S]`` (from :meth:`preprocess`) -> one feature row per image ``[b, d_model]``."""
        out = self.model(pixel_values=pixel_values)
        hidden = out.last_hidden_state  # [b, q, d]: the scoring layer's query features (checked in _scoring_head)
        logits = out.logits  # [b, q, c]: the final scores (sigmoid per class for RT-DETR(v2) and D-FINE)
        best = logits.max(-1).values  # [b, q]
        if self.pooling == "top":
            index = best.argmax(1)  # [b]
            return hidden[torch.arange(len(hidden)), index]
        weights = torch.sigmoid(best)  # [b, q]
        return (weights[..., None] * hidden).sum(1) / weights.sum(1, keepdim=True)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.features(pixel_values)

    def check_key(self, key: MarkingKey) -> None:
        """Refuse a key this detector cannot be tested against: more classes than its head, or unknown classes."""
        missing = [c for c in key.names if c not in self.class_names]
        if len(key.names) > len(self.class_names):
            raise RadioactiveError(
                f"the key marks {len(key.names)} classes ({list(key.names)}) but the detector's class head scores "
                f"{len(self.class_names)} ({list(self.class_names)}): this detector was not trained on that "
                "dataset's classes; is this the right key or run?"
            )
        if missing:
            raise RadioactiveError(
                f"the key's classes {missing} are not labels of the detector (it knows {list(self.class_names)}): "
                "a key made on a dataset names classes by its taxonomy's slugs; is this the right key or run?"
            )


def _scoring_head(model: Any) -> nn.Linear:
    decoder = getattr(getattr(model, "model", None), "decoder", None)
    heads = getattr(decoder, "class_embed", None)
    if not isinstance(heads, nn.ModuleList) or not len(heads):
        raise RadioactiveError(
            f"{type(model).__name__} has no per-layer decoder class head (decoder.class_embed): the white-box test "
            "supports DETR-family detectors trained by roomscan train (RT-DETRv2, D-FINE)"
        )
    n_layers = len(getattr(decoder, "layers", heads))
    eval_idx = getattr(decoder, "eval_idx", len(heads) - 1)
    if eval_idx != n_layers - 1:
        # D-FINE scores with layer eval_idx; last_hidden_state is the last layer's output, another layer's.
        raise RadioactiveError(
            f"this detector scores boxes with decoder layer {eval_idx} of {n_layers}; only the last layer is "
            "supported (eval_idx = -1, the default)"
        )
    head = heads[eval_idx]
    if not isinstance(head, nn.Linear):
        raise RadioactiveError(f"the detector's class head is a {type(head).__name__}, not a linear layer")
    return head


def model_dir_of(path: str | os.PathLike[str]) -> Path:
    """The model directory of a ``roomscan train`` run directory, or ``path`` itself when it is one.

    Raises:
        RadioactiveError: no such directory, or a run directory without a model yet.
    """
    path = Path(path)
    if not path.is_dir():
        raise RadioactiveError(f"{path}: no such run or model directory; check the path")
    if (path / "config.json").is_file():
        return path
    if (path / _MODEL_DIR / "config.json").is_file():
        return path / _MODEL_DIR
    if (path / _CHECKPOINT).is_file() or (path / "config.yaml").is_file():
        raise RadioactiveError(
            f"{path}: this training run has no {_MODEL_DIR}/ yet (it is written at the end of the first epoch); "
            "wait for an epoch to finish, or give a run that has one"
        )
    raise RadioactiveError(
        f"{path}: neither a roomscan train run directory (with {_MODEL_DIR}/) nor a model directory (with "
        "config.json)"
    )


def load_detector(path: str | os.PathLike[str], *, pooling: Pooling = "top") -> DetectorFeatures:
    """Load a ``roomscan train`` run directory's best model (``RUN/model``), or a model directory, for testing.

    Raises:
        RadioactiveError: a missing directory, a run without a model, weights transformers cannot load, or a
            model that is not a DETR-family detector (see :class:`DetectorFeatures`).
    """
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    model_dir = model_dir_of(path)
    try:
        model = AutoModelForObjectDetection.from_pretrained(str(model_dir))
        processor = AutoImageProcessor.from_pretrained(str(model_dir))
    except Exception as exc:  # noqa: BLE001  # corrupt or foreign files raise library-specific errors
        raise RadioactiveError(
            f"{model_dir}: transformers cannot load this detector ({type(exc).__name__}: {exc}); is it a model "
            "directory written by roomscan train?"
        ) from None
    return DetectorFeatures(model, processor, pooling=pooling)


def load_labelled_dataset(root: str | os.PathLike[str]) -> LabelledFolder:
    """A roomscan detection dataset's photos, each labelled by one class, as held-out images for verification.

    A photo's class is the one whose boxes cover most of it (summed box areas), the rule ``roomscan mark`` marks
    dataset photos by; with one box per photo, that box's label. Photos without boxes and unreadable photos are
    skipped and named in ``skipped``; ``class_names`` are the classes found, sorted.

    Raises:
        RadioactiveError: an unreadable dataset, or no photo with a box.
    """
    import numpy as np

    from roomscan.data.dataset import DatasetError, DetectionDataset
    from roomscan.detection.image import load_image
    from roomscan.errors import ImageError
    from roomscan.radioactive.classifier import LabelledFolder
    from roomscan.radioactive.files import SkippedFile

    try:
        dataset = DetectionDataset.load(root)
    except DatasetError as exc:
        raise RadioactiveError(f"{root}: not a readable roomscan dataset ({exc})") from None
    slugs = dataset.taxonomy.slugs
    found: list[tuple[Image.Image, str, Path]] = []
    skipped: list[SkippedFile] = []
    for record, dets in dataset:
        path = dataset.path(record)
        if len(dets) == 0:
            skipped.append(SkippedFile(str(path), "no boxes, so no class"))
            continue
        area = (dets.xyxy[:, 2] - dets.xyxy[:, 0]) * (dets.xyxy[:, 3] - dets.xyxy[:, 1])  # [n_boxes]
        totals = np.bincount(np.asarray(dets.class_id, dtype=np.int64), weights=area, minlength=len(slugs))
        try:
            image = load_image(path).image
        except ImageError as exc:
            skipped.append(SkippedFile(str(path), str(exc)))
            continue
        found.append((image, slugs[int(np.argmax(totals))], path))
    if not found:
        raise RadioactiveError(f"{root}: no readable photo with a box; held-out photos need a class")
    names = tuple(sorted({name for _, name, _ in found}))
    return LabelledFolder(
        images=tuple(im for im, _, _ in found),
        labels=tuple(names.index(name) for _, name, _ in found),
        class_names=names,
        skipped=tuple(skipped),
        paths=tuple(p for _, _, p in found),
    )
