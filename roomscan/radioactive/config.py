"""Typed settings of the marking network and of the augmentation marks must survive (no torch here).

A :class:`~roomscan.radioactive.key.MarkingKey` stores both as plain dicts (``to_dict``/``from_dict``), so a key
can be read without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from roomscan.radioactive.errors import RadioactiveError

__all__ = ["AugmentConfig", "NetworkConfig"]


def _from_dict(cls: type, data: Any, what: str) -> Any:
    if not isinstance(data, dict):
        raise RadioactiveError(f"{what} must be a mapping of settings, not {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RadioactiveError(f"{what} has unknown settings {unknown}; known: {sorted(names)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise RadioactiveError(f"{what} is malformed: {exc}") from exc


@dataclass(frozen=True)
class NetworkConfig:
    """The built-in marking network: a small ResNet whose global-average-pooled output is the feature space.

    Attributes:
        widths: channels of each stage; every stage after the first halves the resolution. The feature dimension
            (the carriers' dimension) is ``widths[-1]``.
        blocks: residual blocks per stage.
        image_size: the square side images are resized to before the network sees them (marking and training).
        mean, std: per-channel normalisation applied inside the network to pixels in ``[0, 1]``.

    Example:
        >>> NetworkConfig(widths=(16, 32, 64)).feature_dim
        64
    """

    widths: tuple[int, ...] = (32, 64, 128)
    blocks: int = 1
    image_size: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise RadioactiveError(f"widths must be positive whole channel counts (got {self.widths!r})")
        if self.widths[-1] < 2:
            raise RadioactiveError("the last width is the feature dimension and must be at least 2")
        if not isinstance(self.blocks, int) or self.blocks < 1:
            raise RadioactiveError(f"blocks must be a whole number >= 1 (got {self.blocks!r})")
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 1024:
            raise RadioactiveError(
                f"image_size must be a whole number of pixels in 16..1024 (got {self.image_size!r})"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise RadioactiveError("mean and std need three values each (R, G, B), std all positive")

    @property
    def feature_dim(self) -> int:
        return self.widths[-1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> NetworkConfig:
        return _from_dict(cls, data, "the marking network's config")


@dataclass(frozen=True)
class AugmentConfig:
    """Random, differentiable augmentation applied while marking, so the mark survives a trainer's augmentation.

    Attributes:
        crop_scale: the range of the area fraction a random resized crop keeps (like torchvision's
            ``RandomResizedCrop(scale=...)``).
        crop_ratio: the range of the crop's aspect ratio (width / height).
        flip: flip left-right half of the time.
        blur_sigma: the largest Gaussian blur sigma (pixels at the network's resolution), drawn uniformly per image;
            a stand-in for JPEG's loss of high frequencies. 0 turns blur off.

    Example:
        >>> AugmentConfig(blur_sigma=0.0).flip
        True
    """

    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    blur_sigma: float = 1.0

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise RadioactiveError(f"crop_scale must satisfy 0 < low <= high <= 1 (got {self.crop_scale!r})")
        rlo, rhi = self.crop_ratio
        if not 0 < rlo <= rhi:
            raise RadioactiveError(f"crop_ratio must satisfy 0 < low <= high (got {self.crop_ratio!r})")
        if not 0 <= self.blur_sigma <= 5:
            raise RadioactiveError(f"blur_sigma must be in 0..5 pixels (got {self.blur_sigma!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> AugmentConfig:
        return _from_dict(cls, data, "the augmentation settings")
