"""Pascal VOC XML: one file per image::

    DATASET/
      Annotations/<name>.xml   <annotation><filename>, <size><width><height>, <object><name><difficult>
                               <bndbox><xmin><ymin><xmax><ymax></bndbox></object>...</annotation>
      JPEGImages/<name>.jpg    (``images/`` is accepted too)
      labels.txt               optional class order, one name per line (written by roomscan)

Coordinates are read as pixel edges, as CVAT, Roboflow and supervision write them (no 1-based shift). XML with a
DTD or entities is refused (the billion-laughs and external-entity attacks need one). Class names are written
exactly as the amenities' names; ``<difficult>`` is kept in ``Detections.data["difficult"]``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord, Skipped
from roomscan.data.formats._common import (
    Box,
    ClassMap,
    box_flags,
    box_rows,
    build_dataset,
    fail,
    fit_box,
    place_images,
)
from roomscan.taxonomy import Taxonomy

ANNOTATIONS_DIR = "Annotations"
IMAGES_DIR = "JPEGImages"
LABELS_FILE = "labels.txt"

__all__ = ["ANNOTATIONS_DIR", "IMAGES_DIR", "read", "write"]


def _parse_xml(path: Path) -> ET.Element:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        # defusedxml refuses DTDs and entity declarations in any encoding (a byte check misses UTF-16).
        return fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise fail(path, "", f"XML with a DTD or entity declarations is refused (unsafe): {exc}") from exc
    except ET.ParseError as exc:
        raise fail(path, f"line {exc.position[0]}", f"not well-formed XML ({exc})") from exc


def _text(node: ET.Element, tag: str, path: Path, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise fail(path, where, f"missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path, where: str) -> float:
    text = _text(node, tag, path, where)
    try:
        return float(text)
    except ValueError as exc:
        raise fail(path, where, f"<{tag}> is not a number: {text!r}") from exc


def read(path: str | os.PathLike[str], *, taxonomy: Taxonomy | None = None) -> DetectionDataset:
    """Read a Pascal VOC directory (``Annotations/*.xml``, images in ``JPEGImages/`` or ``images/``).

    Raises:
        DatasetError: malformed XML, a missing ``<filename>``/``<size>``/``<bndbox>`` field, a non-numeric or
            inverted box, or an unknown class; the message names the file and the object.
    """
    root = Path(path)
    ann_dir = root / ANNOTATIONS_DIR
    if not ann_dir.is_dir():
        raise DatasetError(f"{root}: no {ANNOTATIONS_DIR}/ folder; is this a Pascal VOC dataset?")
    xml_files = sorted(ann_dir.rglob("*.xml"))
    if not xml_files:
        raise DatasetError(f"{ann_dir}: no .xml annotation files")
    images_dir = root / IMAGES_DIR if (root / IMAGES_DIR).is_dir() or not (root / "images").is_dir() else root / "images"
    labels_file = root / LABELS_FILE
    declared = [n.strip() for n in labels_file.read_text(encoding="utf-8").splitlines() if n.strip()] if labels_file.is_file() else []
    classes = ClassMap(taxonomy, declared=declared if taxonomy is None else ())

    records: list[ImageRecord] = []
    boxes: dict[int, list[Box]] = {}
    skipped: list[Skipped] = []
    for image_id, xml_path in enumerate(xml_files, start=1):
        doc = _parse_xml(xml_path)
        if doc.tag != "annotation":
            raise fail(xml_path, "", f"the root element is <{doc.tag}>, expected <annotation>")
        filename = _text(doc, "filename", xml_path, "<annotation>")
        sub = xml_path.parent.relative_to(ann_dir)
        file_name = (sub / Path(filename).name).as_posix()
        size_node = doc.find("size")
        if size_node is None:
            raise fail(xml_path, "<annotation>", "missing <size>")
        width, height = (int(_number(size_node, t, xml_path, "<size>")) for t in ("width", "height"))
        if width <= 0 or height <= 0:
            raise fail(xml_path, "<size>", f"image size {width}x{height} is not positive")
        records.append(ImageRecord(image_id, file_name, width, height))
        items = []
        for k, obj in enumerate(doc.findall("object"), start=1):
            where = f"<object> #{k}"
            slug = classes.slug(_text(obj, "name", xml_path, where), xml_path, where)
            bnd = obj.find("bndbox")
            if bnd is None:
                raise fail(xml_path, where, "missing <bndbox>")
            xyxy = tuple(_number(bnd, t, xml_path, f"{where} <bndbox>") for t in ("xmin", "ymin", "xmax", "ymax"))
            fitted = fit_box(xyxy, (width, height), xml_path, where, skipped)
            difficult = obj.findtext("difficult", "0").strip() or "0"
            if difficult not in ("0", "1"):
                raise fail(xml_path, where, f"<difficult> must be 0 or 1, got {difficult!r}")
            if fitted is not None:
                items.append(Box(fitted, slug, difficult=int(difficult)))
        boxes[image_id] = items
    return build_dataset(images_dir, classes.finish(str(root)), records, boxes, skipped)


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def write(dataset: DetectionDataset, path: str | os.PathLike[str], *, copy_images: bool = True) -> Path:
    """Write ``dataset`` as Pascal VOC: ``Annotations/*.xml``, ``labels.txt`` and (by default) ``JPEGImages/``."""
    root = Path(path)
    ann_dir = root / ANNOTATIONS_DIR
    ann_dir.mkdir(parents=True, exist_ok=True)
    names = [a.name for a in dataset.taxonomy]
    (root / LABELS_FILE).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    for im, dets in dataset:
        doc = ET.Element("annotation")
        ET.SubElement(doc, "folder").text = IMAGES_DIR
        ET.SubElement(doc, "filename").text = Path(im.file_name).name
        size = ET.SubElement(doc, "size")
        for tag, value in (("width", im.width), ("height", im.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        difficult = box_flags(dets, "difficult")
        for k, (box, cls) in enumerate(box_rows(dets)):
            obj = ET.SubElement(doc, "object")
            ET.SubElement(obj, "name").text = names[int(cls)]
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = str(difficult[k])
            bnd = ET.SubElement(obj, "bndbox")
            for tag, coord in zip(("xmin", "ymin", "xmax", "ymax"), box):
                ET.SubElement(bnd, tag).text = _fmt(coord)
        ET.indent(doc)
        xml_path = ann_dir / Path(im.file_name).with_suffix(".xml")
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(doc).write(xml_path, encoding="utf-8", xml_declaration=True)
    if copy_images:
        place_images(dataset, root / IMAGES_DIR)
    return root
