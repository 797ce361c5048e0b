"""`roomscan data convert` and `roomscan data openimages` as a user runs them: results, refusals, clear errors."""

from __future__ import annotations

import functools
import http.server
import io
import socket
import threading

import numpy as np
import pytest
from PIL import Image

from roomscan.cli import main
from roomscan.data.dataset import DetectionDataset
from roomscan.data.synthetic import make_shapes_dataset


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_dataset(root, n_images=5, image_size=(96, 80), seed=2)
    return root


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "openimages", "labelstudio", "roomscan"])
def test_convert_writes_the_format_and_reports_counts(capsys, shapes, tmp_path, fmt):
    code, out, err = run(capsys, "data", "convert", str(shapes), "--to", fmt, str(tmp_path / "out"))
    assert code == 0, err
    ds = DetectionDataset.load(shapes)
    assert f"wrote {len(ds)} images, {ds.num_boxes} boxes" in out
    back_code, _, err = run(capsys, "data", "convert", str(tmp_path / "out"), "--to", "roomscan", str(tmp_path / "back"))
    assert back_code == 0, err
    assert DetectionDataset.load(tmp_path / "back").num_boxes == ds.num_boxes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "yolo", "{existing}"], "not empty; choose another folder or pass --force"),
        (["--to", "tfrecord", "{out}"], "unknown dataset format 'tfrecord'"),
        (["--to", "yolo", "--from", "voc", "{out}"], "no Annotations/ folder"),
    ],
)
def test_convert_refusals_are_one_clear_line(capsys, shapes, tmp_path, args, message):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "x").write_text("x")
    args = [a.format(existing=existing, out=tmp_path / "out") for a in args]
    code, _, err = run(capsys, "data", "convert", str(shapes), *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_convert_a_malformed_label_names_file_and_line(capsys, tmp_path, shapes):
    run(capsys, "data", "convert", str(shapes), "--to", "yolo", str(tmp_path / "y"))
    label = min((tmp_path / "y" / "labels").glob("*.txt"))
    label.write_text("0 0.5 0.5 zero 0.1\n")
    code, _, err = run(capsys, "data", "convert", str(tmp_path / "y"), "--to", "coco", str(tmp_path / "c"))
    assert code == 2 and label.name in err and "line 1" in err and "not numbers" in err


def test_openimages_offline_is_a_clear_error(capsys, tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("ROOMSCAN_OPENIMAGES_URL", dead)
    code, _, err = run(capsys, "data", "openimages", "--split", "test", "--out", str(tmp_path / "oi"), "--timeout", "1")
    assert code == 2
    assert f"{dead}/v5/test-annotations-bbox.csv" in err and "--annotations" in err and "Traceback" not in err


def test_openimages_with_local_csvs_and_a_mirror(capsys, tmp_path, monkeypatch):
    www = tmp_path / "www"
    (www / "validation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"]
    for i, mid in enumerate(["/m/03ssj5", "/m/03ssj5", "/m/0130jx"]):  # bed, bed, sink (default taxonomy MIDs)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype="uint8")).save(buf, "JPEG")
        (www / "validation" / f"img{i}.jpg").write_bytes(buf.getvalue())
        rows.append(f"img{i},xclick,{mid},1,0.1,0.5,0.1,0.5,0,0,0,0,0")
    (tmp_path / "boxes.csv").write_text("\n".join(rows) + "\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("ROOMSCAN_OPENIMAGES_IMAGES_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
        code, out, err = run(capsys, "data", "openimages", "--annotations", str(tmp_path / "boxes.csv"),
                             "--max-per-class", "1", "--out", str(tmp_path / "oi"), "--workers", "2")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 0, err
    assert "2 of 2 images" in out and "bed 1" in out and "sink 1" in out
    assert len(DetectionDataset.load(tmp_path / "oi")) == 2


@pytest.mark.parametrize("command", ["convert", "openimages", "explore"])
def test_data_commands_are_registered(capsys, command):
    code, out, _ = run(capsys, "data", command, "--help")
    assert code == 0 and "Usage" in out


def test_convert_says_what_it_skipped(capsys, tmp_path, shapes):
    run(capsys, "data", "convert", str(shapes), "--to", "yolo", str(tmp_path / "y"))
    (tmp_path / "y" / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    label = min((tmp_path / "y" / "labels").glob("0*.txt"))
    label.write_text(label.read_text() + "9 0.5 0.5 0.1 0.1\n")
    code, _, err = run(capsys, "data", "convert", str(tmp_path / "y"), "--to", "coco", str(tmp_path / "c"))
    assert code == 0, err
    assert "skipped: 1 x orphan label file (labels/ghost.txt)" in err
    assert "unknown class" in err and "class 9 is out of range" in err


def test_convert_a_label_studio_export_with_image_root_and_annotations(capsys, tmp_path):
    import json

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (100, 50), "white").save(photos / "hall.jpg")
    rect = {"type": "rectanglelabels", "original_width": 100, "original_height": 50,
            "value": {"x": 10, "y": 10, "width": 20, "height": 40, "rectanglelabels": ["closed_door"]}}
    task = {"id": 1, "data": {"image": "s3://bucket/listing/hall.jpg"},
            "annotations": [{"id": 1, "result": [rect], "updated_at": "2024-05-01T00:00:00Z"},
                            {"id": 2, "result": [{**rect, "value": {**rect["value"], "x": 50}}],
                             "updated_at": "2024-05-02T00:00:00Z"},
                            {"id": 3, "result": [], "was_cancelled": True}],
            "predictions": [{"result": [rect]}]}
    (tmp_path / "export.json").write_text(json.dumps([task]))
    code, out, err = run(capsys, "data", "convert", str(tmp_path / "export.json"), "--to", "coco", str(tmp_path / "c"),
                         "--image-root", str(photos), "--annotations", "all")
    assert code == 0, err
    assert "wrote 1 images, 2 boxes, 1 classes" in out
    assert "Label Studio annotations used: all" in err and "cancelled annotation" in err and "prediction" in err
    doc = json.loads((tmp_path / "c" / "annotations.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["closed_door"]
    assert (tmp_path / "c" / "images" / "hall.jpg").is_file()
    code, out, err = run(capsys, "data", "convert", str(tmp_path / "export.json"), "--to", "coco", str(tmp_path / "l"),
                         "--image-root", str(photos))
    assert code == 0 and "wrote 1 images, 1 boxes" in out and "annotation choice" in err
