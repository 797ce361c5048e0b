"""Convert a detection dataset between formats: roomscan, COCO, YOLO, Pascal VOC, Open Images, Label Studio.

Every format reads into one :class:`~roomscan.data.dataset.DetectionDataset` and writes from it, so a conversion
is ``read`` + ``write``; images are hard-linked (copied across file systems) into the output.

Example:
    >>> detect_format("exports/project-3.json")                          # doctest: +SKIP
    'labelstudio'
    >>> convert("exports/project-3.json", "yolo", "datasets/rooms-yolo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from roomscan.data.dataset import ANNOTATIONS_FILE, IMAGES_DIR, TAXONOMY_FILE, DatasetError, DetectionDataset
from roomscan.taxonomy import Taxonomy, load_taxonomy

FORMATS = ("roomscan", "coco", "yolo", "voc", "openimages", "labelstudio")

__all__ = ["FORMATS", "convert", "detect_format", "read_dataset", "write_dataset"]


def _json_kind(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16).lstrip()
    except OSError:
        return None
    if head.startswith(b"["):
        return "labelstudio"
    if head.startswith(b"{"):
        if b'"categories"' in head or b'"images"' in head:
            return "coco"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return "coco" if isinstance(doc, dict) and "images" in doc else "labelstudio" if isinstance(doc, dict) and "data" in doc else None
    return None


def detect_format(path: str | os.PathLike[str]) -> str:
    """Which format ``path`` holds: one of :data:`FORMATS`.

    Recognises a roomscan dataset (``annotations.json`` + ``taxonomy.yaml``), a COCO JSON file (or a folder with
    ``annotations.json``), a YOLO folder (``data.yaml``/``classes.txt`` + ``labels/``), a VOC folder
    (``Annotations/*.xml``), an Open Images folder (``*annotations-bbox.csv``) and a Label Studio JSON export.

    Raises:
        DatasetError: the path does not exist or matches no format (the message lists what was looked for).
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or directory")
    if p.is_file():
        kind = _json_kind(p) if p.suffix.lower() == ".json" else None
        if kind is None:
            raise DatasetError(f"{p}: not a COCO or Label Studio JSON file; pass --from FORMAT if it is one")
        return kind
    if (p / ANNOTATIONS_FILE).is_file():
        return "roomscan" if (p / TAXONOMY_FILE).is_file() else "coco"
    if (p / "Annotations").is_dir():
        return "voc"
    if any(p.glob("*annotations-bbox.csv")):
        return "openimages"
    if (p / "labels").is_dir() or any((p / n).is_file() for n in ("data.yaml", "classes.txt", "obj.names")):
        return "yolo"
    jsons = sorted(p.glob("*.json"))
    if len(jsons) == 1 and _json_kind(jsons[0]):
        return str(_json_kind(jsons[0]))
    raise DatasetError(
        f"{p}: not a dataset roomscan recognises (looked for annotations.json, Annotations/*.xml, "
        "*annotations-bbox.csv, data.yaml or labels/, a COCO or Label Studio .json); pass --from FORMAT"
    )


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def read_dataset(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    taxonomy: Taxonomy | None = None,
    image_root: str | os.PathLike[str] | None = None,
    annotations: str = "latest",
) -> DetectionDataset:
    """Read ``path`` in ``fmt`` (detected when ``None``); ``taxonomy`` maps its labels onto known amenities.

    ``image_root`` is where a COCO, Open Images or Label Studio source's images are (Label Studio upload and S3
    paths are looked up under it); ``annotations`` is Label Studio's choice among a task's annotations
    (``latest``, ``first`` or ``all``; see :mod:`roomscan.data.formats.labelstudio`).
    """
    from roomscan.data.formats import coco, labelstudio, openimages, voc, yolo

    p = Path(path)
    fmt = _check_format(fmt or detect_format(p))
    if fmt == "roomscan":
        ds = DetectionDataset.load(p)
        return ds if taxonomy is None else coco.read(p / ANNOTATIONS_FILE, images_dir=p / IMAGES_DIR, taxonomy=taxonomy)
    if fmt == "coco":
        if p.is_dir():
            jsons = [p / ANNOTATIONS_FILE] if (p / ANNOTATIONS_FILE).is_file() else sorted(p.glob("*.json"))
            if len(jsons) != 1:
                raise DatasetError(f"{p}: expected one COCO .json file, found {len(jsons)}")
            p = jsons[0]
        return coco.read(p, taxonomy=taxonomy, images_dir=image_root)
    if fmt == "labelstudio" and p.is_dir() and not (p / labelstudio.EXPORT_FILE).is_file():
        jsons = sorted(p.glob("*.json"))
        if len(jsons) != 1:
            raise DatasetError(f"{p}: expected one Label Studio .json export, found {len(jsons)}")
        p = jsons[0]
    if fmt == "labelstudio":
        return labelstudio.read(p, taxonomy=taxonomy, images_dir=image_root, annotations=annotations)
    if fmt == "openimages":
        return openimages.read(p, taxonomy=taxonomy, images_dir=image_root)
    if image_root is not None:
        raise DatasetError(f"--image-root applies to coco, openimages and labelstudio sources, not {fmt}")
    return {"yolo": yolo, "voc": voc}[fmt].read(p, taxonomy=taxonomy)  # type: ignore[attr-defined]


def images_dir_of(fmt: str, out: Path) -> Path:
    """Where a dataset written in ``fmt`` under ``out`` keeps its images."""
    from roomscan.data.formats import voc

    return out / (voc.IMAGES_DIR if fmt == "voc" else IMAGES_DIR)


def write_dataset(dataset: DetectionDataset, fmt: str, out: str | os.PathLike[str], *, copy_images: bool = True) -> Path:
    """Write ``dataset`` under the directory ``out`` in ``fmt`` (COCO: ``out/annotations.json`` + ``out/images``)."""
    from roomscan.data.formats import _common, coco, labelstudio, openimages, voc, yolo

    out = Path(out)
    _check_format(fmt)
    if fmt in ("roomscan", "coco"):
        out.mkdir(parents=True, exist_ok=True)
        if fmt == "roomscan":
            dataset.save(out, copy_images=False)
        else:
            coco.write(dataset, out / ANNOTATIONS_FILE)
        if copy_images:
            _common.place_images(dataset, out / IMAGES_DIR)
        return out
    module = {"yolo": yolo, "voc": voc, "openimages": openimages, "labelstudio": labelstudio}[fmt]
    return module.write(dataset, out, copy_images=copy_images)  # type: ignore[attr-defined]


def convert(
    src: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str],
    *,
    from_format: str | None = None,
    taxonomy: str | os.PathLike[str] | Taxonomy | None = None,
    force: bool = False,
    on_image: Callable[[int, int], None] | None = None,
    image_root: str | os.PathLike[str] | None = None,
    annotations: str = "latest",
) -> DetectionDataset:
    """Read ``src`` and write it to the directory ``out`` in format ``to``; returns the dataset read.

    Args:
        src: the source dataset (file or directory).
        to: the target format (one of :data:`FORMATS`).
        out: the output directory; must be empty or absent unless ``force``.
        from_format: the source format (detected when ``None``).
        taxonomy: a taxonomy (or YAML path) the source's labels are resolved through; default: the source's own.
        force: write into a non-empty ``out`` (files of the same name are replaced).
        on_image: ``on_image(done, total)`` after each image is placed, for a progress bar.
        image_root: where the source's images are (COCO, Open Images, Label Studio); see :func:`read_dataset`.
        annotations: Label Studio: ``latest`` (default), ``first`` or ``all`` of a task's annotations.

    Raises:
        DatasetError: unknown format, malformed source (naming file and record), or a non-empty ``out``.
    """
    _check_format(to)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise DatasetError(f"{out}: the output exists and is not empty; choose another folder or pass --force")
    if out.exists() and Path(src).resolve() == out.resolve():
        raise DatasetError(f"{out}: the output must differ from the source")
    tax = load_taxonomy(taxonomy) if taxonomy is not None else None
    dataset = read_dataset(src, from_format, taxonomy=tax, image_root=image_root, annotations=annotations)
    write_dataset(dataset, to, out, copy_images=False)

    from roomscan.data.formats import place_images

    total = len(dataset)
    done = 0

    def _step() -> None:
        nonlocal done
        done += 1
        if on_image is not None:
            on_image(done, total)

    missing = place_images(dataset, images_dir_of(to, out), on_image=_step)
    if missing and len(missing) == total:
        raise DatasetError(f"{dataset.images_dir}: none of the {total} image files exist (e.g. {missing[0]}); "
                           "the annotations were written but the images are missing")
    return dataset
