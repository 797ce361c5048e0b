"""``roomscan distill`` end to end with tiny models: a tiny OWLv2 teacher labels photos, a tiny RT-DETRv2 student
trains from scratch for an epoch, is exported to ONNX, and the report is printed and saved."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from _models import build_tiny_rtdetr, tiny_taxonomy
from cli_helpers import photo, run

from roomscan.data.dataset import DetectionDataset, ImageRecord
from roomscan.detection.core import make_detections


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _photos(folder, n: int):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo(folder / f"room{i}.jpg", seed=i)
    return folder


def _human_labels(root, photos):
    """Two photos with a person's boxes, in roomscan's dataset format."""
    images = root / "images"
    images.mkdir(parents=True)
    records, annotations = [], {}
    for i, name in enumerate(["room0.jpg", "room1.jpg"], start=1):
        (images / name).write_bytes((photos / name).read_bytes())
        records.append(ImageRecord(i, name, 96, 72))
        annotations[i] = make_detections([[10, 10, 60, 50]], [1.0], [0], ["bed"])
    DetectionDataset(images, tiny_taxonomy(), records, annotations).save(root, copy_images=False)
    return root


def test_distill_labels_trains_exports_and_reports(tmp_path, capsys, env, tiny_owlv2_dir, taxonomy_file):
    photos = _photos(tmp_path / "photos", 6)
    student = build_tiny_rtdetr(tmp_path / "student-arch", tiny_taxonomy(), image_size=64)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"val_fraction": 0.0, "warmup_steps": 1, "num_workers": 0, "print_every": 1000,
                                      "cache_dir": str(tmp_path / "cache"), "patience": 0}))
    out = tmp_path / "run"
    args = (
        "distill", "--teacher", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file), "--images", str(photos),
        "--student", str(student), "--scratch", "--epochs", "1", "--batch-size", "2", "--image-size", "64",
        "--train-config", str(recipe), "--holdout", "0.34", "--eval-data", str(_human_labels(tmp_path / "human", photos)),
        "--device", "cpu", "--out", str(out),
    )
    code, stdout, stderr = run(capsys, *args)
    assert code == 0, stderr
    stdout = " ".join(stdout.split())  # tables wrap at the terminal's width
    assert "student vs teacher on 2 held-out photos" in stdout
    assert "on human labels" in stdout and "speed on 2 photos: teacher" in stdout
    assert f"report: {out / 'report.json'}" in stdout
    report = json.loads((out / "report.json").read_text())
    assert report["labels"]["photos"] == 6 and report["labels"]["boxes"] > 0
    assert (report["train_photos"], report["holdout_photos"]) == (4, 2)
    assert [c["slug"] for c in report["agreement_with_teacher"]["per_class"]] == ["bed", "oven", "sink"]
    assert set(report["human_labels"]) == {"teacher", "student"}
    assert report["speed"]["teacher_ms_per_image"] > 0 and report["speed"]["student_ms_per_image"] > 0
    assert (out / "student-onnx" / "model.onnx").is_file()
    assert (out / "dataset" / "labelstudio_tasks.json").is_file()
    assert np.isfinite(report["agreement_with_teacher"]["ap50"])

    # A rerun reuses the complete dataset and the finished student instead of doing them again.
    code, _, stderr = run(capsys, *args)
    assert code == 0, stderr
    assert "skipping labelling" in stderr and "has finished training: reusing its model" in stderr


def test_labels_only_stops_for_review_and_says_how_to_continue(tmp_path, capsys, env, tiny_owlv2_dir, taxonomy_file):
    photos = _photos(tmp_path / "photos", 2)
    out = tmp_path / "run"
    code, stdout, stderr = run(capsys, "distill", "--teacher", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file),
                               "--images", str(photos), "--labels-only", "--device", "cpu", "--out", str(out))
    assert code == 0, stderr
    stdout = " ".join(stdout.split())
    assert "labels: 2 photos" in stdout and "--from-dataset" in stdout
    assert not (out / "student").exists()
    assert json.loads((out / "report.json").read_text())["agreement_with_teacher"] is None


def test_an_empty_folder_is_a_clear_error(tmp_path, capsys, env, tiny_owlv2_dir, taxonomy_file):
    (tmp_path / "photos").mkdir()
    code, _, stderr = run(capsys, "distill", "--teacher", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file),
                          "--images", str(tmp_path / "photos"), "--device", "cpu", "--out", str(tmp_path / "run"))
    assert code == 2
    assert "error:" in stderr and "no photos" in " ".join(stderr.split())


@pytest.mark.parametrize("size", ["0", "160000"])
def test_a_teacher_image_size_out_of_range_exits_2_before_loading(tmp_path, capsys, env, tiny_owlv2_dir,
                                                                  taxonomy_file, size):
    photos = _photos(tmp_path / "photos", 2)
    code, _, stderr = run(capsys, "distill", "--teacher", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file),
                          "--images", str(photos), "--labels-only", "--device", "cpu", "--out",
                          str(tmp_path / "run"), "--teacher-image-size", size)
    assert code == 2
    squashed = "".join(stderr.replace("│", "").split())  # the error box wraps anywhere
    assert "--teacher-image-size" in squashed and ("to32" in squashed or "to4096" in squashed), stderr
    assert not (tmp_path / "run").exists()
