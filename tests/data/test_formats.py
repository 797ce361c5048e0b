"""Every dataset format reads what it writes, and meets malformed files with an error naming file, record, problem."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roomscan.data.dataset import DatasetError, DetectionDataset
from roomscan.data.formats import coco, labelstudio, openimages, voc, yolo
from roomscan.data.synthetic import make_shapes_dataset
from roomscan.taxonomy import default_taxonomy

DIR_FORMATS = {"yolo": yolo, "voc": voc, "labelstudio": labelstudio, "openimages": openimages}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> DetectionDataset:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_images=8, image_size=(120, 90), seed=3)


def assert_same(a: DetectionDataset, b: DetectionDataset, tol: float = 0.01) -> None:
    assert [(im.file_name, im.width, im.height) for im in a.images] == [(im.file_name, im.width, im.height) for im in b.images]
    for (_, da), (_, db) in zip(a, b):
        assert list(da.data["class_name"]) == list(db.data["class_name"])
        np.testing.assert_allclose(da.xyxy, db.xyxy, atol=tol)
    used = {s for _, d in a for s in d.data["class_name"]}
    assert used <= set(b.taxonomy.slugs)


def write_read(name: str, ds: DetectionDataset, out: Path) -> DetectionDataset:
    if name == "coco":
        coco.write(ds, out / "annotations.json")
        return coco.read(out / "annotations.json", images_dir=ds.images_dir)
    DIR_FORMATS[name].write(ds, out)
    return DIR_FORMATS[name].read(out)


@pytest.mark.parametrize("name", ["coco", *DIR_FORMATS])
def test_write_then_read_gives_the_same_images_boxes_and_classes(name, shapes, tmp_path):
    back = write_read(name, shapes, tmp_path)
    assert_same(shapes, back, tol=0.01 if name != "yolo" else 0.001 * 120)
    if name in ("coco", "yolo", "voc", "openimages"):  # formats that carry a class list keep it, in order
        assert back.taxonomy.slugs == shapes.taxonomy.slugs


@pytest.mark.parametrize("name", ["yolo", "voc", "openimages"])
def test_reading_through_a_taxonomy_maps_names_and_mids(name, tmp_path, sample_photo):
    tax = default_taxonomy()
    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "src" / "images" / "room.jpg").write_bytes(sample_photo((100, 80)))
    from roomscan.data.dataset import ImageRecord
    from roomscan.detection.core import make_detections

    ds = DetectionDataset(tmp_path / "src" / "images", tax, [ImageRecord(1, "room.jpg", 100, 80)],
                          {1: make_detections([[10, 10, 50, 40]], [1.0], [tax.index("bed")], ["bed"])})
    DIR_FORMATS[name].write(ds, tmp_path / "out")
    back = DIR_FORMATS[name].read(tmp_path / "out", taxonomy=tax)
    assert back.taxonomy is tax and list(back.annotations[1].data["class_name"]) == ["bed"]
    assert back.annotations[1].class_id.tolist() == [tax.index("bed")]
    if name == "openimages":
        assert "/m/03ssj5" in (tmp_path / "out" / openimages.ANNOTATIONS_FILE).read_text()  # LabelName is the MID


def test_group_of_and_difficult_flags_survive(tmp_path, shapes):
    dets = shapes.annotations[shapes.images[0].id]
    dets.data["iscrowd"] = np.ones(len(dets), dtype=np.int64)
    dets.data["difficult"] = np.ones(len(dets), dtype=np.int64)
    try:
        oi = openimages.read(openimages.write(shapes, tmp_path / "oi"))
        vo = voc.read(voc.write(shapes, tmp_path / "voc"))
        assert oi.annotations[1].data["iscrowd"].tolist() == [1] * len(dets)
        assert vo.annotations[1].data["difficult"].tolist() == [1] * len(dets)
    finally:
        dets.data["iscrowd"] = np.zeros(len(dets), dtype=np.int64)
        del dets.data["difficult"]


def test_label_studio_upload_paths_find_the_original_file(tmp_path, sample_photo):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "kitchen.jpg").write_bytes(sample_photo((64, 48)))
    tasks = [{"data": {"image": "/data/upload/3/8f2a1b3c-kitchen.jpg"}, "annotations": []},
             {"data": {"image": "/data/upload/3/0badc0de-bath.jpg"}, "annotations": [{"result": [
                 {"original_width": 64, "original_height": 48,
                  "value": {"x": 0, "y": 0, "width": 50, "height": 50, "rectanglelabels": ["oven"]}}]}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    ds = labelstudio.read(tmp_path / "export.json")
    assert (ds.images[0].file_name, ds.images[0].width, ds.images[0].height) == ("kitchen.jpg", 64, 48)
    assert ds.images[1].file_name == "bath.jpg" and ds.taxonomy.slugs == ["oven"]  # absent file: size from the box


def test_yolo_sizes_follow_exif_rotation(tmp_path, sample_image):
    (tmp_path / "images").mkdir()
    exif = Image.Exif()
    exif[274] = 6  # rotate 90: shown as portrait
    sample_image((80, 40)).save(tmp_path / "images" / "p.jpg", exif=exif)
    (tmp_path / "data.yaml").write_text("names: [bed]\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "p.txt").write_text("0 0.5 0.5 1 1\n")
    ds = yolo.read(tmp_path)
    assert (ds.images[0].width, ds.images[0].height) == (40, 80)
    np.testing.assert_allclose(ds.annotations[1].xyxy, [[0, 0, 40, 80]])


def test_label_studio_percentages_rotation_and_cancelled_annotations(tmp_path, sample_photo):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(sample_photo((200, 100)))
    box = {"x": 10, "y": 20, "width": 25, "height": 50, "rectanglelabels": ["Bed"]}
    tasks = [{"id": 7, "data": {"image": "/data/local-files/?d=images/a.jpg"}, "annotations": [
        {"was_cancelled": True, "result": []},
        {"result": [
            {"type": "rectanglelabels", "original_width": 200, "original_height": 100, "value": box},
            {"type": "rectanglelabels", "original_width": 200, "original_height": 100, "value": {**box, "rotation": 90}},
            {"type": "choices", "value": {"choices": ["indoor"]}},
        ]}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    ds = labelstudio.read(tmp_path / "export.json")
    assert ds.images[0].file_name == "a.jpg" and ds.taxonomy.slugs == ["bed"]
    np.testing.assert_allclose(ds.annotations[1].xyxy, [[20, 20, 70, 70], [0, 20, 20, 70]], atol=1e-4)


# -- malformed input: (format, files to write relative to the dataset root, expected fragments of the message) --
YOLO_OK = {"data.yaml": "names: [bed, oven]\n"}
VOC_HEAD = "<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size>"
LS_TASK = {"data": {"image": "images/a.jpg"}, "annotations": [{"result": [
    {"type": "rectanglelabels", "original_width": 100, "original_height": 80,
     "value": {"x": 1, "y": 1, "width": 10, "height": 10, "rectanglelabels": ["bed"]}}]}]}
OI_HEAD = ",".join(openimages.BOX_COLUMNS) + "\n"
OI_CLASSES = {"class-descriptions.csv": "LabelName,DisplayName\n/m/03ssj5,Bed\n"}

MALFORMED = [
    ("yolo", {**YOLO_OK, "labels/a.txt": "0 0.5 0.5 0.2\n"}, ["a.txt", "line 1", "expected 5 values"]),
    ("yolo", {**YOLO_OK, "labels/a.txt": "0 0.5 0.5 0.2 0.2\n1 x 0.5 0.2 0.2\n"}, ["a.txt", "line 2", "not numbers"]),
    ("yolo", {"data.yaml": "names: 3\n"}, ["data.yaml", "names"]),
    ("yolo", {"labels/a.txt": "0 0.5 0.5 0.2 0.2\n"}, ["data.yaml", "class names"]),
    ("voc", {"Annotations/a.xml": VOC_HEAD + "<object><name>bed</name>"}, ["a.xml", "line 1", "not well-formed"]),
    ("voc", {"Annotations/a.xml": VOC_HEAD + "<object><name>bed</name></object></annotation>"},
     ["a.xml", "<object> #1", "missing <bndbox>"]),
    ("voc", {"Annotations/a.xml": VOC_HEAD + "<object><name>bed</name><bndbox><xmin>a</xmin><ymin>1</ymin>"
             "<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"}, ["a.xml", "<object> #1", "not a number"]),
    ("voc", {"Annotations/a.xml": VOC_HEAD + "<object><name>bed</name><bndbox><xmin>50</xmin><ymin>1</ymin>"
             "<xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"}, ["a.xml", "<object> #1", "negative width"]),
    ("voc", {"Annotations/a.xml": '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><annotation/>'},
     ["a.xml", "DTD"]),
    ("voc", {"Annotations/a.xml": "<annotation><size><width>1</width><height>1</height></size></annotation>"},
     ["a.xml", "missing <filename>"]),
    ("labelstudio", {"labelstudio.json": "[{"}, ["labelstudio.json", "not valid JSON", "line 1"]),
    ("labelstudio", {"labelstudio.json": json.dumps([{"data": {}}])}, ["labelstudio.json", "task[0]", "data.image"]),
    ("labelstudio", {"labelstudio.json": json.dumps([{**LS_TASK, "annotations": [{"result": [
        {**LS_TASK["annotations"][0]["result"][0], "value": {"x": "?", "y": 1, "width": 1, "height": 1,
                                                             "rectanglelabels": ["bed"]}}]}]}])},
     ["labelstudio.json", "task[0] result[0]", "numeric x, y, width and height"]),
    ("labelstudio", {"labelstudio.json": json.dumps([{**LS_TASK, "annotations": [{"result": [
        {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["bed"]}}]}]}])},
     ["labelstudio.json", "task[0] result[0]", "original_width"]),
    ("labelstudio", {"labelstudio.json": json.dumps({"tasks": 1})}, ["labelstudio.json", "task[0]", "data"]),
    ("labelstudio", {"labelstudio.json": json.dumps([LS_TASK]).replace('"original_width": 100', '"original_width": Infinity')},
     ["labelstudio.json", "task[0] result[0]", "original_width", "finite"]),
    ("labelstudio", {"labelstudio.json": json.dumps([LS_TASK]).replace('"original_width": 100', '"original_width": 1e400')},
     ["labelstudio.json", "task[0] result[0]", "original_width", "finite"]),
    ("labelstudio", {"labelstudio.json": json.dumps([{**LS_TASK, "annotations": [{"result": [
        {**LS_TASK["annotations"][0]["result"][0], "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rotation": "NaN",
                                                             "rectanglelabels": ["bed"]}}]}]}])},
     ["labelstudio.json", "task[0] result[0]", "rotation nan"]),
    ("labelstudio", {"labelstudio.json": "[" + "1" * 5000 + "]"}, ["labelstudio.json", "not a JSON export"]),
    ("openimages", {**OI_CLASSES, "annotations-bbox.csv": "ImageID,LabelName\na,/m/03ssj5\n"},
     ["annotations-bbox.csv", "line 1", "missing column(s) XMin"]),
    ("openimages", {**OI_CLASSES, "annotations-bbox.csv": OI_HEAD + "a,x,/m/03ssj5,1,0.1,0.5,0.1,zz,0,0,0,0,0\n"},
     ["annotations-bbox.csv", "line 2", "not numbers"]),
    ("openimages", {**OI_CLASSES, "annotations-bbox.csv": OI_HEAD + "a,x,/m/03ssj5,1,0.6,0.5,0.1,0.2,0,0,0,0,0\n"},
     ["annotations-bbox.csv", "line 2", "XMin <= XMax"]),
    ("openimages", {**OI_CLASSES, "annotations-bbox.csv": OI_HEAD + "a,x,/m/03ssj5,1\n"},
     ["annotations-bbox.csv", "line 2", "4 fields"]),
    ("openimages", {**OI_CLASSES, "annotations-bbox.csv": OI_HEAD + "a,x,/m/0zzz,1,0.1,0.5,0.1,0.2,0,0,0,0,0\n"},
     ["annotations-bbox.csv", "image a", "/m/0zzz"]),
    ("openimages", {**OI_CLASSES, "annotations-bbox.csv": OI_HEAD + "nope,x,/m/03ssj5,1,0.1,0.5,0.1,0.2,0,0,0,0,0\n"},
     ["image nope", "no image"]),
    ("openimages", {"class-descriptions.csv": "/m/03ssj5\n", "annotations-bbox.csv": OI_HEAD},
     ["class-descriptions.csv", "line 1", "mid,name"]),
]


@pytest.mark.parametrize(("name", "files", "expected"), MALFORMED, ids=[f"{m[0]}-{i}" for i, m in enumerate(MALFORMED)])
def test_malformed_files_name_the_file_the_record_and_the_problem(name, files, expected, tmp_path, sample_photo):
    root = tmp_path / "ds"
    images = root / ("JPEGImages" if name == "voc" else "images")
    images.mkdir(parents=True)
    (images / "a.jpg").write_bytes(sample_photo((100, 80)))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    with pytest.raises(DatasetError) as info:
        DIR_FORMATS[name].read(root)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, message


def test_label_studio_photo_under_another_data_key_is_found_and_none_is_a_clear_error(tmp_path, sample_photo):
    (tmp_path / "a.jpg").write_bytes(sample_photo((100, 80)))
    task = {**LS_TASK, "data": {"img": "/data/local-files/?d=a.jpg", "listing": "flat 7"}}  # <Image value="$img">
    (tmp_path / "export.json").write_text(json.dumps([task]))
    assert [im.file_name for im in labelstudio.read(tmp_path / "export.json").images] == ["a.jpg"]
    (tmp_path / "export.json").write_text(json.dumps([{**LS_TASK, "data": {"listing": "flat 7"}}]))
    with pytest.raises(DatasetError, match=r"task\[0\]: data.image is missing or empty \(data's keys: listing\)"):
        labelstudio.read(tmp_path / "export.json")


def test_label_studio_rectangles_without_or_with_several_labels(tmp_path, sample_photo):
    (tmp_path / "a.jpg").write_bytes(sample_photo((100, 80)))
    region = LS_TASK["annotations"][0]["result"][0]
    result = [{**region, "value": {**region["value"], "rectanglelabels": labels}}
              for labels in ([], ["bed", "sofa-bed"], ["tv"])]
    (tmp_path / "export.json").write_text(json.dumps([{"data": {"image": "a.jpg"}, "annotations": [{"result": result}]}]))
    ds = labelstudio.read(tmp_path / "export.json")
    assert sorted(ds.annotations[1].data["class_name"]) == ["bed", "sofa-bed", "tv"]
    assert [s.kind for s in ds.skipped if s.kind == "box without a label"] == ["box without a label"]


def test_label_studio_round_trip_keeps_a_file_named_with_a_percent_escape(tmp_path):
    make_shapes_dataset(tmp_path / "ds", n_images=1, image_size=(64, 48), seed=2)
    ds = DetectionDataset.load(tmp_path / "ds")
    [im] = ds.images
    (tmp_path / "ds" / "images" / im.file_name).rename(tmp_path / "ds" / "images" / "a%20b.jpg")
    renamed = type(im)(im.id, "a%20b.jpg", im.width, im.height)
    ds = DetectionDataset(ds.images_dir, ds.taxonomy, [renamed], {im.id: ds.annotations[im.id]})
    back = labelstudio.read(labelstudio.write(ds, tmp_path / "ls"))
    assert [i.file_name for i in back.images] == ["a%20b.jpg"] and len(back.annotations[1]) == len(ds.annotations[im.id])


def test_label_studio_export_that_is_not_text_is_a_clear_error(tmp_path, sample_photo):
    (tmp_path / "photo.jpg").write_bytes(sample_photo((100, 80)))  # a photo passed where the export goes
    with pytest.raises(DatasetError, match=r"photo\.jpg: not a UTF-8 text file"):
        labelstudio.read(tmp_path / "photo.jpg")


def test_label_studio_json_min_rows_with_a_list_id_still_join(tmp_path, sample_photo):
    (tmp_path / "a.jpg").write_bytes(sample_photo((100, 80)))
    row = {"image": "a.jpg", "id": [7], "label": [{"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["bed"],
                                                 "original_width": 100, "original_height": 80}]}
    (tmp_path / "export.json").write_text(json.dumps([row]))
    assert len(labelstudio.read(tmp_path / "export.json").annotations[1]) == 1


@pytest.mark.parametrize("name", list(DIR_FORMATS))
def test_a_missing_dataset_is_a_clear_error(name, tmp_path):
    with pytest.raises(DatasetError, match="nope"):
        DIR_FORMATS[name].read(tmp_path / "nope")


def test_voc_refuses_a_dtd_in_utf16_too(tmp_path):
    from roomscan.data.formats import voc

    (tmp_path / "Annotations").mkdir()
    xml = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE a [<!ENTITY e "boom">]>\n<annotation>&e;</annotation>'
    (tmp_path / "Annotations" / "x.xml").write_bytes(xml.encode("utf-16"))
    with pytest.raises(DatasetError, match="DTD"):
        voc.read(tmp_path)


def test_open_images_ids_cannot_climb_out_of_the_images_folder(tmp_path):
    from roomscan.data.formats import openimages

    (tmp_path / "images").mkdir()
    (tmp_path / "class-descriptions.csv").write_text("/m/0b_rs,Swimming pool\n")
    (tmp_path / "annotations-bbox.csv").write_text(
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
        "../escape,human,/m/0b_rs,1,0.1,0.5,0.1,0.5,0,0,0,0,0\n"
    )
    with pytest.raises(DatasetError, match="ImageID"):
        openimages.read(tmp_path)


def test_label_studio_images_beside_the_export_resolve(tmp_path):
    from roomscan.data.formats import labelstudio

    (tmp_path / "images").mkdir()
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (40, 30), "red").save(tmp_path / "images" / "a.jpg")
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "photos" / "b.jpg")
    box = {"x": 10, "y": 10, "width": 50, "height": 50, "rectanglelabels": ["bed"]}
    tasks = [
        {"id": n, "data": {"image": ref}, "annotations": [{"result": [
            {"type": "rectanglelabels", "original_width": 40, "original_height": 30, "value": box}]}]}
        for n, ref in ((1, "images/a.jpg"), (2, "photos/b.jpg"))
    ]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    ds = labelstudio.read(tmp_path / "export.json")
    assert all(ds.path(im).is_file() for im in ds.images), [str(ds.path(im)) for im in ds.images]


USER_LABELS = ["closed_door", "Kitchen & dining room table", "Café table", "sofa-bed"]


def _user_labelled(tmp_path: Path, sample_photo) -> DetectionDataset:
    from roomscan.data.dataset import ImageRecord
    from roomscan.data.formats._common import ClassMap
    from roomscan.detection.core import make_detections

    images = tmp_path / "src" / "images"
    images.mkdir(parents=True)
    (images / "room.jpg").write_bytes(sample_photo((100, 80)))
    tax = ClassMap(declared=USER_LABELS).finish("user labels")
    boxes = [[5, 5, 20, 20], [30, 10, 60, 40], [10, 50, 40, 70], [60, 40, 90, 75]]
    dets = make_detections(boxes, [1.0] * 4, [0, 1, 2, 3], tax.slugs)
    return DetectionDataset(images, tax, [ImageRecord(1, "room.jpg", 100, 80)], {1: dets})


@pytest.mark.parametrize("name", ["coco", *DIR_FORMATS])
def test_label_strings_survive_a_round_trip_exactly(name, tmp_path, sample_photo):
    ds = _user_labelled(tmp_path, sample_photo)
    assert [a.name for a in ds.taxonomy] == USER_LABELS
    back = write_read(name, ds, tmp_path / "out")
    assert sorted(a.name for a in back.taxonomy) == sorted(USER_LABELS)
    named = {back.taxonomy.amenities[c].name for c in back.annotations[1].class_id.tolist()}
    assert named == set(USER_LABELS)
    if name in ("yolo", "voc", "openimages"):  # the text files hold the label itself, not a slug or a prettified form
        written = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "out").rglob("*") if p.suffix in {".yaml", ".txt", ".xml", ".csv"})
        for label in USER_LABELS:
            assert label in written


def test_yolo_classes_file_converts_to_coco_with_the_same_names(tmp_path, sample_photo):
    from roomscan.data.convert import convert

    src = tmp_path / "yolo"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    (src / "images" / "door.jpg").write_bytes(sample_photo((100, 80)))
    (src / "classes.txt").write_text("closed_door\nopened_door\n")
    (src / "labels" / "door.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n")
    convert(src, "coco", tmp_path / "coco")
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["closed_door", "opened_door"]


def test_yolo_says_what_it_skipped_and_why(tmp_path, sample_photo):
    from roomscan.data.dataset import skipped_lines

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("bed\noven\n")
    for stem in ("a", "b"):
        (tmp_path / "images" / f"{stem}.jpg").write_bytes(sample_photo((100, 80)))
    (tmp_path / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n"  # fine
        "5 0.5 0.5 0.2 0.2\n"  # class 5 of 2: dropped
        "1 0.9 0.5 0.4 0.2\n"  # x from 0.7 to 1.1: clipped at the right edge
        "0 1.5 0.5 0.2 0.2\n"  # wholly right of the image: dropped
    )
    (tmp_path / "labels" / "gone.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # no images/gone.*
    ds = yolo.read(tmp_path)
    kinds = Counter(s.kind for s in ds.skipped)
    assert kinds == {"unknown class": 1, "box clipped": 1, "box dropped": 1, "orphan label file": 1,
                     "image without labels": 1}
    assert [s.where for s in ds.skipped if s.kind == "orphan label file"] == ["labels/gone.txt"]
    assert [s.where for s in ds.skipped if s.kind == "image without labels"] == ["images/b.jpg"]
    assert len(ds) == 2 and ds.annotations[2].xyxy.shape == (0, 4)  # the unlabelled image is kept
    np.testing.assert_allclose(ds.annotations[1].xyxy, [[40, 32, 60, 48], [70, 32, 100, 48]], atol=1e-3)
    lines = skipped_lines(ds.skipped)
    assert any(line.startswith("1 x orphan label file (labels/gone.txt)") for line in lines)
    assert any("class 5 is out of range" in line for line in lines)


# -- Label Studio's documented JSON export: several annotators, cancelled, ground truth, predictions, mixed results --
def _rect(region: str, label: str, x: float, width: float = 20) -> dict:
    return {"id": region, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": 100, "original_height": 50, "image_rotation": 0,
            "value": {"x": x, "y": 10, "width": width, "height": 40, "rotation": 0, "rectanglelabels": [label]}}


def _annotation(ident: int, user: int, updated: str, result: list, **flags) -> dict:
    return {"id": ident, "completed_by": user, "result": result, "was_cancelled": False, "ground_truth": False,
            "created_at": updated, "updated_at": updated, "lead_time": 12.5, "task": 1, "project": 3, **flags}


LS_ANNOTATORS = [
    _annotation(11, 1, "2024-05-02T10:00:00.000000Z", [_rect("a1", "closed_door", 0)]),
    _annotation(12, 2, "2024-05-03T10:00:00.000000Z", [
        _rect("b1", "closed_door", 10),
        {"id": "b1", "type": "choices", "from_name": "state", "to_name": "image", "value": {"choices": ["wooden"]}},
        {"id": "b1", "type": "textarea", "from_name": "note", "to_name": "image", "value": {"text": ["scratched"]}},
    ]),
    _annotation(13, 3, "2024-05-04T10:00:00.000000Z", [_rect("c1", "opened_door", 50)], was_cancelled=True),
    _annotation(10, 4, "2024-05-01T10:00:00.000000Z", [_rect("d1", "opened_door", 30)]),
]
LS_PREDICTION = {"id": 5, "model_version": "owlv2", "score": 0.4, "result": [_rect("p1", "Café table", 70)]}


def _ls_export(tmp_path: Path, sample_photo, annotations: list, image: str = "/data/upload/3/2e3f4a5b-hall.jpg") -> Path:
    (tmp_path / "photos").mkdir(exist_ok=True)
    (tmp_path / "photos" / "hall.jpg").write_bytes(sample_photo((100, 50)))
    (tmp_path / "export").mkdir(exist_ok=True)
    task = {"id": 1, "data": {"image": image}, "annotations": annotations, "predictions": [LS_PREDICTION],
            "meta": {}, "created_at": "2024-05-01T09:00:00.000000Z", "updated_at": "2024-05-04T10:00:00.000000Z",
            "inner_id": 1, "total_annotations": len(annotations), "cancelled_annotations": 1, "project": 3}
    path = tmp_path / "export" / "project-3.json"
    path.write_text(json.dumps([task]))
    return path


@pytest.mark.parametrize(("policy", "xs", "labels"), [
    ("latest", [10], ["closed_door"]),  # annotator 2 updated last; annotator 3's later one was cancelled
    ("first", [30], ["opened_door"]),   # annotator 4 has the earliest updated_at, whatever the list order
    ("all", [0, 10, 30], ["closed_door", "closed_door", "opened_door"]),
])
def test_label_studio_annotation_policies(policy, xs, labels, tmp_path, sample_photo):
    path = _ls_export(tmp_path, sample_photo, LS_ANNOTATORS)
    ds = labelstudio.read(path, images_dir=tmp_path / "photos", annotations=policy)
    dets = ds.annotations[1]
    assert dets.xyxy[:, 0].tolist() == xs
    assert [ds.taxonomy[s].name for s in dets.data["class_name"]] == labels
    assert "Café table" not in [a.name for a in ds.taxonomy]  # the prediction is not ground truth
    kinds = Counter(s.kind for s in ds.skipped)
    assert kinds["prediction"] == 1 and kinds["cancelled annotation"] == 1
    assert kinds["annotation choice"] == (0 if policy == "all" else 1)
    assert kinds["non-box result"] == (2 if policy in ("latest", "all") else 0)  # choices + textarea on region b1


def test_label_studio_ground_truth_wins_over_latest_and_first(tmp_path, sample_photo):
    flagged = [*LS_ANNOTATORS[:3], {**LS_ANNOTATORS[0], "id": 14, "ground_truth": True,
                                     "updated_at": "2024-04-01T00:00:00Z", "result": [_rect("g1", "sofa-bed", 40)]}]
    path = _ls_export(tmp_path, sample_photo, flagged)
    for policy in ("latest", "first"):
        ds = labelstudio.read(path, images_dir=tmp_path / "photos", annotations=policy)
        assert list(ds.annotations[1].data["class_name"]) == ["sofa-bed"]
        choice = [s for s in ds.skipped if s.kind == "annotation choice"]
        assert len(choice) == 1 and "ground_truth" in choice[0].reason and "annotation[3]" in choice[0].where


@pytest.mark.parametrize("name", ["a%20b.jpg", "50% off.jpg", "a+b.jpg", "what?.jpg", "chambre été.jpg"])
def test_label_studio_local_files_names_are_decoded_once(name, tmp_path, sample_photo):
    from urllib.parse import quote

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / name).write_bytes(sample_photo((100, 80)))
    # Label Studio's local-files storage writes ?d=<quote(relative path)>
    for image in (f"/data/local-files/?d=photos/{quote(name)}", f"http://ls:8080/data/local-files/?d=photos/{quote(name)}"):
        assert labelstudio.locate_image(image, tmp_path, tmp_path) == (f"photos/{name}", tmp_path / "photos" / name)


@pytest.mark.parametrize("image", ["/data/upload/3/2e3f4a5b-hall.jpg", "s3://listing-photos/2024/hall.jpg",
                                   "/data/local-files/?d=mnt/photos/hall.jpg"])
def test_label_studio_upload_and_s3_paths_map_to_the_image_root(image, tmp_path, sample_photo):
    path = _ls_export(tmp_path, sample_photo, LS_ANNOTATORS[:1], image=image)
    ds = labelstudio.read(path, images_dir=tmp_path / "photos")
    assert ds.images[0].file_name == "hall.jpg" and ds.path(ds.images[0]).is_file()


def test_label_studio_refuses_an_unknown_annotation_policy(tmp_path, sample_photo):
    path = _ls_export(tmp_path, sample_photo, LS_ANNOTATORS)
    with pytest.raises(DatasetError, match="unknown annotations choice 'best'"):
        labelstudio.read(path, annotations="best")


def test_label_studio_json_min_rows_read_like_the_json_export(tmp_path, sample_photo):
    """JSON_MIN: one flat row per annotation, boxes under the control's name; rows of one task are its annotations."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(sample_photo((200, 100)))
    box = {"x": 10, "y": 20, "width": 25, "height": 50, "rotation": 0, "original_width": 200, "original_height": 100}
    rows = [{"id": 7, "image": "/data/local-files/?d=images/a.jpg", "annotation_id": 1, "updated_at": "2024-05-01",
             "label": [{**box, "rectanglelabels": ["Bed"]}]},
            {"id": 7, "image": "/data/local-files/?d=images/a.jpg", "annotation_id": 2, "updated_at": "2024-05-02",
             "label": [{**box, "rectanglelabels": ["Oven"]}, {**box, "x": 50, "rectanglelabels": ["Oven"]}]}]
    (tmp_path / "export.json").write_text(json.dumps(rows))
    ds = labelstudio.read(tmp_path / "export.json")
    assert ds.images[0].file_name == "a.jpg" and list(ds.annotations[1].data["class_name"]) == ["oven", "oven"]
    np.testing.assert_allclose(ds.annotations[1].xyxy, [[20, 20, 70, 70], [100, 20, 150, 70]], atol=1e-4)


def test_label_studio_json_min_polygons_and_keypoints_are_counted_not_lost_with_the_boxes(tmp_path, sample_photo):
    (tmp_path / "a.jpg").write_bytes(sample_photo((200, 100)))
    box = {"x": 10, "y": 20, "width": 25, "height": 50, "original_width": 200, "original_height": 100}
    poly = {"points": [[1, 1], [5, 1], [5, 5]], "polygonlabels": ["Bed"], "original_width": 200, "original_height": 100}
    row = {"id": 1, "image": "a.jpg", "room": "kitchen",  # a Choices control: a plain value, not a region
           "label": [{**box, "rectanglelabels": ["Oven"]}, poly],  # one control name for both tools
           "point": [{"x": 5, "y": 5, "keypointlabels": ["Tv"], "original_width": 200, "original_height": 100}]}
    (tmp_path / "export.json").write_text(json.dumps([row]))
    ds = labelstudio.read(tmp_path / "export.json")
    assert list(ds.annotations[1].data["class_name"]) == ["oven"]
    assert sorted(s.reason.split(" result")[0] for s in ds.skipped if s.kind == "non-box result") == [
        "a keypointlabels", "a polygonlabels"]


def test_label_studio_read_tasks_keeps_labels_as_written_and_says_which_tasks_were_annotated(tmp_path, sample_photo):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(sample_photo((200, 100)))
    rect = {"type": "rectanglelabels", "original_width": 200, "original_height": 100,
            "value": {"x": 90, "y": 0, "width": 20, "height": 10, "rectanglelabels": ["Coffee machine"]}}
    tasks = [{"id": 1, "data": {"image": "images/a.jpg"}, "annotations": [{"result": [rect]}]},
             {"id": 2, "data": {"image": "/data/upload/1/0badc0de-b.jpg"}, "annotations": [{"was_cancelled": True, "result": []}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    export = labelstudio.read_tasks(tmp_path / "export.json")
    a, b = export.tasks
    assert (a.annotated, a.file, a.size, a.boxes[0][1]) == (True, tmp_path / "images" / "a.jpg", (200, 100), "Coffee machine")
    assert a.boxes[0][0] == (180.0, 0.0, 200.0, 10.0)  # cut to the image, noted as clipped
    assert (b.annotated, b.file, b.size, b.file_name) == (False, None, None, "b.jpg")
    assert {s.kind for s in export.skipped} == {"box clipped", "cancelled annotation"}
    assert labelstudio.locate_image("/data/upload/1/0badc0de-a.jpg", tmp_path, tmp_path / "images") == ("a.jpg", tmp_path / "images" / "a.jpg")
