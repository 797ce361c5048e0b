"""Differentiable augmentation: random resized crop, flip and blur, in plain torch.

Marking optimises pixels *through* these so the mark survives what a trainer does to images; training the marking
network uses the same ones. Every operation is linear in the pixels, so ``augment(x + delta)`` equals
``augment(x) + augment(delta)`` for the same :class:`AugmentParams`: the marking loss compares marked and original
images under one draw.

Example:
    >>> import torch
    >>> x = torch.rand(2, 3, 40, 60)
    >>> params = sample_params(2, 40, 60, AugmentConfig(), torch.Generator().manual_seed(0))
    >>> apply_augment(x, params, 32).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from roomscan.radioactive.config import AugmentConfig

__all__ = ["AugmentConfig", "AugmentParams", "apply_augment", "sample_params", "to_network_input"]


def to_network_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[b, 3, H, W]`` pixels in ``[0, 1]`` -> ``[b, 3, size, size]`` (antialiased, so every pixel gets a gradient)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@dataclass(frozen=True)
class AugmentParams:
    """One draw for one image: the crop box (pixels), whether to flip, the blur sigma."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    sigma: float


def sample_params(
    n: int, height: int, width: int, config: AugmentConfig, generator: torch.Generator
) -> list[AugmentParams]:
    """Draw ``n`` augmentations for images of ``height x width`` (crop as torchvision's RandomResizedCrop)."""

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    out = []
    area = height * width
    log_ratio = (math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1]))
    for _ in range(n):
        h, w, top, left = height, width, 0, 0
        for _try in range(10):
            target = area * uniform(*config.crop_scale)
            ratio = math.exp(uniform(*log_ratio))
            cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < cw <= width and 0 < ch <= height:
                h, w = ch, cw
                top = int(torch.randint(0, height - h + 1, (), generator=generator))
                left = int(torch.randint(0, width - w + 1, (), generator=generator))
                break
        flip = config.flip and bool(torch.rand((), generator=generator) < 0.5)
        sigma = uniform(0.0, config.blur_sigma) if config.blur_sigma > 0 else 0.0
        out.append(AugmentParams(top, left, h, w, flip, sigma))
    return out


def apply_augment(x: torch.Tensor, params: list[AugmentParams], size: int) -> torch.Tensor:
    """Apply one :class:`AugmentParams` per image of ``x`` ``[b, 3, H, W]``; returns ``[b, 3, size, size]``."""
    if len(params) != x.shape[0]:
        raise ValueError(f"{len(params)} augmentations for {x.shape[0]} images")
    crops = []
    for i, p in enumerate(params):
        patch = x[i : i + 1, :, p.top : p.top + p.height, p.left : p.left + p.width]
        patch = to_network_input(patch, size)
        crops.append(patch.flip(-1) if p.flip else patch)
    y = torch.cat(crops)  # [b, 3, size, size]
    sigmas = [p.sigma for p in params]
    return _blur(y, sigmas) if max(sigmas) > 0.05 else y


def _blur(y: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """A separable Gaussian blur with its own sigma per image (grouped convolution, one group per channel)."""
    b, c, h, w = y.shape
    radius = max(1, math.ceil(3 * max(sigmas)))
    t = torch.arange(-radius, radius + 1, dtype=y.dtype)
    sig = torch.tensor(sigmas, dtype=y.dtype).clamp_min(1e-3)[:, None]  # [b, 1]
    k = torch.exp(-(t[None] ** 2) / (2 * sig**2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [b*c, 2r+1]
    z = y.reshape(1, b * c, h, w)
    pad = min(radius, h - 1, w - 1)
    if pad < radius:  # tiny images: reflect padding cannot exceed the image, so shorten the kernel
        k = k[:, radius - pad : radius + pad + 1]
        k = k / k.sum(1, keepdim=True)
    z = F.pad(z, (pad, pad, pad, pad), mode="reflect")
    z = F.conv2d(z, k[:, None, None, :], groups=b * c)
    z = F.conv2d(z, k[:, None, :, None], groups=b * c)
    return z.reshape(b, c, h, w)
