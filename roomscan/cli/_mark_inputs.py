"""What ``roomscan mark`` marks: the photos of a dataset or folder, each with its class (or set), and the chosen few.

Three kinds of input, each giving photos a name to be marked for (one carrier per name):

* a roomscan dataset (``annotations.json`` + ``images/``): a photo's class is the amenity whose boxes cover most of
  it; photos without boxes have no class and are skipped (or use ``sets``);
* a folder with one sub-folder per class (``kitchen/1.jpg``): the sub-folder's name;
* any folder with ``sets=N``: unlabelled photos dealt at random (seeded) into ``set-1`` .. ``set-N``.

:func:`choose` then takes the asked fraction of each class (at least one photo), at random for a seed, replacing a
chosen photo that cannot be decoded by the next one of its class, so unreadable files are named, never fatal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from roomscan.data.dataset import ANNOTATIONS_FILE, IMAGES_DIR, DetectionDataset
from roomscan.detection.image import IMAGE_SUFFIXES, load_image
from roomscan.errors import ImageError
from roomscan.radioactive import RadioactiveError, SkippedFile

__all__ = ["MarkInputs", "Photo", "choose", "images_dir_of", "read_inputs"]

MARKABLE = ("JPEG", "PNG")


@dataclass(frozen=True)
class Photo:
    """One photo that could be marked, and the class or set it belongs to."""

    path: Path
    name: str


@dataclass(frozen=True)
class MarkInputs:
    """The photos found, their names (one carrier each, sorted), where relative output paths start, what was left out.

    ``dataset`` is set when the input was a roomscan dataset (``root`` is then its ``images/`` folder).
    """

    source: Path
    root: Path
    photos: tuple[Photo, ...]
    names: tuple[str, ...]
    skipped: tuple[SkippedFile, ...] = ()
    dataset: DetectionDataset | None = field(default=None, compare=False)


def read_inputs(source: Path, *, sets: int | None, classes_from_folders: bool, seed: int) -> MarkInputs:
    """Find the photos under ``source`` and give each its class or set (see the module docstring).

    Raises:
        RadioactiveError: a missing source, a file, a flat folder without ``sets``, or no photo that can be marked.
    """
    if not source.exists():
        raise RadioactiveError(f"{source}: no such dataset or folder; check the path")
    if not source.is_dir():
        raise RadioactiveError(f"{source}: is a file; give a roomscan dataset or a folder of photos")
    if sets is not None and classes_from_folders:
        raise RadioactiveError("--sets and --classes-from-folders exclude each other: pick one")
    if (source / ANNOTATIONS_FILE).is_file():
        if classes_from_folders:
            raise RadioactiveError(
                f"{source} is a roomscan dataset: its classes come from its boxes; drop --classes-from-folders"
            )
        return _from_dataset(source, sets=sets, seed=seed)
    return _from_folder(source, sets=sets, classes_from_folders=classes_from_folders, seed=seed)


def _from_dataset(source: Path, *, sets: int | None, seed: int) -> MarkInputs:
    dataset = DetectionDataset.load(source)
    photos: list[Photo] = []
    skipped: list[SkippedFile] = []
    slugs = dataset.taxonomy.slugs
    for image, dets in dataset:
        path = dataset.path(image)
        if sets is not None:
            photos.append(Photo(path, ""))
            continue
        if len(dets) == 0:
            skipped.append(SkippedFile(str(path), "no boxes, so no class to mark it for (or mark with --sets N)"))
            continue
        area = (dets.xyxy[:, 2] - dets.xyxy[:, 0]) * (dets.xyxy[:, 3] - dets.xyxy[:, 1])  # [n_boxes]
        totals = np.bincount(np.asarray(dets.class_id, dtype=np.int64), weights=area, minlength=len(slugs))
        photos.append(Photo(path, slugs[int(np.argmax(totals))]))
    usable, bad = _markable(photos)
    return _finish(source, dataset.images_dir, usable, skipped + bad, sets=sets, seed=seed, dataset=dataset)


def _from_folder(source: Path, *, sets: int | None, classes_from_folders: bool, seed: int) -> MarkInputs:
    entries = sorted(p for p in source.iterdir() if not p.name.startswith("."))
    loose = [p for p in entries if p.is_file()]
    folders = [p for p in entries if p.is_dir()]
    skipped: list[SkippedFile] = []
    photos: list[Photo] = []
    if sets is not None:
        photos = [Photo(p, "") for p in _files_under(source)]
    elif classes_from_folders or (folders and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in loose)):
        if not folders:
            raise RadioactiveError(
                f"{source}: no class sub-folders; put each class's photos in its own folder (e.g. "
                f"{source / 'kitchen'}/1.jpg) or mark unlabelled photos with --sets N"
            )
        skipped += [SkippedFile(str(p), "not in a class sub-folder, so it has no class") for p in loose]
        for folder in folders:
            photos += [Photo(p, folder.name) for p in _files_under(folder)]
    else:
        raise RadioactiveError(
            f"{source}: has photos but no class sub-folders; mark them as unlabelled photos with --sets N "
            "(N carriers, e.g. --sets 1), or sort them into one sub-folder per class"
        )
    others = [p for p in photos if p.path.suffix.lower() not in IMAGE_SUFFIXES]
    skipped += [SkippedFile(str(p.path), "not an image file name") for p in others]
    usable, bad = _markable([p for p in photos if p.path.suffix.lower() in IMAGE_SUFFIXES])
    return _finish(source, source, usable, skipped + bad, sets=sets, seed=seed, dataset=None)


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )  # fmt: skip


def _markable(photos: Sequence[Photo]) -> tuple[list[Photo], list[SkippedFile]]:
    """Photos whose header says they can be marked and written back (JPEG RGB, PNG RGB/RGBA, one frame)."""
    usable, skipped = [], []
    for photo in photos:
        problem = _header_problem(photo.path)
        if problem:
            skipped.append(SkippedFile(str(photo.path), problem))
        else:
            usable.append(photo)
    return usable, skipped


def _header_problem(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            fmt, mode, frames = im.format, im.mode, getattr(im, "n_frames", 1)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return f"cannot be read as an image ({exc.__class__.__name__}: {exc})"
    if fmt not in MARKABLE:
        return f"a {fmt} file; marked copies are written in the original format, which roomscan does for JPEG and PNG"
    if (fmt == "JPEG" and mode != "RGB") or (fmt == "PNG" and mode not in ("RGB", "RGBA")):
        return f"a {mode} {fmt} (only colour RGB JPEGs and RGB/RGBA PNGs are marked)"
    if frames > 1:
        return "an animated image (only still images are marked)"
    return None


def _finish(
    source: Path,
    root: Path,
    photos: list[Photo],
    skipped: list[SkippedFile],
    *,
    sets: int | None,
    seed: int,
    dataset: DetectionDataset | None,
) -> MarkInputs:
    if not photos:
        raise RadioactiveError(
            f"{source}: no photo that can be marked ({len(skipped)} skipped"
            + (f", e.g. {skipped[0].source}: {skipped[0].reason}" if skipped else "")
            + ")"
        )
    if sets is not None:
        if sets < 1 or sets > len(photos):
            raise RadioactiveError(f"--sets must be 1..{len(photos)} (one photo per set at least), got {sets}")
        order = np.random.default_rng(seed).permutation(len(photos))
        width = len(str(sets))
        dealt = [Photo(photos[i].path, f"set-{rank % sets + 1:0{width}d}") for rank, i in enumerate(order)]
        photos = sorted(dealt, key=lambda p: str(p.path))
    names = tuple(sorted({p.name for p in photos}))
    return MarkInputs(source, root, tuple(photos), names, tuple(skipped), dataset)


def choose(inputs: MarkInputs, fraction: float, seed: int) -> tuple[list[Photo], list[SkippedFile]]:
    """The photos to mark: ``fraction`` of each class (rounded, at least one), seeded; undecodable ones replaced.

    Returns the chosen photos (in path order) and the chosen photos that could not be decoded.
    """
    if not 0 < fraction <= 1:
        raise RadioactiveError(f"--fraction must be in (0, 1] (e.g. 0.01 for 1%), got {fraction:g}")
    rng = np.random.default_rng(seed)
    chosen: list[Photo] = []
    bad: list[SkippedFile] = []
    for name in inputs.names:
        members = [p for p in inputs.photos if p.name == name]
        want = max(1, round(fraction * len(members)))
        taken = 0
        for i in rng.permutation(len(members)):
            if taken == want:
                break
            try:
                load_image(members[i].path)
            except ImageError as exc:
                bad.append(SkippedFile(str(members[i].path), str(exc)))
                continue
            chosen.append(members[i])
            taken += 1
    if not chosen:
        raise RadioactiveError(f"none of the photos chosen could be decoded ({len(bad)} tried); nothing to mark")
    return sorted(chosen, key=lambda p: str(p.path)), bad


def images_dir_of(out: Path, inputs: MarkInputs) -> Path:
    """Where marked copies go under ``out``: ``out/images`` for a dataset (so ``out`` is a dataset too), else ``out``."""
    return out / IMAGES_DIR if inputs.dataset is not None else out
