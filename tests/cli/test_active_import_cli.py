"""`roomscan active import` as a user runs it: the report (table and --json), --dry-run, --map, --skip-unknown,
--strict and --images-root, and clear errors that leave the dataset as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import photo, run

from roomscan.data.dataset import DetectionDataset
from roomscan.data.formats import labelstudio
from roomscan.data.synthetic import make_shapes_dataset


@pytest.fixture
def dataset(tmp_path) -> Path:
    make_shapes_dataset(tmp_path / "ds", n_images=2, image_size=(64, 48), seed=2)
    return tmp_path / "ds"


def _rect(label: str, x: float = 10, y: float = 10, w: float = 40, h: float = 40) -> dict:
    return {"type": "rectanglelabels", "original_width": 96, "original_height": 72,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


@pytest.fixture
def export(dataset, tmp_path) -> Path:
    """The dataset's own export (photos referenced as local files) plus one new photo in photos/ with two boxes."""
    labelstudio.write(DetectionDataset.load(dataset), tmp_path / "export", copy_images=False,
                      image_prefix="/data/local-files/?d=listings/")
    path = tmp_path / "export" / labelstudio.EXPORT_FILE
    tasks = json.loads(path.read_text())
    (tmp_path / "photos").mkdir()
    photo(tmp_path / "photos" / "loft.jpg", seed=5)
    tasks.append({"id": 50, "data": {"image": "/data/upload/2/a1b2c3d4-loft.jpg"},
                  "annotations": [{"result": [_rect("Circle"), _rect("Coffee machine", 60, 60, 30, 30)]}]})
    path.write_text(json.dumps(tasks))
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_import_prints_the_report_and_merges(dataset, export, tmp_path, capsys):
    code, out, err = run(capsys, "active", "import", str(export), "--into", str(dataset), "--images-root",
                         str(tmp_path / "photos"), "--map", "Coffee machine=square")
    assert code == 0, err
    assert "images added" in out and "circle" in out and f"wrote {dataset}" in " ".join(out.split())
    ds = DetectionDataset.load(dataset)
    assert [im.file_name for im in ds.images][-1] == "loft.jpg" and len(ds) == 3
    assert sorted(ds.annotations[ds.images[-1].id].data["class_name"]) == ["circle", "square"]

    code, out, _ = run(capsys, "active", "import", str(export), "--into", str(dataset), "--images-root",
                       str(tmp_path / "photos"), "--map", "Coffee machine=square", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["written"] is False and doc["images_unchanged"] == 3 and doc["images_added"] == []


def test_unknown_labels_stop_with_the_fixes_unless_skipped(dataset, export, tmp_path, capsys):
    before = _files(dataset)
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(dataset), "--images-root", str(tmp_path / "photos"))
    err = " ".join(err.split())
    assert code == 2 and "'Coffee machine' (1 box)" in err and "--map" in err and "--skip-unknown" in err
    assert _files(dataset) == before
    code, out, _ = run(capsys, "active", "import", str(export), "--into", str(dataset), "--images-root",
                       str(tmp_path / "photos"), "--skip-unknown", "--json")
    assert code == 0 and json.loads(out)["unknown_labels"] == {"Coffee machine": 1}


def test_dry_run_shows_the_changes_and_writes_nothing(dataset, export, tmp_path, capsys):
    before = _files(dataset)
    code, out, _ = run(capsys, "active", "import", str(export), "--into", str(dataset), "--image-root",  # as in convert
                       str(tmp_path / "photos"), "--skip-unknown", "--dry-run", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["dry_run"] and doc["images_added"] == ["loft.jpg"] and doc["boxes_added"] == {"circle": 1}
    assert _files(dataset) == before


def test_a_missing_photo_is_skipped_or_with_strict_stops(dataset, export, capsys):
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(dataset), "--skip-unknown")
    assert code == 0 and "missing photo, task skipped" in err and "a1b2c3d4-loft.jpg" in err
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(dataset), "--skip-unknown", "--strict")
    assert code == 2 and "--images-root" in " ".join(err.split())


@pytest.mark.parametrize(("args", "fragment"), [
    (["--map", "nothing-to-split"], "expected 'Label in the export=amenity slug'"),
    (["--map", "Coffee machine=kettle"], "'kettle' is not in the dataset's taxonomy"),
])
def test_bad_maps_are_clear_errors(args, fragment, dataset, export, capsys):
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(dataset), *args)
    assert code == 2 and fragment in " ".join(err.split())


def test_not_a_dataset_says_how_to_start_one(export, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(tmp_path / "notes"))
    assert code == 2 and "is this a roomscan dataset?" in err
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(tmp_path / "new"))
    assert code == 2 and "pass --taxonomy" in err


def test_into_a_file_or_a_missing_images_root_is_a_clear_error(export, tmp_path, capsys):
    (tmp_path / "rooms.txt").write_text("not a dataset")
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(tmp_path / "rooms.txt"),
                       "--taxonomy", str(tmp_path / "any.yaml"))
    assert code == 2 and "is a file, not a dataset folder" in " ".join(err.split())
    assert (tmp_path / "rooms.txt").read_text() == "not a dataset"
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(tmp_path / "new"),
                       "--images-root", str(tmp_path / "nowhere"))
    assert code == 2 and "--images-root" in err and "no such folder" in " ".join(err.split())


def test_a_folder_it_cannot_write_is_a_clear_error_and_the_dataset_is_kept(dataset, export, tmp_path, capsys, monkeypatch):
    import shutil

    before = _files(dataset)

    def read_only(src, dst, **kwargs):  # as a read-only images/ answers (root ignores chmod, so simulate it)
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(shutil, "copy2", read_only)
    code, _, err = run(capsys, "active", "import", str(export), "--into", str(dataset), "--images-root",
                         str(tmp_path / "photos"), "--skip-unknown")
    err = " ".join(err.split())
    assert code == 2 and "Permission denied" in err and "the dataset is as it was" in err and "Traceback" not in err
    assert _files(dataset) == before
