"""The data report on a synthetic dataset we damaged on purpose: every number checked against the annotations."""

from __future__ import annotations

import html
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roomscan.data import _dedup, _explore_scan
from roomscan.data import explore as explore_mod
from roomscan.data.dataset import DatasetError, DetectionDataset, ImageRecord
from roomscan.data.explore import ExploreReport, explore
from roomscan.data.synthetic import make_shapes_dataset, shapes_taxonomy
from roomscan.detection.core import Detections, make_detections

EVIL = "<script>alert(1)<script>.jpg"


def _add(ds: DetectionDataset, name: str, size: tuple[int, int], boxes=(), classes=()) -> ImageRecord:
    rec = ImageRecord(id=max(im.id for im in ds.images) + 1, file_name=name, width=size[0], height=size[1])
    ds.images.append(rec)
    ds.annotations[rec.id] = make_detections(
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.ones(len(classes)),
        list(classes),
        [ds.taxonomy.slugs[c] for c in classes],
    )
    return rec


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """30 shapes images at 96 px, then: an exact copy, a resized re-encoded copy, a zero-byte file (with an HTML
    name), a truncated JPEG, a missing file, a text file named .jpg, a zero-width box, an out-of-bounds box, a wrongly declared size."""
    root = tmp_path_factory.mktemp("damaged")
    ds = make_shapes_dataset(root, n_images=30, image_size=(96, 96), seed=3)
    img = ds.images_dir
    shutil.copy(img / "00000.jpg", img / "copy-of-0.jpg")
    _add(ds, "copy-of-0.jpg", (96, 96))
    Image.open(img / "00001.jpg").resize((80, 80)).save(img / "small-1.jpg", "JPEG", quality=70)
    _add(ds, "small-1.jpg", (80, 80), boxes=[[10, 10, 30, 30]], classes=[1])
    (img / EVIL).write_bytes(b"")
    _add(ds, EVIL, (96, 96), boxes=[[5, 5, 40, 40]], classes=[0])
    data = (img / "00002.jpg").read_bytes()
    (img / "truncated.jpg").write_bytes(data[: len(data) // 2])
    _add(ds, "truncated.jpg", (96, 96))
    _add(ds, "gone.jpg", (96, 96), boxes=[[1, 1, 20, 20]], classes=[2])
    (img / "notes.jpg").write_text("not a photo")
    _add(ds, "notes.jpg", (96, 96))
    # A zero-width box and a box running off a 96x96 image (150x70 px: a COCO "large" box).
    bad = make_detections(
        [[20, 20, 20, 50], [50, 40, 200, 110]], [1, 1], [2, 1], [ds.taxonomy.slugs[2], ds.taxonomy.slugs[1]]
    )
    ds.annotations[4] = Detections.merge([bad, ds.annotations[4]])  # image id 4 is 00003.jpg
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(img / "declared-wrong.png")
    _add(ds, "declared-wrong.png", (120, 96), boxes=[[0, 0, 110, 96]], classes=[0])
    ds.save(root, copy_images=False)
    return root


@pytest.fixture(scope="module")
def report(damaged, tmp_path_factory) -> ExploreReport:
    return explore(damaged, tmp_path_factory.mktemp("report"), samples_per_class=3)


def _coco(root: Path) -> dict:
    return json.loads((root / "annotations.json").read_text())


def test_class_counts_and_size_buckets_match_the_annotations(damaged, report):
    doc = _coco(damaged)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    boxes = Counter(names[a["category_id"]] for a in doc["annotations"])
    images = Counter(
        name for name, _ in {(names[a["category_id"]], a["image_id"]) for a in doc["annotations"]}
    )
    bucket = Counter()
    for a in doc["annotations"]:
        w, h = a["bbox"][2:]
        if w > 0 and h > 0:
            area = w * h
            bucket[
                names[a["category_id"]], "small" if area < 32**2 else "large" if area > 96**2 else "medium"
            ] += 1
    assert report.num_images == len(doc["images"]) == 37
    assert report.num_boxes == len(doc["annotations"])
    for c in report.classes:
        assert (c.boxes, c.images) == (boxes[c.name], images[c.name])
        assert (c.small, c.medium, c.large) == tuple(bucket[c.name, b] for b in ("small", "medium", "large"))
    assert sum(c.large for c in report.classes) >= 1  # the out-of-bounds box
    lo, hi = min(boxes.values()), max(boxes.values())
    assert report.imbalance_ratio == round(hi / lo, 2)
    assert report.empty_classes == ()


def test_boxes_per_image_and_image_sizes(damaged, report):
    doc = _coco(damaged)
    per_image = Counter(a["image_id"] for a in doc["annotations"])
    expected = Counter(per_image.get(im["id"], 0) for im in doc["images"])
    assert dict(report.boxes_per_image) == dict(expected)
    assert set(report.images_without_boxes) == {
        im["file_name"] for im in doc["images"] if im["id"] not in per_image
    }
    # Decoded sizes of the 33 readable files: 32 at 96x96 (one declared 120x96) and the 80x80 copy.
    assert report.image_sizes == ((96, 96, 32), (80, 80, 1))


def test_duplicates_are_grouped(report):
    assert report.exact_duplicates == (("00000.jpg", "copy-of-0.jpg"),)
    assert report.near_duplicates == (("00001.jpg", "small-1.jpg"),)


def test_unreadable_files_are_listed_with_the_decoder_message(report):
    by_name = {u.file_name: u for u in report.unreadable}
    assert set(by_name) == {EVIL, "truncated.jpg", "gone.jpg", "notes.jpg"}
    assert by_name[EVIL].kind == "empty" and "0 bytes" in by_name[EVIL].reason
    assert by_name["gone.jpg"].kind == "missing" and "no such file" in by_name["gone.jpg"].reason
    assert by_name["notes.jpg"].kind == "not an image"
    assert by_name["truncated.jpg"].kind == "truncated" and by_name["truncated.jpg"].reason.startswith(
        "truncated.jpg: "
    )


def test_bad_boxes_and_declared_sizes(report):
    assert [(b.file_name, b.index, b.problem) for b in report.degenerate_boxes] == [
        ("00003.jpg", 0, "degenerate")
    ]
    assert [(b.file_name, b.index, b.box) for b in report.out_of_bounds_boxes] == [
        ("00003.jpg", 1, (50, 40, 200, 110))
    ]
    assert [(m.file_name, m.declared, m.actual) for m in report.size_mismatches] == [
        ("declared-wrong.png", (120, 96), (96, 96))
    ]


def test_findings_come_first_and_name_the_problems(report):
    text = "\n".join(report.findings)
    for expected in (
        "4 unreadable images (1 empty, 1 missing, 1 not an image, 1 truncated)",
        "1 image whose declared size differs",
        "1 box with zero or negative width",
        "1 box reaching outside",
        "1 exact-duplicate group (1 redundant file)",
        "1 near-duplicate group",
    ):
        assert expected in text
    assert report.findings[0].startswith("4 unreadable")


def test_html_is_self_contained_and_escaped(report):
    page = Path(report.report_html).read_text(encoding="utf-8")
    # Five charts (classes, boxes per image, box sizes, aspect ratios, image sizes) and a strip per class.
    assert page.count('src="data:image/png;base64,') == 5
    assert page.count('src="data:image/jpeg;base64,') == 3
    assert "&lt;script&gt;alert(1)&lt;script&gt;.jpg" in page
    assert "<script" not in page
    assert page.index("What to look at") < page.index('id="classes"')
    for finding in report.findings:
        assert html.escape(finding) in page


def test_summary_json_holds_the_report(report):
    summary = json.loads(Path(report.summary_json).read_text())
    assert summary == json.loads(json.dumps(report.to_dict()))
    assert summary["exact_duplicates"] == [["00000.jpg", "copy-of-0.jpg"]]
    assert {u["file_name"] for u in summary["unreadable"]} == {EVIL, "truncated.jpg", "gone.jpg", "notes.jpg"}


def test_rerun_reads_only_what_changed(damaged, tmp_path, monkeypatch):
    out = tmp_path / "out"
    explore(damaged, out, samples_per_class=0)
    calls: list[str] = []
    real = _explore_scan._read_one
    monkeypatch.setattr(_explore_scan, "_read_one", lambda path, name: calls.append(name) or real(path, name))
    with (out / _explore_scan.CACHE_FILE).open("a") as f:
        f.write('{"v": 1, "file": "00005.jpg", "sta')  # a line cut short by a crash
    # Changed since the first run:
    Image.new("RGB", (96, 96), "white").save(damaged / "images" / "copy-of-0.jpg")
    try:
        again = explore(damaged, out, samples_per_class=0)
    finally:
        shutil.copy(damaged / "images" / "00000.jpg", damaged / "images" / "copy-of-0.jpg")
    assert sorted(calls) == ["copy-of-0.jpg", "gone.jpg"]  # the missing file is always checked again
    assert again.exact_duplicates == ()


def test_progress_reports_each_stage(damaged, tmp_path):
    seen: dict[str, tuple[int, int]] = {}
    explore(
        damaged,
        tmp_path,
        samples_per_class=2,
        progress=lambda stage, done, total: seen.__setitem__(stage, (done, total)),
    )
    assert seen["Reading images"] == (37, 37)
    assert seen["Drawing samples"] == (6, 6)


def test_imbalance_and_empty_classes_are_findings(tmp_path):
    ds = make_shapes_dataset(tmp_path / "ds", n_images=4, image_size=(64, 64), seed=0)
    tax = ds.taxonomy
    boxes = [[0, 0, 10, 10]] * 13 + [[0, 0, 10, 10]]
    classes = [1] * 13 + [2]
    dets = make_detections(boxes, np.ones(14), classes, [tax.slugs[c] for c in classes])
    one = DetectionDataset(ds.images_dir, tax, ds.images[:1], {ds.images[0].id: dets})
    report = explore(one, tmp_path / "out", samples_per_class=1)
    assert "Triangle has 1 boxes vs 13 for Square (13x imbalance)" in report.findings
    assert "1 class without boxes: circle" in report.findings
    assert "<h3>Circle" in Path(report.report_html).read_text()


def test_an_empty_dataset_still_gets_a_report(tmp_path):
    ds = make_shapes_dataset(tmp_path / "ds", n_images=1, image_size=(64, 64))
    report = explore(DetectionDataset(ds.images_dir, ds.taxonomy, []), tmp_path / "out")
    assert report.num_images == 0 and report.imbalance_ratio is None and report.aspect_ratio_quantiles is None
    assert Path(report.report_html).is_file()


@pytest.mark.parametrize(
    ("box", "degenerate", "outside"),
    [
        ([0, 0, 64, 64], False, False),  # the whole image
        ([-0.4, 10, 64.4, 20], False, False),  # within half a pixel
        ([-1, 10, 20, 20], False, True),
        ([10, 10, 20, 65], False, True),
        ([10, 10, 10, 20], True, False),  # zero width
        ([10, 20, 20, 15], True, False),  # negative height
    ],
)
def test_box_checks(box, degenerate, outside):
    rec = ImageRecord(1, "a.jpg", 64, 64)
    ds = DetectionDataset(
        Path("."), shapes_taxonomy(), [rec], {1: make_detections([box], [1], [0], ["circle"])}
    )
    bad, out = explore_mod._box_issues(ds)
    assert (bool(bad), bool(out)) == (degenerate, outside)


@pytest.mark.parametrize(
    ("hashes", "digests", "distance", "groups"),
    [
        (["0000000000000000", "000000000000003f"], ["a", "b"], 6, [["0", "1"]]),  # 6 bits apart: in
        (["0000000000000000", "000000000000007f"], ["a", "b"], 6, []),  # 7 bits apart: out
        # Chained: 0-1 and 1-2 are within 3 bits, 0-2 is not.
        (["0000000000000000", "0000000000000007", "000000000000003f"], ["a", "b", "c"], 3, [["0", "1", "2"]]),
        # Byte-identical copies are exact duplicates, not near ones; with a third picture they join its group.
        (["0000000000000000", "0000000000000000"], ["a", "a"], 6, []),
        (["0000000000000000", "0000000000000000", "0000000000000001"], ["a", "a", "b"], 6, [["0", "1", "2"]]),
    ],
)
def test_near_duplicate_groups(hashes, digests, distance, groups):
    files = [str(i) for i in range(len(hashes))]
    assert _dedup.near_groups(files, digests, hashes, distance) == groups


def test_phash_is_stable_under_re_encoding():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).resize((128, 128))
    buf = io.BytesIO()
    image.resize((100, 100)).save(buf, "JPEG", quality=60)
    a, b = int(_dedup.phash(image), 16), int(_dedup.phash(Image.open(buf)), 16)
    assert (a ^ b).bit_count() <= 6


def test_a_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="nope: no such file or directory"):
        explore(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a dataset roomscan recognises"):
        explore(tmp_path / "empty", tmp_path / "out")


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "openimages", "labelstudio"])
def test_explore_reads_every_format_convert_writes(fmt, tmp_path):
    from roomscan.data.convert import write_dataset

    ds = make_shapes_dataset(tmp_path / "src", n_images=6, image_size=(64, 64), seed=4)
    write_dataset(ds, fmt, tmp_path / fmt)
    src = tmp_path / fmt
    if fmt == "coco":
        src = src / "annotations.json"  # a COCO file, not a roomscan folder
    elif fmt == "labelstudio":
        src = src / "labelstudio.json"
    report = explore(src, tmp_path / "out", samples_per_class=0)
    assert report.num_images == 6 and report.num_boxes == ds.num_boxes
    assert report.dataset == str(src) and Path(report.report_html).is_file()
    assert sorted(c.boxes for c in report.classes) == sorted(Counter(
        name for _, d in ds for name in d.data["class_name"]).get(a.slug, 0) for a in ds.taxonomy)


def test_explore_lists_what_reading_skipped(tmp_path):
    from roomscan.data.convert import write_dataset

    ds = make_shapes_dataset(tmp_path / "src", n_images=4, image_size=(64, 64), seed=4)
    write_dataset(ds, "yolo", tmp_path / "y")
    (tmp_path / "y" / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = explore(tmp_path / "y", tmp_path / "out", samples_per_class=0, fmt="yolo")
    assert [s.where for s in report.skipped] == ["labels/ghost.txt"]
    assert report.findings[0].startswith("Skipped while reading: 1 x orphan label file (labels/ghost.txt)")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"][0]["kind"] == "orphan label file"
    assert "ghost.txt" in (tmp_path / "out" / "report.html").read_text()
