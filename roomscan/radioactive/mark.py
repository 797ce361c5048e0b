"""Marking: nudge each image's pixels so its features move along its class carrier, invisibly.

For an image ``x`` of class ``k`` with carrier ``u`` (unit, in the marking network ``phi``'s feature space), marking
looks for ``delta`` minimising, over random augmentations ``a``::

    - <phi(a(x + delta)) - phi(a(x)), u> / s  +  lambda_feature * |shift orthogonal to u|^2 / s^2

(``s`` the mean feature norm of the batch, which makes the weights scale-free) with Adam, and after every step
projects ``delta`` onto what may be published: ``|delta| <= epsilon`` per pixel channel, ``x + delta`` inside the
pixel range, and a PSNR of at least the floor (``delta`` scaled down when above the allowed mean square). The result
is rounded to 8 bits and checked again, so every returned image meets both bounds exactly as stored.

A classifier later trained on marked images of class ``k`` learns a weight ``w_k`` that leans towards ``u``;
:mod:`roomscan.radioactive.stats` tests that lean.

Example:
    >>> from roomscan.radioactive.network import MarkingNetwork
    >>> from roomscan.radioactive.config import NetworkConfig
    >>> from roomscan.radioactive.stats import random_carriers
    >>> from roomscan.radioactive.synthetic import make_pattern_images
    >>> net = MarkingNetwork(NetworkConfig(widths=(8, 16), image_size=32)).eval()
    >>> data = make_pattern_images(1, n_classes=2, size=32)
    >>> marked = mark_images(data.images, data.labels, random_carriers(2, 16, seed=0), net, steps=5)
    >>> all(m.psnr >= 42.0 and m.linf <= 10 / 255 for m in marked)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from roomscan.radioactive._adam import Adam
from roomscan.radioactive.augment import apply_augment, sample_params, to_network_input
from roomscan.radioactive.config import AugmentConfig
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import MarkingKey
from roomscan.radioactive.network import FeatureNetwork, network_identity

__all__ = ["MarkedImage", "linf_distance", "mark_images", "psnr", "quantise", "resolve_carriers"]

# Optimise towards a PSNR this much above the floor, so 8-bit rounding rarely needs a second pass.
_PSNR_MARGIN_DB = 0.3


@dataclass(frozen=True)
class MarkedImage:
    """A marked image and how far it is from its original.

    Attributes:
        image: the marked pixels, RGB, the original's size.
        psnr: dB against the original (8-bit pixels); ``inf`` if nothing changed.
        linf: the largest change of a pixel channel, as a fraction of full scale.
        feature_shift_cos: cosine between the feature shift ``phi(marked) - phi(original)`` and the carrier
            (no augmentation): near 1 when the mark points where it should, near 0 for a random direction.
    """

    image: Image.Image
    psnr: float
    linf: float
    feature_shift_cos: float


def psnr(original: Image.Image | NDArray[np.uint8], changed: Image.Image | NDArray[np.uint8]) -> float:
    """PSNR in dB between two 8-bit images of the same size (``inf`` when identical)."""
    a = np.asarray(original, dtype=np.float64)
    b = np.asarray(changed, dtype=np.float64)
    if a.shape != b.shape:
        raise RadioactiveError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def linf_distance(
    original: Image.Image | NDArray[np.uint8], changed: Image.Image | NDArray[np.uint8]
) -> float:
    """The largest absolute change of any pixel channel, as a fraction of full scale (8-bit images)."""
    a = np.asarray(original, dtype=np.int16)
    b = np.asarray(changed, dtype=np.int16)
    if a.shape != b.shape:
        raise RadioactiveError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    return float(np.abs(a - b).max(initial=0)) / 255.0


def resolve_carriers(
    carriers: MarkingKey | ArrayLike, classes: Sequence[int | str], network: FeatureNetwork
) -> tuple[NDArray[np.float64], list[int]]:
    """Check carriers against the network and turn classes (indices, or names of a key's carriers) into row indices.

    Raises:
        RadioactiveError: a key made with another marking network, carriers of another dimension than the network's
            features, a class index out of range, or a class name the key has no carrier for.
    """
    names: tuple[str, ...] | None = None
    if isinstance(carriers, MarkingKey):
        carriers.check_network(network_identity(network))
        names = carriers.names
        u = carriers.carriers
    else:
        u = np.asarray(carriers, dtype=np.float64)
        if u.ndim != 2 or u.shape[0] < 1:
            raise RadioactiveError(f"carriers must be an array [n, d] with n >= 1, got shape {u.shape}")
        norms = np.linalg.norm(u, axis=1)
        if not np.isfinite(u).all() or (np.abs(norms - 1) > 1e-5).any():
            raise RadioactiveError("carriers must be finite unit vectors (normalise each row)")
    if u.shape[1] != network.feature_dim:
        raise RadioactiveError(
            f"the carriers have d={u.shape[1]} but the marking network {network.architecture} gives "
            f"{network.feature_dim} features: use the network the carriers were drawn for"
        )
    rows = []
    for c in classes:
        if isinstance(c, str):
            if names is None:
                raise RadioactiveError(
                    f"class {c!r} is a name, but plain carriers have no names: pass a MarkingKey"
                )
            if c not in names:
                raise RadioactiveError(f"the key has no carrier for class {c!r}; it knows {list(names)}")
            rows.append(names.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < u.shape[0]:
            rows.append(int(c))
        else:
            raise RadioactiveError(f"class {c!r} is not a carrier index in 0..{u.shape[0] - 1}")
    return u, rows


def mark_images(
    images: Sequence[Image.Image],
    classes: Sequence[int | str],
    carriers: MarkingKey | ArrayLike,
    network: FeatureNetwork,
    *,
    epsilon: float = 10 / 255,
    psnr_floor: float = 42.0,
    steps: int = 60,
    lr: float = 0.002,
    augment: AugmentConfig | bool | None = True,
    lambda_feature: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[MarkedImage]:
    """Mark ``images[i]`` for carrier ``classes[i]``; every result meets the L-infinity bound and the PSNR floor.

    Args:
        images: the originals (converted to RGB; any sizes, batched by size).
        classes: per image, a carrier row index, or a class name of the key's carriers.
        carriers: a :class:`MarkingKey` (its network is checked against ``network``) or an array ``[n, d]``.
        network: the marking network (eval mode; only its input gradients are used).
        epsilon: the largest change of any pixel channel, a fraction of full scale (at least ``1/255``).
        psnr_floor: the lowest PSNR (dB) allowed.
        steps, lr: Adam steps on the perturbation and their size (in pixel units, ``[0, 1]`` scale).
        augment: ``True`` for the default :class:`AugmentConfig`, an instance, or ``False``/``None`` for none.
        lambda_feature: weight of the penalty on the feature shift orthogonal to the carrier.
        batch_size: images optimised together (same-size images only).
        seed: seeds the augmentation draws.
        on_progress: called with ``(images done, total)`` after each batch.

    Returns:
        one :class:`MarkedImage` per input, in input order.

    Raises:
        RadioactiveError: mismatched lengths, a key from another network, a bad class, or bounds that cannot hold.
    """
    if len(images) != len(classes):
        raise RadioactiveError(f"{len(images)} images but {len(classes)} classes: give one class per image")
    if not 1 / 255 <= epsilon <= 1:
        raise RadioactiveError(
            f"epsilon must be in [1/255, 1] (a fraction of full scale, e.g. 10/255), got {epsilon!r}"
        )
    if not 0 < psnr_floor < 100:
        raise RadioactiveError(f"psnr_floor must be in (0, 100) dB, got {psnr_floor!r}")
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise RadioactiveError("steps and batch_size must be at least 1 and lr positive")
    u, rows = resolve_carriers(carriers, classes, network)
    aug = AugmentConfig() if augment is True else (augment or None)
    generator = torch.Generator().manual_seed(seed)
    u_t = torch.tensor(u, dtype=torch.float32)

    rgb = [im.convert("RGB") for im in images]
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, im in enumerate(rgb):
        by_size.setdefault(im.size, []).append(i)
    batches = [idxs[s : s + batch_size] for idxs in by_size.values() for s in range(0, len(idxs), batch_size)]
    results: list[MarkedImage | None] = [None] * len(images)
    done = 0
    was_training = bool(getattr(network, "training", False))
    if isinstance(network, torch.nn.Module):
        network.eval()  # batch-norm statistics must neither change nor depend on the batch
    try:
        for chunk in batches:
            originals = [np.asarray(rgb[i], dtype=np.uint8) for i in chunk]
            marked = _mark_batch(
                originals, u_t[[rows[i] for i in chunk]], network, aug, generator,
                epsilon=epsilon, psnr_floor=psnr_floor, steps=steps, lr=lr, lambda_feature=lambda_feature,
            )  # fmt: skip
            for i, m in zip(chunk, marked, strict=True):
                results[i] = m
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, len(images))
    finally:
        if was_training and isinstance(network, torch.nn.Module):
            network.train()
    return [r for r in results if r is not None]


def _mark_batch(
    originals: list[NDArray[np.uint8]],
    u: torch.Tensor,
    network: FeatureNetwork,
    aug: AugmentConfig | None,
    generator: torch.Generator,
    *,
    epsilon: float,
    psnr_floor: float,
    steps: int,
    lr: float,
    lambda_feature: float,
) -> list[MarkedImage]:
    size = network.image_size
    x = torch.from_numpy(np.stack(originals)).permute(0, 3, 1, 2).float() / 255.0  # [b, 3, H, W]
    b, _, h, w = x.shape
    levels = math.floor(epsilon * 255 + 1e-9)  # the bound in 8-bit levels, so rounding cannot exceed it
    eps = levels / 255.0
    max_mse = 10 ** (-(psnr_floor + _PSNR_MARGIN_DB) / 10)  # per image, pixels in [0, 1]
    delta = torch.zeros_like(x, requires_grad=True)
    optimizer = Adam([delta], lr=lr)
    with torch.no_grad():
        scale = network(to_network_input(x, size)).norm(dim=1).mean().clamp_min(1e-6)
    for _ in range(steps):
        if aug is not None:
            params = sample_params(b, h, w, aug, generator)
            view_marked, view_orig = apply_augment(x + delta, params, size), apply_augment(x, params, size)
        else:
            view_marked, view_orig = to_network_input(x + delta, size), to_network_input(x, size)
        with torch.no_grad():
            f_orig = network(view_orig)
        shift = network(view_marked) - f_orig  # [b, d]
        along = (shift * u).sum(1)  # [b]
        across = shift - along[:, None] * u
        loss = (-along / scale + lambda_feature * (across**2).sum(1) / scale**2).mean()
        # Only the perturbation's gradient: the network's weights get none (and keep no .grad).
        (delta.grad,) = torch.autograd.grad(loss, [delta])
        optimizer.step()
        with torch.no_grad():
            _project(delta, x, eps, max_mse)
    return [
        _finish(originals[i], x[i], delta[i].detach(), u[i], network, levels=levels, psnr_floor=psnr_floor)
        for i in range(b)
    ]


def _project(delta: torch.Tensor, x: torch.Tensor, eps: float, max_mse: float) -> None:
    """In place: L-infinity ball, pixel range, then scale each image's delta down to the allowed mean square."""
    delta.clamp_(-eps, eps)
    delta.copy_((x + delta).clamp(0.0, 1.0) - x)
    mse = delta.pow(2).mean(dim=(1, 2, 3))  # [b]
    # Scaling keeps both earlier constraints: x + s*delta lies between x and x + delta.
    factor = torch.where(mse > max_mse, (max_mse / mse.clamp_min(1e-20)).sqrt(), torch.ones_like(mse))
    delta.mul_(factor[:, None, None, None])


def quantise(original: NDArray[np.uint8], delta: NDArray[np.floating], levels: int) -> NDArray[np.uint8]:
    """``original + delta`` (delta in 8-bit levels) rounded, kept within ``levels`` of the original and in 0..255."""
    base = original.astype(np.int16)
    step = np.clip(np.rint(delta), -levels, levels).astype(np.int16)
    return np.clip(base + step, 0, 255).astype(np.uint8)


def _finish(
    original: NDArray[np.uint8],
    x: torch.Tensor,
    delta: torch.Tensor,
    u: torch.Tensor,
    network: FeatureNetwork,
    *,
    levels: int,
    psnr_floor: float,
) -> MarkedImage:
    d = delta.permute(1, 2, 0).numpy().astype(np.float64) * 255.0  # [H, W, 3] in 8-bit levels
    marked = quantise(original, d, levels)
    # Rounding can add a little error; shrink until the floor holds (rarely more than one pass).
    for _ in range(60):
        if psnr(original, marked) >= psnr_floor:
            break
        d *= 0.95
        marked = quantise(original, d, levels)
    else:  # pragma: no cover - 0.95**60 leaves less than 0.05 levels: rounding gives the original back
        marked = original.copy()
    with torch.no_grad():
        pair = torch.stack([x, torch.from_numpy(marked).permute(2, 0, 1).float() / 255.0])
        f = network(to_network_input(pair, network.image_size))
        shift = f[1] - f[0]
        norm = float(shift.norm())
        cos = float((shift @ u) / norm) if norm > 0 else 0.0
    return MarkedImage(
        Image.fromarray(marked, "RGB"), psnr(original, marked), linf_distance(original, marked), cos
    )
