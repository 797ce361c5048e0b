"""The marking network: a fixed feature extractor whose feature space holds the carriers.

Two kinds plug in, both ``torch.nn.Module`` taking pixels ``[b, 3, H, W]`` in ``[0, 1]`` (normalisation is inside)
and returning features ``[b, d]``:

* :class:`MarkingNetwork`, roomscan's own small ResNet (:class:`~roomscan.radioactive.config.NetworkConfig`),
  trained here by :func:`train_marking_network` on any labelled images (e.g.
  :func:`~roomscan.radioactive.synthetic.make_pattern_images` when nothing else is at hand), saved with
  :func:`save_network` and read back with :func:`load_network`.
* :class:`PretrainedBackbone`, any module you already have, e.g. a torchvision ResNet-18 fetched on a connected
  machine with its classifier removed::

      import torchvision
      resnet = torchvision.models.resnet18(weights="IMAGENET1K_V1")
      resnet.fc = torch.nn.Identity()                                  # [b, 3, H, W] -> [b, 512]
      net = PretrainedBackbone(resnet, name="torchvision-resnet18-imagenet1k-v1", feature_dim=512,
                               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), image_size=224)

  Keep the weights file with the key: verification needs the very same weights (the key stores their SHA-256).

Example:
    >>> from roomscan.radioactive.synthetic import make_pattern_images
    >>> data = make_pattern_images(8, n_classes=3, size=32)
    >>> result = train_marking_network(data.images, data.labels, NetworkConfig(widths=(8, 16), image_size=32),
    ...                                epochs=1, seed=0)
    >>> result.network(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from roomscan.radioactive._adam import Adam
from roomscan.radioactive._torchfile import load_weights, read_payload, write_payload
from roomscan.radioactive.augment import apply_augment, sample_params, to_network_input
from roomscan.radioactive.config import AugmentConfig, NetworkConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import NetworkIdentity

__all__ = [
    "FeatureNetwork",
    "MarkingNetwork",
    "PretrainedBackbone",
    "TrainResult",
    "features",
    "images_to_tensor",
    "load_network",
    "network_identity",
    "pil_to_tensor",
    "save_network",
    "train_marking_network",
    "weights_sha256",
]

ARCHITECTURE = "resnet-small"
_FILE_FORMAT = "roomscan-marking-network"
_FILE_VERSION = 1
# Training sees crops and flips like marking does; a lighter blur, since training images are not re-encoded.
_TRAIN_AUGMENT = AugmentConfig(blur_sigma=0.5)


@runtime_checkable
class FeatureNetwork(Protocol):
    """What marking needs of a network (both classes here satisfy it)."""

    architecture: str
    feature_dim: int
    image_size: int

    def identity_config(self) -> dict[str, Any]: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class MarkingNetwork(nn.Module):
    """roomscan's small ResNet: stem, one stage per width (each after the first halves the size), global average pool.

    ``forward`` takes pixels ``[b, 3, H, W]`` in ``[0, 1]`` (any size; resize to ``config.image_size`` first for the
    features the network was trained on) and returns features ``[b, config.feature_dim]``.
    """

    architecture = ARCHITECTURE
    mean: torch.Tensor  # buffers, [1, 3, 1, 1]
    std: torch.Tensor

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_dim = config.feature_dim
        self.image_size = config.image_size
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        w0 = config.widths[0]
        self.stem = nn.Sequential(nn.Conv2d(3, w0, 3, 1, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU())
        layers: list[nn.Module] = []
        c_in = w0
        for i, width in enumerate(config.widths):
            for j in range(config.blocks):
                layers.append(_Block(c_in, width, 2 if (i > 0 and j == 0) else 1))
                c_in = width
        self.stages = nn.Sequential(*layers)

    def identity_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.stages(self.stem((x - self.mean) / self.std))  # [b, d, h, w]
        return z.mean(dim=(2, 3))  # [b, d]


class PretrainedBackbone(nn.Module):
    """Wrap any feature extractor (``[b, 3, H, W]`` normalised -> ``[b, d]``, or ``[b, d, 1, 1]``) as a marking network.

    Args:
        module: the backbone; it receives ``(pixels - mean) / std`` and is put in eval mode.
        name: a name that identifies architecture *and* weights source (stored in keys; pick one and keep it).
        feature_dim: ``d``, the size of its output features.
        mean, std: the normalisation the backbone was trained with, per RGB channel, for pixels in ``[0, 1]``.
        image_size: the square side images are resized to before it sees them.
    """

    mean: torch.Tensor  # buffers, [1, 3, 1, 1]
    std: torch.Tensor

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        feature_dim: int,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        image_size: int = 224,
    ) -> None:
        super().__init__()
        if not name:
            raise RadioactiveError("a pretrained backbone needs a name that identifies it")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise RadioactiveError("mean and std need three values each (R, G, B), std all positive")
        if feature_dim < 2 or not 16 <= image_size <= 1024:
            raise RadioactiveError("feature_dim must be >= 2 and image_size in 16..1024")
        self.module = module.eval()
        self.architecture = name
        self.feature_dim = int(feature_dim)
        self.image_size = int(image_size)
        self._mean, self._std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.register_buffer("mean", torch.tensor(self._mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self._std).view(1, 3, 1, 1), persistent=False)

    def identity_config(self) -> dict[str, Any]:
        return {"mean": list(self._mean), "std": list(self._std), "image_size": self.image_size}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.module((x - self.mean) / self.std)
        z = z.reshape(z.shape[0], -1)
        if z.shape[1] != self.feature_dim:
            raise RadioactiveError(
                f"backbone {self.architecture} gives {z.shape[1]} features, not the feature_dim={self.feature_dim} declared"
            )
        return z


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes and values, in name order): its weights' identity."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            t = t.float()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def network_identity(network: FeatureNetwork) -> NetworkIdentity:
    """The identity a :class:`~roomscan.radioactive.key.MarkingKey` records for ``network``."""
    if not isinstance(network, nn.Module) or not isinstance(network, FeatureNetwork):
        raise RadioactiveError(
            "the marking network must be a MarkingNetwork or PretrainedBackbone (a torch module with architecture, "
            "feature_dim, image_size and identity_config)"
        )
    return NetworkIdentity(
        architecture=network.architecture,
        config=network.identity_config(),
        weights_sha256=weights_sha256(network),
        feature_dim=int(network.feature_dim),
    )


def save_network(network: MarkingNetwork, path: str | os.PathLike[str]) -> Path:
    """Save a :class:`MarkingNetwork` (config + state dict, loadable with ``weights_only=True``); atomic."""
    if not isinstance(network, MarkingNetwork):
        raise RadioactiveError(
            "save_network saves roomscan's MarkingNetwork; keep a pretrained backbone's own file"
        )
    payload = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "architecture": ARCHITECTURE,
        "config": network.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
    }
    return write_payload(payload, path, prefix="marking-network")


def load_network(path: str | os.PathLike[str]) -> MarkingNetwork:
    """Read a network written by :func:`save_network`, in eval mode.

    Raises:
        RadioactiveError: a missing file, a file that is not a saved marking network, or weights that do not fit
            the config stored with them.
    """
    path, payload = read_payload(
        path, kind="marking network", writer="save_network", file_format=_FILE_FORMAT, version=_FILE_VERSION
    )
    if payload.get("architecture") != ARCHITECTURE:
        raise RadioactiveError(
            f"{path}: unknown architecture {payload.get('architecture')!r} (expected {ARCHITECTURE})"
        )
    network = MarkingNetwork(NetworkConfig.from_dict(payload.get("config")))
    load_weights(network, payload, path, "marking network")
    return network.eval()


def images_to_tensor(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """PIL images -> float pixels ``[n, 3, size, size]`` in ``[0, 1]``, resized exactly as marking resizes them."""
    out = [to_network_input(pil_to_tensor(im), size) for im in images]
    return torch.cat(out) if out else torch.zeros(0, 3, size, size)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """One PIL image -> ``[1, 3, H, W]`` float pixels in ``[0, 1]`` (converted to RGB)."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1)[None].div_(255.0)


@dataclass(frozen=True)
class TrainResult:
    """A trained marking network (eval mode), the linear classifier trained with it, per-epoch loss and accuracy.

    ``head`` maps the network's features to class logits; marking needs only ``network``, but with ``head`` the
    pair is a classifier of the marker's own architecture (the paper's main setting when trained with another seed).
    """

    network: MarkingNetwork
    losses: tuple[float, ...]
    accuracies: tuple[float, ...]
    head: nn.Linear


def train_marking_network(
    images: Sequence[Image.Image],
    labels: Sequence[int],
    config: NetworkConfig,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    augment: AugmentConfig | None = _TRAIN_AUGMENT,
    on_progress: Callable[[int, int, float, float], None] | None = None,
) -> TrainResult:
    """Train a :class:`MarkingNetwork` as a classifier (a linear head, cross-entropy), then keep its feature extractor.

    Args:
        images: the training images (any sizes; resized to ``config.image_size``).
        labels: one class index per image, ``0..n_classes-1``.
        config: the network to build.
        epochs: passes over the data.
        seed: seeds the initial weights, the shuffling and the augmentation.
        batch_size, lr: Adam with a cosine learning-rate schedule.
        augment: training-time augmentation (``None`` for none).
        on_progress: called after each epoch with ``(epoch, epochs, mean loss, training accuracy)``.
    """
    if len(images) != len(labels) or not images:
        raise RadioactiveError(
            f"{len(images)} images and {len(labels)} labels: give one label per image, at least one"
        )
    y = torch.as_tensor(list(labels), dtype=torch.long)
    if int(y.min()) < 0:
        raise RadioactiveError("labels must be class indices >= 0")
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise RadioactiveError("a marking network needs at least two classes to learn features from")
    if epochs < 1 or batch_size < 1:
        raise RadioactiveError("epochs and batch_size must be at least 1")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    network = MarkingNetwork(config)
    head = nn.Linear(config.feature_dim, n_classes)
    x = images_to_tensor(images, config.image_size)  # [n, 3, S, S]
    params = list(network.parameters()) + list(head.parameters())
    optimizer = Adam(params, lr=lr, weight_decay=1e-4)
    total_steps, step = epochs * ((len(x) + batch_size - 1) // batch_size), 0
    losses, accuracies = [], []
    for epoch in range(1, epochs + 1):
        network.train()
        order = torch.randperm(len(x), generator=generator)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            xb = x[idx]
            if augment is not None:
                xb = apply_augment(
                    xb,
                    sample_params(len(idx), xb.shape[2], xb.shape[3], augment, generator),
                    config.image_size,
                )
            logits = head(network(xb))
            loss = F.cross_entropy(logits, y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.lr = lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))  # cosine schedule
            optimizer.step()
            step += 1
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
            seen += len(idx)
        losses.append(total / seen)
        accuracies.append(correct / seen)
        if on_progress is not None:
            on_progress(epoch, epochs, losses[-1], accuracies[-1])
    network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    head.eval().requires_grad_(False)
    return TrainResult(network, tuple(losses), tuple(accuracies), head)


def features(network: FeatureNetwork, images: Sequence[Image.Image], *, batch_size: int = 64) -> torch.Tensor:
    """Features ``[n, d]`` of PIL images as the network sees them (resized to its ``image_size``), no gradient."""
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images_to_tensor(images[start : start + batch_size], network.image_size)
            out.append(network(x))
    return torch.cat(out) if out else torch.zeros(0, network.feature_dim)
