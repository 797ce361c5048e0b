"""An image classifier trained from scratch: the kind of model radioactive data is meant to catch.

The room-type classifier of a marketplace's listing photos, in small: :class:`ImageClassifier` is a plain
convolutional network (``"vgg"``: conv-BN-ReLU stages with max pooling) or a ResNet (``"resnet"``) with its own
widths, deliberately *not* the marking network's architecture, ending in global average pooling, an optional
hidden layer and a linear head. Its penultimate output (:meth:`ImageClassifier.features`, ``[b, d]``) and its head
(``nn.Linear(d, n_classes)``) are what white-box verification reads.

:func:`train_classifier` trains one with the standard training-time augmentation (random resized crop and flip:
the situation a mark must survive), deterministically for a seed. :func:`load_labelled_folder` reads a folder
with one sub-folder per class; :func:`save_classifier` / :func:`load_classifier` keep the model in a pickle-free
file (``weights_only=True``) with its config and class names.

Example:
    >>> from roomscan.radioactive.synthetic import make_pattern_images
    >>> data = make_pattern_images(8, n_classes=3, size=32)
    >>> config = ClassifierConfig(widths=(8, 16), image_size=32)
    >>> result = train_classifier(data.images, data.labels, data.names, config, epochs=1, seed=0)
    >>> result.model.features(torch.rand(2, 3, 32, 32)).shape, result.model.head.out_features
    (torch.Size([2, 16]), 3)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from roomscan.detection.image import IMAGE_SUFFIXES, load_image
from roomscan.errors import ImageError
from roomscan.radioactive._adam import Adam
from roomscan.radioactive._torchfile import load_weights, read_payload, write_payload
from roomscan.radioactive.augment import apply_augment, sample_params
from roomscan.radioactive.config import AugmentConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.files import SkippedFile
from roomscan.radioactive.network import _Block, images_to_tensor

__all__ = [
    "ARCHITECTURES",
    "ClassifierCheckpoint",
    "ClassifierConfig",
    "ClassifierTrainResult",
    "EpochStats",
    "ImageClassifier",
    "LabelledFolder",
    "accuracy",
    "load_classifier",
    "load_labelled_folder",
    "predict_logits",
    "save_classifier",
    "train_classifier",
]

ARCHITECTURES = ("vgg", "resnet")
_FILE_FORMAT = "roomscan-image-classifier"
_FILE_VERSION = 1
# What a trainer typically does to photos: crops keeping half the area or more, and flips. No blur: that stands in
# for JPEG re-encoding, which training does not do.
TRAIN_AUGMENT = AugmentConfig(crop_scale=(0.5, 1.0), blur_sigma=0.0)


@dataclass(frozen=True)
class ClassifierConfig:
    """The classifier to build.

    Attributes:
        architecture: ``"vgg"`` (``convs`` 3x3 conv-BN-ReLU layers per stage, 2x2 max pooling between stages) or
            ``"resnet"`` (``convs`` residual blocks per stage, stride-2 at each new stage).
        widths: channels of each stage; the last one is the feature dimension unless ``hidden`` is set.
        convs: conv layers (vgg) or residual blocks (resnet) per stage.
        hidden: a hidden fully connected layer (ReLU) after pooling, of this size; 0 for none. When set it is the
            penultimate layer, so the feature dimension is ``hidden``.
        image_size: the square side images are resized to.
        mean, std: per-channel normalisation of pixels in ``[0, 1]``, applied inside the model.

    Example:
        >>> ClassifierConfig(widths=(16, 32), hidden=24).feature_dim
        24
    """

    architecture: str = "vgg"
    widths: tuple[int, ...] = (32, 64, 96)
    convs: int = 2
    hidden: int = 0
    image_size: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise RadioactiveError(
                f"unknown classifier architecture {self.architecture!r}; choose one of {list(ARCHITECTURES)}"
            )
        if not self.widths or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths
        ):
            raise RadioactiveError(f"widths must be positive whole channel counts (got {self.widths!r})")
        for name in ("convs", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "convs" else 0):
                raise RadioactiveError(
                    f"{name} must be a whole number >= {1 if name == 'convs' else 0} (got {value!r})"
                )
        if self.feature_dim < 2:
            raise RadioactiveError("the feature dimension (last width, or hidden) must be at least 2")
        if (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or not 16 <= self.image_size <= 1024
        ):
            raise RadioactiveError(
                f"image_size must be a whole number of pixels in 16..1024 (got {self.image_size!r})"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise RadioactiveError("mean and std need three values each (R, G, B), std all positive")

    @property
    def feature_dim(self) -> int:
        return self.hidden or self.widths[-1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ClassifierConfig:
        """Build from a mapping (e.g. YAML or a saved model); unknown or malformed settings are a clear error."""
        if not isinstance(data, dict):
            raise RadioactiveError(
                f"the classifier config must be a mapping of settings, not {type(data).__name__}"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RadioactiveError(
                f"the classifier config has unknown settings {unknown}; known: {sorted(names)}"
            )
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**values)
        except TypeError as exc:
            raise RadioactiveError(f"the classifier config is malformed: {exc}") from None


def _vgg_trunk(config: ClassifierConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for i, width in enumerate(config.widths):
        if i > 0:
            layers.append(nn.MaxPool2d(2))
        for _ in range(config.convs):
            layers += [nn.Conv2d(c_in, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
    return nn.Sequential(*layers)


def _resnet_trunk(config: ClassifierConfig) -> nn.Sequential:
    w0 = config.widths[0]
    layers: list[nn.Module] = [nn.Conv2d(3, w0, 3, 1, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU()]
    c_in = w0
    for i, width in enumerate(config.widths):
        for j in range(config.convs):
            layers.append(_Block(c_in, width, 2 if (i > 0 and j == 0) else 1))
            c_in = width
    return nn.Sequential(*layers)


class ImageClassifier(nn.Module):
    """A classifier over ``class_names``: ``forward(pixels [b, 3, S, S] in [0, 1]) -> logits [b, n_classes]``.

    Attributes:
        config: how it was built.
        class_names: the name of each logit, in order.
        head: ``nn.Linear(config.feature_dim, len(class_names))``; its rows are the class weights verification tests.
    """

    mean: torch.Tensor  # buffers, [1, 3, 1, 1]
    std: torch.Tensor

    def __init__(self, config: ClassifierConfig, class_names: Sequence[str]) -> None:
        super().__init__()
        names = tuple(class_names)
        if (
            len(names) < 2
            or len(set(names)) != len(names)
            or any(not isinstance(n, str) or not n for n in names)
        ):
            raise RadioactiveError(
                f"a classifier needs at least two unique, non-empty class names (got {list(names)})"
            )
        self.config = config
        self.class_names = names
        self.image_size = config.image_size
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self.trunk = _vgg_trunk(config) if config.architecture == "vgg" else _resnet_trunk(config)
        self.neck: nn.Module = (
            nn.Sequential(nn.Linear(config.widths[-1], config.hidden), nn.ReLU())
            if config.hidden
            else nn.Identity()
        )
        self.head = nn.Linear(config.feature_dim, len(names))

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[b, feature_dim]`` of pixels ``[b, 3, H, W]`` in ``[0, 1]``."""
        z = self.trunk((x - self.mean) / self.std).mean(dim=(2, 3))  # [b, widths[-1]]
        return self.neck(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # [b, n_classes]


@dataclass(frozen=True)
class EpochStats:
    """One epoch of training: mean cross-entropy and accuracy on the (augmented) training images."""

    epoch: int
    loss: float
    accuracy: float


@dataclass(frozen=True)
class ClassifierCheckpoint:
    """Training after ``epoch`` epochs: given back to :func:`train_classifier` as ``resume_from`` (with the same
    images, labels and settings), training continues exactly as if it had never stopped.

    Attributes:
        epoch: epochs done.
        history: their :class:`EpochStats`.
        model: the model's ``state_dict`` (weights and batch-norm statistics), copied.
        optimizer: the optimiser's state (``m``, ``v``: one tensor per parameter; ``t``: steps taken).
        generator: the state of the generator that shuffles and augments (a ``uint8`` tensor).
    """

    epoch: int
    history: tuple[EpochStats, ...]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    generator: torch.Tensor


@dataclass(frozen=True)
class ClassifierTrainResult:
    """A trained classifier (eval mode) and its per-epoch history."""

    model: ImageClassifier
    history: tuple[EpochStats, ...]


def _labels_as_indices(labels: Sequence[int | str], class_names: Sequence[str]) -> torch.Tensor:
    out = []
    for i, label in enumerate(labels):
        if isinstance(label, str):
            if label not in class_names:
                raise RadioactiveError(
                    f"image {i} has label {label!r}, which is not one of the classes {list(class_names)}"
                )
            out.append(list(class_names).index(label))
        elif (
            isinstance(label, (int, np.integer))
            and not isinstance(label, bool)
            and 0 <= label < len(class_names)
        ):
            out.append(int(label))
        else:
            raise RadioactiveError(
                f"image {i} has label {label!r}: give a class name or an index in 0..{len(class_names) - 1}"
            )
    return torch.as_tensor(out, dtype=torch.long)


def train_classifier(
    images: Sequence[Image.Image],
    labels: Sequence[int | str],
    class_names: Sequence[str],
    config: ClassifierConfig,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 5e-4,
    augment: bool | AugmentConfig = True,
    on_progress: Callable[[int, int, float, float], None] | None = None,
    on_epoch_end: Callable[[ImageClassifier, ClassifierCheckpoint], None] | None = None,
    resume_from: ClassifierCheckpoint | None = None,
) -> ClassifierTrainResult:
    """Train an :class:`ImageClassifier` from scratch (cross-entropy, Adam, cosine learning rate).

    Args:
        images: training images, any sizes (resized to ``config.image_size``).
        labels: per image a class index into ``class_names`` or a class name.
        class_names: the classes, in the order of the model's logits.
        config: the model to build.
        epochs: passes over the data.
        seed: seeds the initial weights, the shuffling and the augmentation; the same seed gives the same model.
        batch_size, lr, weight_decay: the optimiser's settings.
        augment: ``True`` for :data:`TRAIN_AUGMENT` (random resized crop + flip), an :class:`AugmentConfig`, or
            ``False`` for none.
        on_progress: called after each epoch with ``(epoch, epochs, mean loss, training accuracy)``.
        on_epoch_end: called after each epoch (after ``on_progress``) with the model being trained (e.g. to
            measure held-out accuracy; it may switch it to eval mode) and a :class:`ClassifierCheckpoint` to save.
        resume_from: a checkpoint from ``on_epoch_end`` of a run with the same data and settings: continue it.

    Raises:
        RadioactiveError: no images, lengths that differ, a label outside the classes, bad settings, a checkpoint
            that does not fit the config or is past ``epochs``.
    """
    if not images or len(images) != len(labels):
        raise RadioactiveError(
            f"{len(images)} images and {len(labels)} labels: give one label per image, at least one"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1 or batch_size < 1 or lr <= 0:
        raise RadioactiveError("epochs and batch_size must be whole numbers >= 1 and lr positive")
    y = _labels_as_indices(labels, class_names)
    aug = TRAIN_AUGMENT if augment is True else (augment or None)
    with torch.random.fork_rng(
        devices=[]
    ):  # seed the initial weights without touching the caller's global RNG
        torch.manual_seed(seed)
        model = ImageClassifier(config, class_names)
    generator = torch.Generator().manual_seed(seed)
    x = images_to_tensor(images, config.image_size)  # [n, 3, S, S]
    optimizer = Adam(list(model.parameters()), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total_steps, step = epochs * steps_per_epoch, 0
    history: list[EpochStats] = []
    if resume_from is not None:
        _restore(resume_from, model, optimizer, generator, epochs)
        history, step = list(resume_from.history), resume_from.epoch * steps_per_epoch
    for epoch in range(len(history) + 1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            xb = x[idx]
            if aug is not None:
                xb = apply_augment(
                    xb, sample_params(len(idx), xb.shape[2], xb.shape[3], aug, generator), config.image_size
                )
            logits = model(xb)
            loss = F.cross_entropy(logits, y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.lr = lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            optimizer.step()
            step += 1
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        history.append(EpochStats(epoch, total / len(x), correct / len(x)))
        if on_progress is not None:
            on_progress(epoch, epochs, history[-1].loss, history[-1].accuracy)
        if on_epoch_end is not None:
            on_epoch_end(model, _checkpoint(epoch, history, model, optimizer, generator))
    return ClassifierTrainResult(model.eval(), tuple(history))


def _checkpoint(
    epoch: int, history: list[EpochStats], model: nn.Module, optimizer: Adam, generator: torch.Generator
) -> ClassifierCheckpoint:
    return ClassifierCheckpoint(
        epoch=epoch,
        history=tuple(history),
        model={k: v.detach().clone() for k, v in model.state_dict().items()},
        optimizer={
            "m": [m.clone() for m in optimizer.m],
            "v": [v.clone() for v in optimizer.v],
            "t": optimizer.t,
        },
        generator=generator.get_state(),
    )


def _restore(
    checkpoint: ClassifierCheckpoint,
    model: nn.Module,
    optimizer: Adam,
    generator: torch.Generator,
    epochs: int,
) -> None:
    if not 1 <= checkpoint.epoch <= epochs or len(checkpoint.history) != checkpoint.epoch:
        raise RadioactiveError(
            f"the checkpoint is after epoch {checkpoint.epoch}, with {len(checkpoint.history)} epochs of history; "
            f"it cannot continue a run of {epochs} epochs"
        )
    m, v = checkpoint.optimizer.get("m"), checkpoint.optimizer.get("v")
    if not (isinstance(m, list) and isinstance(v, list) and len(m) == len(v) == len(optimizer.m)):
        raise RadioactiveError("the checkpoint's optimiser state does not fit this model")
    try:
        model.load_state_dict(checkpoint.model, strict=True)
        for target, saved in zip(optimizer.m + optimizer.v, m + v, strict=True):
            target.copy_(saved)
        generator.set_state(checkpoint.generator)
    except RuntimeError as exc:
        raise RadioactiveError(
            f"the checkpoint does not fit this model: {str(exc).splitlines()[0]}"
        ) from None
    optimizer.t = int(checkpoint.optimizer.get("t", 0))


def predict_logits(
    model: ImageClassifier, images: Sequence[Image.Image], *, batch_size: int = 64
) -> torch.Tensor:
    """Logits ``[n, n_classes]`` of PIL images (resized to the model's ``image_size``), eval mode, no gradient."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            out.append(model(images_to_tensor(images[start : start + batch_size], model.image_size)))
    return torch.cat(out) if out else torch.zeros(0, len(model.class_names))


def accuracy(model: ImageClassifier, images: Sequence[Image.Image], labels: Sequence[int | str]) -> float:
    """The fraction of ``images`` whose top logit is their label (an index or a class name)."""
    if not images or len(images) != len(labels):
        raise RadioactiveError(
            f"{len(images)} images and {len(labels)} labels: give one label per image, at least one"
        )
    y = _labels_as_indices(labels, model.class_names)
    return float((predict_logits(model, images).argmax(1) == y).float().mean())


def save_classifier(model: ImageClassifier, path: str | os.PathLike[str]) -> Path:
    """Save config, class names and weights (loadable with ``weights_only=True``), atomically."""
    if not isinstance(model, ImageClassifier):
        raise RadioactiveError("save_classifier saves roomscan's ImageClassifier")
    payload = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "config": model.config.to_dict(),
        "class_names": list(model.class_names),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    return write_payload(payload, path, prefix="classifier")


def load_classifier(path: str | os.PathLike[str]) -> ImageClassifier:
    """Read a classifier written by :func:`save_classifier`, in eval mode.

    Raises:
        RadioactiveError: a missing file, a file that is not a saved classifier (a marking network, a foreign
            checkpoint, random bytes), or weights that do not fit the stored config.
    """
    path, payload = read_payload(
        path,
        kind="image classifier",
        file_kind="classifier",
        writer="save_classifier",
        file_format=_FILE_FORMAT,
        version=_FILE_VERSION,
    )
    config = ClassifierConfig.from_dict(payload.get("config"))
    names = payload.get("class_names")
    if not isinstance(names, list):
        raise RadioactiveError(f"{path}: not a roomscan image classifier: it has no class names")
    model = ImageClassifier(config, names)
    load_weights(model, payload, path, "image classifier")
    return model.eval()


@dataclass(frozen=True)
class LabelledFolder:
    """Images read from a folder with one sub-folder per class (iterable as ``images, labels, names, skipped``)."""

    images: tuple[Image.Image, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    paths: tuple[Path, ...]

    def __iter__(self) -> Iterator[Any]:
        """Unpack as ``images, labels, class_names, skipped``."""
        return iter((self.images, self.labels, self.class_names, self.skipped))


def load_labelled_folder(directory: str | os.PathLike[str]) -> LabelledFolder:
    """Read ``directory/<class>/<image>``: class names are the sub-folders' names, sorted.

    Unreadable images are skipped and named in ``skipped`` (with the reason); so are files lying directly in
    ``directory`` and class folders with no readable image. Hidden files and folders are ignored.

    Raises:
        RadioactiveError: a missing path, a file instead of a folder, no class sub-folders, or no readable image.
    """
    root = Path(directory)
    if not root.exists():
        raise RadioactiveError(f"{root}: no such folder; check the path")
    if not root.is_dir():
        raise RadioactiveError(f"{root}: is a file; give a folder with one sub-folder per class")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in entries if p.is_dir()]
    skipped = [SkippedFile(str(p), "not in a class sub-folder") for p in entries if p.is_file()]
    if not class_dirs:
        raise RadioactiveError(
            f"{root}: no class sub-folders; put each class's images in its own folder, e.g. {root / 'kitchen'}/1.jpg"
        )
    images: list[Image.Image] = []
    labels: list[int] = []
    paths: list[Path] = []
    names: list[str] = []
    for class_dir in class_dirs:
        found = 0
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(
                    SkippedFile(str(path), f"not an image file name ({', '.join(IMAGE_SUFFIXES)})")
                )
                continue
            try:
                image = load_image(path).image
            except ImageError as exc:
                skipped.append(SkippedFile(str(path), str(exc)))
                continue
            images.append(image)
            labels.append(len(names))
            paths.append(path)
            found += 1
        if found:
            names.append(class_dir.name)
        else:
            skipped.append(
                SkippedFile(str(class_dir), "no readable image in this class folder; class left out")
            )
    if not images:
        raise RadioactiveError(
            f"{root}: no readable image in any class folder ({len(skipped)} files skipped)"
        )
    return LabelledFolder(tuple(images), tuple(labels), tuple(names), tuple(skipped), tuple(paths))
