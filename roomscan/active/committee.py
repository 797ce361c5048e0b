"""A committee: several predictions of each photo whose disagreement says what to label next.

Members come from four sources, combinable (e.g. 2 models x test-time augmentation):

* **deep ensemble**: several detectors (K model directories trained with different seeds);
* **MC dropout**: ``mc_dropout=T`` passes of each detector inside ``detector.dropout_sampling()``;
* **test-time augmentation** (``tta=True``): each detector also sees the photo flipped left-right and rescaled
  by ``tta_scale`` (0.75: down, then its boxes scaled back up); boxes are mapped back to the original photo's
  pixels, so every member speaks about the same pixels;
* **teacher vs student**: simply two detectors.

Every member's ``Detections`` index the same taxonomy (same amenities, same order), else
:class:`CommitteeError` names the models and the amenities that differ.

Example:
    >>> committee = Committee.build([teacher, student], tta=True)  # doctest: +SKIP
    >>> committee.size  # 2 detectors x (original, flip, rescale)  # doctest: +SKIP
    6
    >>> per_photo = committee.predict(images)  # [n_images][K members] Detections  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from roomscan.errors import RoomscanError

if TYPE_CHECKING:
    from PIL import Image

    from roomscan.backends import Detector
    from roomscan.detection.core import Detections
    from roomscan.taxonomy import Taxonomy

__all__ = ["Augmentation", "Committee", "CommitteeError", "Member", "thumbnail_embedding"]

Augmentation = Literal["none", "hflip", "rescale"]
DEFAULT_TTA_SCALE = 0.75


class CommitteeError(RoomscanError, ValueError):
    """A committee that cannot be built: no members, different taxonomies, MC dropout without dropout."""


@dataclass(frozen=True)
class Member:
    """One voice of the committee: which detector, which view of the photo, which dropout sample.

    Attributes:
        detector: index into :attr:`Committee.detectors`.
        augmentation: ``"none"``, ``"hflip"`` (flipped left-right) or ``"rescale"`` (resized by the scale).
        sample: the MC-dropout pass (0-based), ``None`` without dropout sampling.
        name: a readable label, e.g. ``"rtdetr-a/hflip/dropout-2"``.
    """

    detector: int
    augmentation: Augmentation
    sample: int | None
    name: str


def _model_label(detector: Detector) -> str:
    name = str(detector.info.name).rstrip("/")
    return name.rsplit("/", 1)[-1] or name


def _check_taxonomies(detectors: Sequence[Detector]) -> Taxonomy:
    first = detectors[0]
    for other in detectors[1:]:
        a, b = first.taxonomy.slugs, other.taxonomy.slugs
        if a == b:
            continue
        only_a = [s for s in a if s not in b]
        only_b = [s for s in b if s not in a]
        if only_a or only_b:
            diff = "; ".join(
                part
                for part in (
                    f"only {first.info.name} has {', '.join(only_a)}" if only_a else "",
                    f"only {other.info.name} has {', '.join(only_b)}" if only_b else "",
                )
                if part
            )
        else:
            diff = f"the same amenities in a different order ({', '.join(a)} vs {', '.join(b)})"
        raise CommitteeError(
            f"committee members must detect the same taxonomy, but {first.info.name} and {other.info.name} "
            f"differ: {diff}. Use models trained on one taxonomy, or pass the same --taxonomy to each"
        )
    return first.taxonomy


class Committee:
    """Detectors plus how each one votes (views and dropout samples); see the module docstring.

    Build with :meth:`build`. ``members`` lists the K voices in the order :meth:`predict` returns them:
    detector by detector, then view, then dropout sample.
    """

    def __init__(
        self,
        detectors: Sequence[Detector],
        members: Sequence[Member],
        *,
        tta_scale: float = DEFAULT_TTA_SCALE,
    ) -> None:
        if not detectors or not members:
            raise CommitteeError("a committee needs at least one detector")
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self.members: tuple[Member, ...] = tuple(members)
        self.tta_scale = tta_scale
        self.taxonomy: Taxonomy = _check_taxonomies(self.detectors)

    @classmethod
    def build(
        cls,
        detectors: Sequence[Detector] | Detector,
        *,
        mc_dropout: int = 0,
        tta: bool = False,
        tta_scale: float = DEFAULT_TTA_SCALE,
    ) -> Committee:
        """A committee of ``detectors`` x views (``tta``) x dropout samples (``mc_dropout``).

        Args:
            detectors: one detector or several (a deep ensemble, or teacher and student).
            mc_dropout: ``T >= 2`` Monte-Carlo dropout passes per detector and view; 0 for none.
            tta: add a left-right flip and a rescale by ``tta_scale`` as members (boxes mapped back).
            tta_scale: the rescale factor, in ``(0, 4]``, not 1.

        Raises:
            CommitteeError: no detectors, different taxonomies (naming the models and the amenities), ``T``
                of 1 or below 0, or MC dropout on a model without dropout (the base class's message).
        """
        dets = [detectors] if not isinstance(detectors, Sequence) else list(detectors)
        if not dets:
            raise CommitteeError("a committee needs at least one detector (give --model)")
        if isinstance(mc_dropout, bool) or mc_dropout < 0 or mc_dropout == 1:
            raise CommitteeError(
                f"MC dropout needs at least 2 passes to disagree (got {mc_dropout}); use 0 to switch it off"
            )
        if not 0 < tta_scale <= 4 or tta_scale == 1:
            raise CommitteeError(f"tta_scale must be in (0, 4] and not 1, got {tta_scale}")
        _check_taxonomies(dets)
        if mc_dropout:
            for detector in dets:
                try:
                    with detector.dropout_sampling():
                        pass
                except (ValueError, NotImplementedError) as exc:
                    raise CommitteeError(f"--mc-dropout: {exc}") from exc
        labels = [_model_label(d) for d in dets]
        if len(set(labels)) < len(labels):
            labels = [f"{label}#{i}" for i, label in enumerate(labels)]
        views: tuple[Augmentation, ...] = ("none", "hflip", "rescale") if tta else ("none",)
        samples: tuple[int | None, ...] = tuple(range(mc_dropout)) if mc_dropout else (None,)
        members = []
        for i, label in enumerate(labels):
            for view in views:
                for sample in samples:
                    parts = (
                        [label]
                        + ([view] if view != "none" else [])
                        + ([f"dropout-{sample}"] if sample is not None else [])
                    )
                    members.append(Member(i, view, sample, "/".join(parts)))
        return cls(dets, members, tta_scale=tta_scale)

    @property
    def size(self) -> int:
        """K, the number of members (predictions per photo)."""
        return len(self.members)

    @property
    def views(self) -> tuple[Augmentation, ...]:
        return tuple(dict.fromkeys(m.augmentation for m in self.members))

    @property
    def samples(self) -> int:
        """MC-dropout passes per detector and view (0: none)."""
        return sum(
            1 for m in self.members if m.detector == 0 and m.augmentation == "none" and m.sample is not None
        )

    def describe(self) -> str:
        """One line, e.g. ``"6 members: 2 models (a, b) x 3 views (original, flip, x0.75) x 1"``."""
        models = ", ".join(_model_label(d) for d in self.detectors)
        views = {"none": "original", "hflip": "flip", "rescale": f"x{self.tta_scale:g}"}
        parts = [f"{len(self.detectors)} model{'s' if len(self.detectors) > 1 else ''} ({models})"]
        if len(self.views) > 1:
            parts.append(f"{len(self.views)} views ({', '.join(views[v] for v in self.views)})")
        if self.samples:
            parts.append(f"{self.samples} MC-dropout passes")
        return f"{self.size} member{'s' if self.size > 1 else ''}: " + " x ".join(parts)

    @property
    def version(self) -> str:
        """The members' model keys and voting, for ``model_version`` fields."""
        keys = "+".join(d.info.key for d in self.detectors)
        extra = (["tta"] if len(self.views) > 1 else []) + ([f"mc{self.samples}"] if self.samples else [])
        return keys + (f"[{','.join(extra)}]" if extra else "")

    def predict(
        self,
        images: Sequence[Image.Image],
        *,
        batch_size: int = 4,
        on_member: Callable[[int], None] | None = None,
    ) -> list[list[Detections]]:
        """Every member's detections of every image: ``out[i][k]`` is member ``k`` on image ``i``.

        Boxes are in the original image's pixels whatever the view; ``metadata["member"]`` names the member.

        Args:
            images: PIL images (any mode).
            batch_size: images per forward pass.
            on_member: called with the member's index after each member finished all images (progress).
        """
        images = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        out: list[list[Detections]] = [[] for _ in images]
        if not images:
            return out
        index = 0
        for d, detector in enumerate(self.detectors):
            for view in self.views:
                shown = [_view(im, view, self.tta_scale) for im in images]
                mine = [m for m in self.members if m.detector == d and m.augmentation == view]
                with detector.dropout_sampling() if mine[0].sample is not None else nullcontext():
                    for member in mine:
                        preds = detector.predict(shown, batch_size=batch_size)
                        for i, (im, dets) in enumerate(zip(images, preds, strict=True)):
                            mapped = _map_back(dets, view, im.size)
                            mapped.metadata["member"] = member.name
                            out[i].append(mapped)
                        if on_member is not None:
                            on_member(index)
                        index += 1
        return out

    def embed(self, images: Sequence[Image.Image], *, batch_size: int = 4) -> np.ndarray:
        """``[n, d]`` unit-norm embeddings for diversity: the first detector's :meth:`~Detector.embed`.

        A backend without embeddings (ONNX) falls back to :func:`thumbnail_embedding`, which compares colour
        and layout, not content: diversity then spreads the batch over looks rather than scenes.
        """
        try:
            return self.detectors[0].embed(images, batch_size=batch_size)
        except NotImplementedError:
            return thumbnail_embedding(images)


def thumbnail_embedding(images: Sequence[Image.Image], *, side: int = 8, bins: int = 8) -> np.ndarray:
    """A model-free embedding: an RGB ``side x side`` thumbnail plus a ``bins``-bin histogram per channel.

    Returns float32 ``[n, 3 * side**2 + 3 * bins]`` with unit L2 rows (the thumbnail's pixels in ``[0, 1]``
    minus their mean, so overall brightness weighs less than layout; each histogram sums to 1).
    """
    from PIL import Image

    rows = []
    for im in images:
        rgb = im.convert("RGB")
        thumb = np.asarray(rgb.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        thumb = (thumb - thumb.mean()).reshape(-1)  # [3 * side**2]
        pixels = np.asarray(rgb.resize((64, 64)), dtype=np.int64).reshape(-1, 3)  # [4096, 3]
        hist = np.concatenate([np.bincount(pixels[:, c] * bins // 256, minlength=bins) for c in range(3)])
        rows.append(np.concatenate([thumb, hist.astype(np.float32) / len(pixels)]))
    if not rows:
        return np.zeros((0, 3 * side * side + 3 * bins), dtype=np.float32)
    out = np.stack(rows).astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _view(image: Image.Image, view: Augmentation, scale: float) -> Image.Image:
    from PIL import Image

    if view == "hflip":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if view == "rescale":
        w, h = image.size
        return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    return image


def _map_back(dets: Detections, view: Augmentation, size: tuple[int, int]) -> Detections:
    """``dets`` of a view, with boxes in the original ``size = (width, height)`` pixels (a copy)."""
    from roomscan.detection.core import Detections as _Detections

    width, height = size
    xyxy = np.asarray(dets.xyxy, dtype=np.float64).reshape(-1, 4).copy()
    if view == "hflip":
        xyxy[:, [0, 2]] = width - xyxy[:, [2, 0]]  # [n, 2]: x1' = W - x2, x2' = W - x1
    elif view == "rescale":
        shown_w, shown_h = dets.metadata.get("image_size") or (width, height)
        xyxy[:, [0, 2]] *= width / shown_w
        xyxy[:, [1, 3]] *= height / shown_h
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
    metadata = {**dets.metadata, "image_size": (width, height), "view": view}
    return _Detections(
        xyxy=xyxy.astype(np.float32),
        confidence=None if dets.confidence is None else np.array(dets.confidence, copy=True),
        class_id=None if dets.class_id is None else np.array(dets.class_id, copy=True),
        data={k: np.array(v, copy=True) for k, v in dets.data.items()},
        metadata=metadata,
    )
