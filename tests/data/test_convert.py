"""Format detection and conversion: every format is recognised, and a chain through all of them keeps the boxes."""

from __future__ import annotations

import numpy as np
import pytest

from roomscan.data.convert import FORMATS, convert, detect_format, read_dataset
from roomscan.data.dataset import DatasetError, DetectionDataset
from roomscan.data.synthetic import make_shapes_dataset
from roomscan.taxonomy import Amenity, Taxonomy


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    make_shapes_dataset(root, n_images=6, image_size=(100, 80), seed=7)
    return root


def boxes_by_file(ds: DetectionDataset) -> dict[str, tuple[list[str], np.ndarray]]:
    return {im.file_name: (list(d.data["class_name"]), d.xyxy) for im, d in ds}


def test_coco_yolo_voc_labelstudio_openimages_coco_keeps_every_box(src, tmp_path):
    original = DetectionDataset.load(src)
    current, seen = src, []
    for fmt in ["coco", "yolo", "voc", "labelstudio", "openimages", "coco"]:
        out = tmp_path / f"{len(seen)}-{fmt}"
        convert(current, fmt, out)
        assert detect_format(out) == fmt
        seen.append(fmt)
        current = out
    final = read_dataset(current)
    a, b = boxes_by_file(original), boxes_by_file(final)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0]
        np.testing.assert_allclose(a[name][1], b[name][1], atol=0.01)
    assert [(im.width, im.height) for im in final.images] == [(im.width, im.height) for im in original.images]
    assert all(final.path(im).is_file() for im in final.images)  # images travel along


@pytest.mark.parametrize("fmt", FORMATS)
def test_detect_format_recognises_what_convert_writes(fmt, src, tmp_path):
    convert(src, fmt, tmp_path / "out")
    assert detect_format(tmp_path / "out") == fmt
    if fmt == "labelstudio":
        assert detect_format(tmp_path / "out" / "labelstudio.json") == "labelstudio"
    if fmt == "coco":
        assert detect_format(tmp_path / "out" / "annotations.json") == "coco"


def test_convert_refuses_a_non_empty_output_unless_forced(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty.*--force"):
        convert(src, "yolo", out)
    convert(src, "yolo", out, force=True)
    assert (out / "data.yaml").is_file() and (out / "keep.txt").read_text() == "mine"


def test_convert_maps_labels_through_a_taxonomy(src, tmp_path):
    tax = Taxonomy(tuple(Amenity(slug=s, name=s.title()) for s in ["triangle", "square", "circle", "hexagon"]))
    ds = convert(src, "roomscan", tmp_path / "out", taxonomy=tax)
    assert ds.taxonomy.slugs == ["triangle", "square", "circle", "hexagon"]
    back = DetectionDataset.load(tmp_path / "out")
    assert back.taxonomy.slugs == tax.slugs
    for _, d in back:
        assert [tax.slugs[c] for c in d.class_id] == list(d.data["class_name"])


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.mkdir(), "not a dataset roomscan recognises"),
        (lambda p: p.with_suffix(".json").write_text("42"), "not a COCO or Label Studio"),
        (lambda p: None, "no such file"),
    ],
)
def test_unrecognised_sources_are_clear_errors(setup, message, tmp_path):
    path = tmp_path / "thing"
    setup(path)
    target = path.with_suffix(".json") if path.with_suffix(".json").exists() else path
    with pytest.raises(DatasetError, match=message):
        detect_format(target)


def test_unknown_target_format(src, tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset format 'tfrecord'"):
        convert(src, "tfrecord", tmp_path / "out")
