"""``explore_cmd`` as a user runs it (through a local Typer app; the real CLI registers it as ``data explore``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from roomscan.cli.explore import explore_cmd
from roomscan.data.dataset import DatasetError
from roomscan.data.synthetic import make_shapes_dataset

app = typer.Typer()
app.command()(explore_cmd)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_dataset(root, n_images=12, image_size=(96, 96), seed=5)
    return root


@pytest.mark.parametrize(
    ("damage", "strict", "code"),
    [
        (False, False, 0),
        (False, True, 0),
        (True, False, 0),  # problems are reported, not fatal...
        (True, True, 1),  # ...unless --strict
    ],
)
def test_explore_writes_the_report_and_prints_findings(dataset, tmp_path, damage, strict, code):
    if damage:
        (dataset / "images" / "00003.jpg").write_bytes(b"")
    out = tmp_path / "report"
    args = [str(dataset), "--out", str(out), "--samples", "2"] + (["--strict"] if strict else [])
    try:
        result = CliRunner().invoke(app, args)
    finally:
        make_shapes_dataset(dataset, n_images=12, image_size=(96, 96), seed=5)  # undo the damage
    assert result.exit_code == code, result.output
    assert result.stdout.strip() == str(out / "report.html")
    assert (out / "report.html").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 12
    assert ("00003.jpg: the file is empty" in result.stderr) == damage
    assert "What to look at" in result.stderr


def test_a_missing_dataset_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, [str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    # roomscan's main() prints a RoomscanError's message and exits 2; here it surfaces as the exception.
    assert isinstance(result.exception, DatasetError)
    assert "nope: no such file or directory" in str(result.exception)


def test_explore_a_yolo_folder_and_force_the_format(dataset, tmp_path):
    from roomscan.data.convert import convert

    convert(dataset, "yolo", tmp_path / "y")
    result = CliRunner().invoke(app, [str(tmp_path / "y"), "--out", str(tmp_path / "r"), "--samples", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["num_images"] == 12
    forced = CliRunner().invoke(app, [str(tmp_path / "y"), "--from", "voc", "--out", str(tmp_path / "r2")])
    assert isinstance(forced.exception, DatasetError) and "no Annotations/ folder" in str(forced.exception)


def test_out_is_required(dataset):
    result = CliRunner().invoke(app, [str(dataset)])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_explore_a_label_studio_export_with_an_image_root(tmp_path):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (100, 50), "white").save(tmp_path / "photos" / "hall.jpg")
    rect = {"type": "rectanglelabels", "original_width": 100, "original_height": 50,
            "value": {"x": 10, "y": 10, "width": 20, "height": 40, "rectanglelabels": ["Kitchen & dining room table"]}}
    task = {"data": {"image": "/data/upload/1/2e3f4a5b-hall.jpg"}, "annotations": [{"result": [rect]}]}
    (tmp_path / "export.json").write_text(json.dumps([task]))
    result = CliRunner().invoke(app, [str(tmp_path / "export.json"), "--out", str(tmp_path / "r"), "--samples", "1",
                                      "--image-root", str(tmp_path / "photos")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["num_boxes"] == 1 and summary["unreadable"] == []
    assert [c["name"] for c in summary["classes"]] == ["Kitchen & dining room table"]
