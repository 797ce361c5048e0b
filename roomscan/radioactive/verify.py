"""Verification: was a model trained on the marked photos? White-box (its weights) and black-box (its outputs).

White-box (:func:`verify_whitebox`), as in the paper's section on other architectures: the tested model has its own
feature space, so first align it to the marking network's. On held-out, *unmarked* images, fit by ridge-regularised
least squares a linear map ``M`` with ``tested_features ≈ M @ marking_features`` (both centred); the classifier
``W`` over tested features then acts as ``W @ M`` over marking features. Each marked class's mapped weight row is
compared with its carrier; under the null hypothesis (never trained on marked photos) nothing in ``W`` or ``M``
depends on the secret carriers, so the cosine follows the exact law of :func:`~roomscan.radioactive.stats.
cosine_pvalue` in the marking network's ``d`` whatever the alignment's quality: a poor alignment costs power, not
validity. Per-class p-values are pooled with Fisher's method.

Black-box (:func:`verify_blackbox`): a model trained on marked copies fits them better than their unmarked
originals. The per-image cross-entropy gap (original minus marked) is tested with a one-sided Wilcoxon
signed-rank test; with a ``reference`` model (trained without the marked photos) the test is on the difference of
the two models' gaps, pair by pair. Without one, the p-value only says "the marked copies have the lower loss" and
the verdict never reports detection, because that is not proof of training: marks push photos along class
carriers, and for a model of the same task that can lower their loss too. Measured at 32 px (3 classes, 90 photos,
6 seeds): models never trained on the marked photos gave p = 4e-4 and 1.5e-3 on two seeds without a reference,
0.027 and 0.0015 with one (0.08 to 1 on the others); a reference narrows the confound, it does not give an exact
null as the white-box test does.

Both results carry a :class:`Verdict` in plain words and ``to_dict()`` for ``--json``.

Example:
    >>> result = verify_whitebox(model, key, marking_net, held_out_images)          # doctest: +SKIP
    >>> print(result.verdict.text)                                                   # doctest: +SKIP
    the model was very likely trained on the marked photos: p = 3e-7, ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from PIL import Image
from scipy import stats
from torch import nn

from roomscan.detection.image import load_image
from roomscan.errors import ImageError
from roomscan.radioactive.errors import RadioactiveError
from roomscan.radioactive.key import MarkingKey
from roomscan.radioactive.network import FeatureNetwork, features, images_to_tensor, network_identity
from roomscan.radioactive.stats import combine_pvalues, cosine_pvalue, row_cosines

__all__ = [
    "DEFAULT_ALPHA",
    "BlackboxResult",
    "ClassTest",
    "Verdict",
    "WhiteboxResult",
    "verdict_text",
    "verify_blackbox",
    "verify_whitebox",
]

DEFAULT_ALPHA = 1e-3
MIN_IMAGES = 8  # below this an alignment (and its held-out R²) means nothing
_WEAK = 0.05  # between alpha and this, the evidence is reported as suggestive, never as a finding

ImageInput = Image.Image | str | os.PathLike[str]


# --- verdicts ---------------------------------------------------------------------------------------------------


def _format_p(p: float) -> str:
    if p <= 0:
        return "< 1e-300"
    if p >= 0.01:
        return f"{p:.2f}"
    mantissa, exponent = f"{p:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _once_in(p: float) -> str:
    if p <= 0:
        return "less than once in 1e300 tries"
    n = 1.0 / p
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if n >= size:
            return f"once in {n / size:.3g} {word}"
    return f"once in {n:,.0f}"


def verdict_text(
    p: float, alpha: float = DEFAULT_ALPHA, *, evidence: str = "lean this much towards the carriers"
) -> str:
    """The p-value of a verification in plain words.

    Args:
        p: the combined p-value.
        alpha: the false-positive rate the caller accepts for "trained on the marked photos".
        evidence: what the statistic measured, completing "a model never trained on them would ...".

    Example:
        >>> verdict_text(3e-7)
        'the model was very likely trained on the marked photos: p = 3e-7, i.e. a model never trained on them would lean this much towards the carriers once in 3.33 million'
    """
    if not 0 <= p <= 1 or math.isnan(p):
        raise RadioactiveError(f"a p-value must lie in [0, 1], got {p!r}")
    if not 0 < alpha < 1:
        raise RadioactiveError(f"alpha must lie in (0, 1), got {alpha!r}")
    shown = _format_p(p)
    if p < alpha:
        return (
            f"the model was very likely trained on the marked photos: p = {shown}, i.e. a model never trained on "
            f"them would {evidence} {_once_in(p)}"
        )
    if p < _WEAK:
        return (
            f"inconclusive: p = {shown} (a model never trained on the marked photos would {evidence} "
            f"{_once_in(p)}), above the threshold alpha = {alpha:g}; test with more held-out images or more "
            "marked classes"
        )
    return (
        f"no evidence that the model was trained on the marked photos: p = {shown} (a model never trained on "
        f"them would {evidence} {p:.0%} of the time). This does not prove it was not: few marked photos in its "
        "training data leave a faint trace"
    )


@dataclass(frozen=True)
class Verdict:
    """A decision at ``alpha`` and its explanation."""

    p_value: float
    alpha: float
    detected: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verdict(p: float, alpha: float, evidence: str) -> Verdict:
    return Verdict(p, alpha, p < alpha, verdict_text(p, alpha, evidence=evidence))


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else float(x)


# --- white-box --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassTest:
    """One marked class: the cosine of its mapped class weight with its carrier, and that cosine's p-value."""

    name: str
    cosine: float
    p_value: float


@dataclass(frozen=True)
class WhiteboxResult:
    """What :func:`verify_whitebox` found.

    Attributes:
        p_value: Fisher's combination of the per-class p-values.
        classes: one :class:`ClassTest` per class tested (key and model both have it).
        dim: the marking network's feature dimension ``d`` (the null law's dimension).
        tested_dim: the tested model's feature dimension.
        n_images: held-out images the alignment was fitted on.
        alignment_r2: R² of the alignment on the held-out images' last part, fitted on the rest (1 is perfect;
            near 0 or below, the tested features are not a linear image of the marking features and the test has
            little power, although its p-value stays valid).
        skipped_classes: classes of the key the model lacks.
        notes: warnings worth reading before trusting a "no evidence" answer.
        alpha: the threshold of :attr:`verdict`.
    """

    p_value: float
    classes: tuple[ClassTest, ...]
    dim: int
    tested_dim: int
    n_images: int
    alignment_r2: float
    skipped_classes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    alpha: float = DEFAULT_ALPHA

    @property
    def verdict(self) -> Verdict:
        return _verdict(self.p_value, self.alpha, "lean this much towards the carriers")

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": "whitebox",
            "p_value": self.p_value,
            "classes": [asdict(c) for c in self.classes],
            "dim": self.dim,
            "tested_dim": self.tested_dim,
            "n_images": self.n_images,
            "alignment_r2": _json_float(self.alignment_r2),
            "skipped_classes": list(self.skipped_classes),
            "notes": list(self.notes),
            "verdict": self.verdict.to_dict(),
        }


def load_images(images: Sequence[ImageInput], what: str = "held-out image") -> list[Image.Image]:
    """PIL images as given, or read from paths; an unreadable file is a :class:`RadioactiveError` naming it."""
    out = []
    for i, item in enumerate(images):
        if isinstance(item, Image.Image):
            out.append(item)
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise RadioactiveError(f"{what} {i} is a {type(item).__name__}, not a PIL image or a file path")
        try:
            out.append(load_image(Path(item)).image)
        except ImageError as exc:
            raise RadioactiveError(f"{what} {exc}; remove or replace it and run again") from None
    return out


def _model_parts(
    model: nn.Module, class_names: Sequence[str] | None
) -> tuple[nn.Linear, int, tuple[str, ...]]:
    head = getattr(model, "head", None)
    if not callable(getattr(model, "features", None)) or not isinstance(head, nn.Linear):
        raise RadioactiveError(
            "the tested model needs features(x) -> [b, d] and a linear head (nn.Linear): an ImageClassifier, "
            "or a module shaped like one"
        )
    size = getattr(model, "image_size", None)
    if not isinstance(size, int) or size < 1:
        raise RadioactiveError(
            "the tested model needs an image_size (the square side its images are resized to)"
        )
    names = tuple(class_names) if class_names is not None else tuple(getattr(model, "class_names", ()) or ())
    if not names:
        raise RadioactiveError(
            "the tested model has no class_names: pass class_names, one per row of its head"
        )
    if len(names) != head.out_features:
        raise RadioactiveError(
            f"{len(names)} class names for a head with {head.out_features} outputs: give one name per class"
        )
    return head, size, names


def _tested_features(
    model: nn.Module, images: Sequence[Image.Image], size: int, batch_size: int
) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = images[start : start + batch_size]
                # A detector (radioactive.detector) brings its own processor; a classifier reads [0, 1] pixels.
                prepare = getattr(model, "preprocess", None)
                x = prepare(batch) if callable(prepare) else images_to_tensor(batch, size)
                out.append(model.features(x))  # type: ignore[operator]  # checked callable by _model_parts
    finally:
        model.train(was_training)
    return torch.cat(out)


def _marking_features(
    network: FeatureNetwork, images: Sequence[Image.Image], batch_size: int
) -> NDArray[np.float64]:
    # Eval mode: batch-norm statistics must not move (they are part of the weights the key's hash covers).
    was_training = bool(getattr(network, "training", False))
    if isinstance(network, nn.Module):
        network.eval()
    try:
        return features(network, images, batch_size=batch_size).double().numpy()
    finally:
        if was_training and isinstance(network, nn.Module):
            network.train()


def fit_alignment(marking: ArrayLike, tested: ArrayLike, ridge: float) -> tuple[NDArray[np.float64], ...]:
    """Ridge least squares ``tested - mean ≈ M @ (marking - mean)``; returns ``M [e, d]`` and both means.

    ``ridge`` is relative: the penalty is ``ridge * trace(A^T A) / d`` (``A`` the centred marking features), so it
    does not depend on the features' scale.
    """
    a = np.asarray(marking, dtype=np.float64)  # [n, d]
    b = np.asarray(tested, dtype=np.float64)  # [n, e]
    mu_a, mu_b = a.mean(0), b.mean(0)
    ac, bc = a - mu_a, b - mu_b
    gram = ac.T @ ac  # [d, d]
    lam = ridge * max(float(np.trace(gram)), 1e-12) / a.shape[1]
    m_t = np.linalg.solve(gram + lam * np.eye(a.shape[1]), ac.T @ bc)  # [d, e]
    return m_t.T, mu_a, mu_b


def _held_out_r2(a: NDArray[np.float64], b: NDArray[np.float64], ridge: float, seed: int) -> float:
    n = len(a)
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(2, n // 4)
    fit, test = order[n_test:], order[:n_test]
    m, mu_a, mu_b = fit_alignment(a[fit], b[fit], ridge)
    pred = (a[test] - mu_a) @ m.T + mu_b
    total = float(((b[test] - mu_b) ** 2).sum())
    return 1.0 - float(((b[test] - pred) ** 2).sum()) / total if total > 0 else math.nan


def verify_whitebox(
    model: nn.Module,
    key: MarkingKey,
    marking_network: FeatureNetwork,
    held_out_images: Sequence[ImageInput],
    *,
    ridge: float = 1e-3,
    class_names: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    batch_size: int = 64,
) -> WhiteboxResult:
    """Test whether ``model``'s class weights lean towards the key's carriers.

    Args:
        model: the tested classifier: an :class:`~roomscan.radioactive.classifier.ImageClassifier` or any module
            with ``features(x) -> [b, e]``, ``head: nn.Linear(e, n_classes)``, ``image_size`` and ``class_names``;
            optionally ``preprocess(images) -> x`` (else ``x`` is ``[0, 1]`` pixels at ``image_size``) and
            ``check_key(key)``, as :class:`~roomscan.radioactive.detector.DetectorFeatures` (a detector) has.
        key: the marking key (carriers and the marking network's identity).
        marking_network: the very network the key was made with.
        held_out_images: unmarked images (PIL or file paths) like the training data; more than the marking
            network's ``d`` of them for a well-determined alignment.
        ridge: the alignment's relative ridge penalty.
        class_names: the name of each of the head's rows (default: ``model.class_names``).
        classes: test only these classes (each must be in the key and the model); default: all classes both have.
        alpha: the verdict's threshold.
        seed: which held-out images measure the alignment's R².
        batch_size: images per forward pass.

    Raises:
        RadioactiveError: a key from another marking network or of another dimension, a model without a linear
            head or whose head does not fit its features, an unreadable held-out image, fewer than
            ``MIN_IMAGES`` images, classes the key lacks, or no class in common.
    """
    if not isinstance(key, MarkingKey):
        raise RadioactiveError("key must be a MarkingKey (MarkingKey.load(path))")
    if key.dim != marking_network.feature_dim:
        raise RadioactiveError(
            f"the key's carriers have d={key.dim} but the marking network gives {marking_network.feature_dim} "
            "features: use the marking network saved with the key"
        )
    key.check_network(network_identity(marking_network))
    if not ridge > 0:
        raise RadioactiveError(f"ridge must be positive (e.g. 1e-3), got {ridge!r}")
    head, size, names = _model_parts(model, class_names)
    check_key = getattr(model, "check_key", None)  # a detector refuses a key of other classes (detector.py)
    if callable(check_key):
        check_key(key)
    if classes is not None:
        lacking = [c for c in classes if c not in key.names]
        if lacking:
            raise RadioactiveError(f"the key has no carrier for {lacking}; it knows {list(key.names)}")
        absent = [c for c in classes if c not in names]
        if absent:
            raise RadioactiveError(f"the model has no class {absent}; its classes are {list(names)}")
        tested = list(dict.fromkeys(classes))
        skipped: list[str] = []
    else:
        tested = [c for c in key.names if c in names]
        skipped = [c for c in key.names if c not in names]
    if not tested:
        raise RadioactiveError(
            f"the model's classes {list(names)} and the key's {list(key.names)} have none in common: "
            "is this the right key, or should class_names name the model's outputs?"
        )
    images = load_images(held_out_images)
    if len(images) < MIN_IMAGES:
        raise RadioactiveError(
            f"{len(images)} held-out images are too few to align two feature spaces; give at least {MIN_IMAGES}, "
            f"ideally more than the marking network's {key.dim} dimensions"
        )
    b = _tested_features(model, images, size, batch_size).double().numpy()  # [n, e]
    if b.ndim != 2 or b.shape[1] != head.in_features:
        raise RadioactiveError(
            f"the model's features have dimension {b.shape[-1]} but its head takes {head.in_features}: "
            "features(x) must be what the head reads"
        )
    a = _marking_features(marking_network, images, batch_size)  # [n, d]
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise RadioactiveError("a held-out image gives non-finite features; check the images and the model")
    notes = []
    if skipped:
        notes.append(f"the key's classes {skipped} are not classes of the model: not tested")
    unmarked = [c for c in names if c not in key.names]
    if unmarked:
        notes.append(f"the model's classes {unmarked} have no carrier in this key: not tested")
    if len(images) < key.dim:
        notes.append(
            f"only {len(images)} held-out images for d={key.dim} dimensions: the alignment leans on its ridge "
            "penalty; more held-out images give a stronger test"
        )
    r2 = _held_out_r2(a, b, ridge, seed)
    if not r2 >= 0.3:
        notes.append(
            f"the alignment explains little of the model's features (held-out R² = {r2:.2f}): the p-value stays "
            "valid, but a weak alignment can hide a real mark"
        )
    m, _, _ = fit_alignment(a, b, ridge)  # [e, d]
    w = head.weight.detach().double().numpy()  # [n_classes, e]
    mapped = w[[names.index(c) for c in tested]] @ m  # [k, d]
    carriers = np.stack([key.carrier(c) for c in tested])  # [k, d]
    cos = row_cosines(mapped, carriers)
    ps = cosine_pvalue(cos, key.dim)
    return WhiteboxResult(
        p_value=combine_pvalues(ps),
        classes=tuple(ClassTest(c, float(x), float(p)) for c, x, p in zip(tested, cos, ps, strict=True)),
        dim=key.dim,
        tested_dim=int(b.shape[1]),
        n_images=len(images),
        alignment_r2=r2,
        skipped_classes=tuple(skipped),
        notes=tuple(notes),
        alpha=alpha,
    )


# --- black-box --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlackboxResult:
    """What :func:`verify_blackbox` found.

    Attributes:
        p_value: one-sided Wilcoxon signed-rank p-value (small when marked copies have the lower loss).
        statistic: the Wilcoxon statistic (sum of the ranks of positive gaps).
        mean_gap: mean of (loss on original - loss on marked copy), nats; positive favours the marked copies.
        median_gap: its median.
        n_pairs: pairs compared.
        n_tied: pairs left out of the test for a zero difference (equal losses, or the reference's exact gap).
        reference_mean_gap: the reference model's mean gap, when one was given (the test is then on the
            difference between the two models' gaps, pair by pair).
        notes: warnings.
        alpha: the threshold of :attr:`verdict`; without a reference model the verdict never reports detection.
    """

    p_value: float
    statistic: float
    mean_gap: float
    median_gap: float
    n_pairs: int
    n_tied: int
    reference_mean_gap: float | None = None
    notes: tuple[str, ...] = ()
    alpha: float = DEFAULT_ALPHA

    @property
    def verdict(self) -> Verdict:
        if self.reference_mean_gap is None and self.p_value < self.alpha:
            # Not calibrated: models never trained on the marked photos have fallen below alpha (see the module).
            return Verdict(
                self.p_value,
                self.alpha,
                False,
                f"the marked copies fit this model better than their originals (p = {_format_p(self.p_value)}), "
                "but without a reference model that is not evidence of training: marks that make photos look more "
                "like their class can do this for a model never trained on them. Run again with a reference model "
                "trained without the marked photos",
            )
        if self.reference_mean_gap is None:
            return _verdict(
                self.p_value, self.alpha, "fit the marked copies this much better than their originals"
            )
        return _verdict(
            self.p_value, self.alpha, "fit the marked copies this much better than the reference model does"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"test": "blackbox", **asdict(self), "verdict": self.verdict.to_dict()}


LogitsFn = Callable[[Sequence[Image.Image]], ArrayLike]


def _logits_fn(model: nn.Module | LogitsFn, batch_size: int) -> LogitsFn:
    if isinstance(model, nn.Module):
        size = getattr(model, "image_size", None)
        if not isinstance(size, int):
            raise RadioactiveError(
                "the tested model needs an image_size (the square side its images are resized to)"
            )

        def run(images: Sequence[Image.Image]) -> ArrayLike:
            was_training = model.training
            model.eval()
            try:
                with torch.no_grad():
                    return torch.cat(
                        [
                            model(images_to_tensor(images[s : s + batch_size], size))
                            for s in range(0, len(images), batch_size)
                        ]
                    ).numpy()
            finally:
                model.train(was_training)

        return run
    if not callable(model):
        raise RadioactiveError(
            "model must be a torch module or a function from images to logits [n, n_classes]"
        )
    return model


def _cross_entropy(logits: ArrayLike, y: NDArray[np.int64], what: str) -> NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != len(y):
        raise RadioactiveError(
            f"the model gave logits of shape {z.shape} for {len(y)} {what}: expected [n, n_classes]"
        )
    if not np.isfinite(z).all():
        raise RadioactiveError(f"the model gave non-finite logits for the {what}")
    if int(y.max()) >= z.shape[1]:
        raise RadioactiveError(f"a label is class {int(y.max())} but the model has only {z.shape[1]} outputs")
    zmax = z.max(1, keepdims=True)
    log_norm = zmax[:, 0] + np.log(np.exp(z - zmax).sum(1))
    return log_norm - z[np.arange(len(y)), y]  # [n]


def _loss_gap(
    run: LogitsFn, marked: list[Image.Image], originals: list[Image.Image], y: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Per pair: cross-entropy on the original minus on the marked copy (positive: the copy fits better)."""
    return _cross_entropy(run(originals), y, "originals") - _cross_entropy(run(marked), y, "marked images")


def verify_blackbox(
    model: nn.Module | LogitsFn,
    marked_images: Sequence[ImageInput],
    original_images: Sequence[ImageInput],
    labels: Sequence[int | str],
    class_names: Sequence[str] | None = None,
    *,
    reference: nn.Module | LogitsFn | None = None,
    alpha: float = DEFAULT_ALPHA,
    batch_size: int = 64,
) -> BlackboxResult:
    """Test whether ``model`` fits marked copies better than their unmarked originals (a paired, one-sided test).

    Args:
        model: a torch classifier (``image_size`` attribute, pixels in ``[0, 1]`` -> logits), or a function from a
            list of PIL images to logits ``[n, n_classes]`` (e.g. a remote API's scores).
        marked_images, original_images: the pairs, in the same order (PIL images or file paths).
        labels: each pair's class, an index or a name in ``class_names``.
        class_names: the model's output classes (default: ``model.class_names``).
        reference: a model of the same task known *not* to have seen the marked photos (e.g. one you trained on
            other photos), same outputs. With it, each pair's gap is compared with the reference's gap on the same
            pair, so a mark that makes photos look more like their class to *any* model is not taken for
            memorisation. Without it, the p-value only says the marked copies have the lower loss.
        alpha: the verdict's threshold.

    Raises:
        RadioactiveError: pairs that do not match (counts or sizes), labels outside the classes, unreadable images,
            logits of the wrong shape.
    """
    if len(marked_images) != len(original_images) or len(marked_images) != len(labels):
        raise RadioactiveError(
            f"{len(marked_images)} marked images, {len(original_images)} originals and {len(labels)} labels: "
            "give one original and one label per marked copy, in the same order"
        )
    if not marked_images:
        raise RadioactiveError("no marked images to test: give marked copies and their originals")
    marked = load_images(marked_images, "marked image")
    originals = load_images(original_images, "original image")
    for i, (m, o) in enumerate(zip(marked, originals, strict=True)):
        if m.size != o.size:
            raise RadioactiveError(
                f"pair {i}: the marked image is {m.size[0]}x{m.size[1]} but its original {o.size[0]}x{o.size[1]}: "
                "pairs must be a marked copy and the very photo it was made from"
            )
    names = tuple(class_names) if class_names is not None else tuple(getattr(model, "class_names", ()) or ())
    y = []
    for i, label in enumerate(labels):
        if isinstance(label, str):
            if label not in names:
                raise RadioactiveError(
                    f"pair {i} has label {label!r}, not one of the model's classes {list(names)}"
                )
            y.append(names.index(label))
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
            y.append(int(label))
        else:
            raise RadioactiveError(f"pair {i} has label {label!r}: give a class name or a class index >= 0")
    y_arr = np.asarray(y, dtype=np.int64)
    gap = _loss_gap(_logits_fn(model, batch_size), marked, originals, y_arr)
    notes = []
    reference_gap = None
    if reference is not None:
        reference_gap = _loss_gap(_logits_fn(reference, batch_size), marked, originals, y_arr)
        diff = gap - reference_gap
    else:
        diff = gap
        notes.append(
            "no reference model: a mark that pushes photos towards their class can lower their loss for a model "
            "never trained on them too; pass a reference model trained without the marked photos for a p-value "
            "that separates the two"
        )
    nonzero = diff[diff != 0]
    if nonzero.size == 0:
        notes.append(
            "every marked copy has exactly its original's loss (are they the same images?): no evidence"
        )
        p, statistic = 1.0, 0.0
    else:
        test = stats.wilcoxon(nonzero, alternative="greater")
        p, statistic = float(test.pvalue), float(test.statistic)
    if len(gap) < 20:
        notes.append(f"only {len(gap)} pairs: the test can only give weak evidence; use more marked photos")
    return BlackboxResult(
        p_value=p,
        statistic=statistic,
        mean_gap=float(gap.mean()),
        median_gap=float(np.median(gap)),
        n_pairs=len(gap),
        n_tied=int(len(gap) - nonzero.size),
        reference_mean_gap=None if reference_gap is None else float(reference_gap.mean()),
        notes=tuple(notes),
        alpha=alpha,
    )
