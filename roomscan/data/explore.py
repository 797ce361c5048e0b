"""The data report: look at a detection dataset before training on it.

``explore`` reads every image once (with :func:`~roomscan.detection.image.load_image`, the same decoder training
uses) and writes ``report.html`` (one self-contained page: charts and sample thumbnails are embedded as data URIs,
so the file can be mailed or attached to an issue) and ``summary.json`` (the same numbers, machine-readable) to an
output directory. It covers class balance, boxes per image, box sizes (COCO small / medium / large) and aspect
ratios, image sizes, exact and near-duplicate images, unreadable files, degenerate and out-of-bounds boxes, declared
sizes that disagree with the files, and a strip of samples per class with that class's boxes drawn. A short list
of findings ("what to look at") heads both files.

Per-image facts (hashes, decoded size, error) are cached in ``OUT/.explore-cache.jsonl`` as they are computed, so
a run that crashes or is interrupted resumes where it stopped; a file whose size or mtime changed is read again.

Example:
    >>> report = explore("data/amenities-train", "reports/train")        # doctest: +SKIP
    >>> report.findings[0]
    'Dishwasher has 92 boxes vs 5,981 for Stairs (65x imbalance)'
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roomscan.data import _dedup
from roomscan.data._explore_scan import CACHE_FILE, ImageFacts, ProgressFn, read_all
from roomscan.data.dataset import DetectionDataset, ImageRecord, Skipped, skipped_lines, write_json_atomic
from roomscan.errors import ImageError

__all__ = [
    "BoxIssue",
    "ClassStats",
    "ExploreReport",
    "SizeMismatch",
    "UnreadableImage",
    "explore",
]

SMALL_AREA = 32**2  # COCO area ranges, in px^2 of the box
LARGE_AREA = 96**2
OUT_OF_BOUNDS_TOLERANCE_PX = (
    0.5  # labelling tools round edges to the half pixel; anything further out is a bug
)
IMBALANCE_WORTH_NOTING = 3.0


@dataclass(frozen=True)
class ClassStats:
    """Boxes of one class: how many, on how many images, and by COCO area range (degenerate boxes excluded)."""

    slug: str
    name: str
    boxes: int
    images: int
    small: int
    medium: int
    large: int


@dataclass(frozen=True)
class UnreadableImage:
    """An image the decoder refused.

    ``kind``: missing, empty, truncated, too large, not an image or corrupt; ``reason``: the decoder's message.
    """

    image_id: int
    file_name: str
    kind: str
    reason: str


@dataclass(frozen=True)
class BoxIssue:
    """A box with zero or negative width/height (``degenerate``) or reaching outside its image (``out_of_bounds``)."""

    image_id: int
    file_name: str
    index: int
    class_name: str
    box: tuple[float, float, float, float]
    problem: str


@dataclass(frozen=True)
class SizeMismatch:
    """An image whose annotation declares a size other than the decoded file's (EXIF rotation, a resized file)."""

    image_id: int
    file_name: str
    declared: tuple[int, int]
    actual: tuple[int, int]


@dataclass(frozen=True)
class ExploreReport:
    """What ``explore`` found; ``to_dict()`` is what ``summary.json`` holds.

    Attributes:
        findings: the short "what to look at" list, most serious first.
        classes: per-class counts, in taxonomy order.
        imbalance_ratio: boxes of the largest class over the smallest non-empty one (``None`` under two).
        boxes_per_image: ``(boxes, images)`` pairs: how many images carry that many boxes.
        image_sizes: ``(width, height, images)`` of decoded files, most common first.
        aspect_ratio_quantiles: box width/height at the 5th, 50th and 95th percentile.
        exact_duplicates / near_duplicates: groups of file names (near: different bytes, nearly the same picture).
        skipped: what reading the source format left out or changed (orphan label files, unknown classes,
            clipped boxes...), each with its reason; also summarised in ``findings``.
    """

    dataset: str
    num_images: int
    num_boxes: int
    findings: tuple[str, ...]
    classes: tuple[ClassStats, ...]
    imbalance_ratio: float | None
    empty_classes: tuple[str, ...]
    boxes_per_image: tuple[tuple[int, int], ...]
    images_without_boxes: tuple[str, ...]
    image_sizes: tuple[tuple[int, int, int], ...]
    aspect_ratio_quantiles: tuple[float, float, float] | None
    exact_duplicates: tuple[tuple[str, ...], ...]
    near_duplicates: tuple[tuple[str, ...], ...]
    near_duplicate_distance: int
    unreadable: tuple[UnreadableImage, ...]
    degenerate_boxes: tuple[BoxIssue, ...]
    out_of_bounds_boxes: tuple[BoxIssue, ...]
    size_mismatches: tuple[SizeMismatch, ...]
    skipped: tuple[Skipped, ...]
    report_html: str
    summary_json: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explore(
    dataset: DetectionDataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    samples_per_class: int = 6,
    near_duplicate_distance: int = 6,
    workers: int = 1,
    progress: ProgressFn | None = None,
    fmt: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    annotations: str = "latest",
) -> ExploreReport:
    """Profile a dataset and write ``report.html`` and ``summary.json`` into ``out_dir``.

    Unreadable images never stop the report: they are listed with the decoder's message, and their boxes still
    count in the class statistics (the annotations exist; only the pixels are missing).

    Args:
        dataset: a loaded dataset, or a path in any format ``data convert`` reads (a roomscan, YOLO, VOC or Open
            Images folder, a COCO or Label Studio .json), detected the same way.
        out_dir: created if needed; also holds the resume cache.
        samples_per_class: thumbnails in each class's sample strip (0 for none).
        near_duplicate_distance: largest perceptual-hash Hamming distance (of 64 bits) that counts as a
            near-duplicate; 0 finds only re-encodings of the same picture, ~10 starts to join different photos.
        workers: threads decoding images (Pillow releases the GIL while decoding).
        progress: called as ``progress(stage, done, total)``.
        fmt: the format of a ``dataset`` path (one of :data:`~roomscan.data.convert.FORMATS`); detected if None.
        image_root, annotations: as for :func:`~roomscan.data.convert.read_dataset` (where the images are;
            which Label Studio annotations count).

    Raises:
        DatasetError: ``dataset`` is a path that does not hold a readable dataset.
    """
    from roomscan.data import _explore_html

    if not 0 <= near_duplicate_distance <= 64:
        raise ValueError(f"near_duplicate_distance must be in 0..64, got {near_duplicate_distance}")
    if isinstance(dataset, DetectionDataset):
        ds, name = dataset, str(dataset.images_dir.parent if dataset.images_dir.name == "images" else dataset.images_dir)
    else:
        from roomscan.data.convert import read_dataset

        ds = read_dataset(dataset, fmt, image_root=image_root, annotations=annotations)
        name = str(dataset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    facts = read_all(ds, out / CACHE_FILE, workers, progress)

    classes, ratios = _class_stats(ds)
    per_image = [len(d) for _, d in ds]
    readable = [(im, facts[im.id]) for im in ds.images if facts[im.id].error is None]
    sizes = Counter((f.width, f.height) for _, f in readable)
    degenerate, out_of_bounds = _box_issues(ds)
    counts = [c.boxes for c in classes if c.boxes > 0]
    files = [im.file_name for im, _ in readable]
    digests = [str(f.sha256) for _, f in readable]
    report = ExploreReport(
        dataset=name,
        num_images=len(ds),
        num_boxes=ds.num_boxes,
        findings=(),
        classes=tuple(classes),
        imbalance_ratio=round(max(counts) / min(counts), 2) if len(counts) > 1 else None,
        empty_classes=tuple(c.slug for c in classes if c.boxes == 0),
        boxes_per_image=tuple(sorted(Counter(per_image).items())),
        images_without_boxes=tuple(im.file_name for im, d in ds if len(d) == 0),
        image_sizes=tuple(
            (w or 0, h or 0, n) for (w, h), n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        aspect_ratio_quantiles=tuple(round(float(q), 3) for q in np.quantile(ratios, [0.05, 0.5, 0.95]))
        if len(ratios)
        else None,  # type: ignore[arg-type]
        exact_duplicates=tuple(tuple(g) for g in _dedup.exact_groups(files, digests)),
        near_duplicates=tuple(
            tuple(g)
            for g in _dedup.near_groups(
                files, digests, [str(f.phash) for _, f in readable], near_duplicate_distance
            )
        ),
        near_duplicate_distance=near_duplicate_distance,
        unreadable=tuple(
            UnreadableImage(im.id, im.file_name, str(facts[im.id].kind), str(facts[im.id].error))
            for im in ds.images
            if facts[im.id].error is not None
        ),
        degenerate_boxes=tuple(degenerate),
        out_of_bounds_boxes=tuple(out_of_bounds),
        size_mismatches=tuple(
            SizeMismatch(im.id, im.file_name, (im.width, im.height), (f.width or 0, f.height or 0))
            for im, f in readable
            if (f.width, f.height) != (im.width, im.height)
        ),
        skipped=tuple(ds.skipped),
        report_html=str(out / "report.html"),
        summary_json=str(out / "summary.json"),
    )
    report = _with_findings(report)

    samples = _samples(ds, facts, samples_per_class, progress)
    page = _explore_html.render(report, per_image, ratios, samples)
    tmp = out / "report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out / "report.html")
    write_json_atomic(out / "summary.json", report.to_dict())
    return report


# -- statistics -----------------------------------------------------------------------------------------------
def _class_stats(ds: DetectionDataset) -> tuple[list[ClassStats], np.ndarray]:
    n = len(ds.taxonomy)
    boxes, images, small, medium, large = (np.zeros(n, dtype=np.int64) for _ in range(5))
    ratios: list[np.ndarray] = []
    for _, dets in ds:
        if len(dets) == 0:
            continue
        cls = np.asarray(dets.class_id, dtype=np.int64)
        w, h = dets.xyxy[:, 2] - dets.xyxy[:, 0], dets.xyxy[:, 3] - dets.xyxy[:, 1]
        ok = (w > 0) & (h > 0)
        area = w * h
        np.add.at(boxes, cls, 1)
        images[np.unique(cls)] += 1
        np.add.at(small, cls[ok & (area < SMALL_AREA)], 1)
        np.add.at(medium, cls[ok & (area >= SMALL_AREA) & (area <= LARGE_AREA)], 1)
        np.add.at(large, cls[ok & (area > LARGE_AREA)], 1)
        ratios.append(w[ok] / h[ok])
    stats = [
        ClassStats(
            a.slug, a.name, int(boxes[i]), int(images[i]), int(small[i]), int(medium[i]), int(large[i])
        )
        for i, a in enumerate(ds.taxonomy)
    ]
    return stats, (np.concatenate(ratios) if ratios else np.zeros(0))


def _box_issues(ds: DetectionDataset) -> tuple[list[BoxIssue], list[BoxIssue]]:
    from roomscan.detection.core import labels_of

    degenerate, outside = [], []
    tol = OUT_OF_BOUNDS_TOLERANCE_PX
    for im, dets in ds:
        labels = labels_of(dets)
        for k, (x1, y1, x2, y2) in enumerate(dets.xyxy.tolist()):
            box = (round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2))
            if x2 <= x1 or y2 <= y1:
                degenerate.append(BoxIssue(im.id, im.file_name, k, labels[k], box, "degenerate"))
            if x1 < -tol or y1 < -tol or x2 > im.width + tol or y2 > im.height + tol:
                outside.append(BoxIssue(im.id, im.file_name, k, labels[k], box, "out_of_bounds"))
    return degenerate, outside


def _with_findings(r: ExploreReport) -> ExploreReport:
    from dataclasses import replace

    def plural(n: int, word: str, many: str | None = None) -> str:
        return f"{n:,} {word if n == 1 else many or word + 's'}"

    found: list[str] = [f"Skipped while reading: {line}" for line in skipped_lines(r.skipped)]
    if r.unreadable:
        kinds = Counter(u.kind for u in r.unreadable)
        found.append(
            f"{plural(len(r.unreadable), 'unreadable image')} ("
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + ")"
        )
    if r.size_mismatches:
        found.append(
            f"{plural(len(r.size_mismatches), 'image')} whose declared size differs from the file's (boxes may be misplaced)"
        )
    if r.degenerate_boxes:
        found.append(
            f"{plural(len(r.degenerate_boxes), 'box', 'boxes')} with zero or negative width or height"
        )
    if r.out_of_bounds_boxes:
        found.append(f"{plural(len(r.out_of_bounds_boxes), 'box', 'boxes')} reaching outside their image")
    if r.exact_duplicates:
        extra = sum(len(g) - 1 for g in r.exact_duplicates)
        found.append(
            f"{plural(len(r.exact_duplicates), 'exact-duplicate group')} ({plural(extra, 'redundant file')})"
        )
    if r.near_duplicates:
        found.append(
            f"{plural(len(r.near_duplicates), 'near-duplicate group')} (perceptual hash within {r.near_duplicate_distance} bits)"
        )
    present = [c for c in r.classes if c.boxes > 0]
    if r.imbalance_ratio is not None and r.imbalance_ratio >= IMBALANCE_WORTH_NOTING:
        lo = min(present, key=lambda c: c.boxes)
        hi = max(present, key=lambda c: c.boxes)
        found.append(
            f"{lo.name} has {lo.boxes:,} boxes vs {hi.boxes:,} for {hi.name} ({r.imbalance_ratio:.0f}x imbalance)"
        )
    if r.empty_classes:
        shown = ", ".join(r.empty_classes[:8]) + (", ..." if len(r.empty_classes) > 8 else "")
        found.append(f"{plural(len(r.empty_classes), 'class', 'classes')} without boxes: {shown}")
    if r.images_without_boxes:
        share = len(r.images_without_boxes) / max(1, r.num_images)
        found.append(f"{plural(len(r.images_without_boxes), 'image')} ({share:.0%}) without boxes")
    small = sum(c.small for c in r.classes)
    sized = small + sum(c.medium + c.large for c in r.classes)
    if sized and small / sized > 0.5:
        found.append(f"{small / sized:.0%} of boxes are small (under 32x32 px)")
    return replace(
        r,
        findings=tuple(found)
        if found
        else ("Nothing stands out: no unreadable files, bad boxes or duplicates",),
    )


def _samples(
    ds: DetectionDataset, facts: dict[int, ImageFacts], per_class: int, progress: ProgressFn | None
) -> list[bytes | None]:
    """One JPEG strip of up to ``per_class`` readable images per class (``None`` when it has none), in class order."""
    from roomscan.data import _plots
    from roomscan.detection.image import load_image

    having: list[list[ImageRecord]] = [[] for _ in ds.taxonomy]
    for im, dets in ds:
        if facts[im.id].error is None and len(dets):
            for cls in np.unique(np.asarray(dets.class_id)).tolist():
                having[cls].append(im)
    rng = random.Random(0)
    chosen = [sorted(rng.sample(pool, min(per_class, len(pool))), key=lambda im: im.id) for pool in having]
    total, done = sum(len(c) for c in chosen), 0
    strips: list[bytes | None] = []
    for cls, images in enumerate(chosen):
        thumbs = []
        for im in images:
            try:
                photo = load_image(ds.path(im), name=im.file_name)
            except ImageError:
                continue  # changed on disk since it was read; the strip is just one shorter
            dets = ds.annotations[im.id]
            thumbs.append(_plots.thumbnail_with_boxes(photo.image, dets.xyxy[dets.class_id == cls]))
            done += 1
            if progress:
                progress("Drawing samples", done, total)
        strips.append(_plots.sample_strip(thumbs) if thumbs else None)
    return strips
