"""Merging a Label Studio export into a roomscan dataset: people's boxes replace older ones, new photos come in,
nothing is duplicated or half-written, and every label, photo and box the export cannot give is accounted for."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from roomscan.active.labelstudio_import import (
    ImportReport,
    UnknownLabelsError,
    import_labelstudio,
    parse_label_map,
)
from roomscan.data.dataset import DatasetError, DetectionDataset
from roomscan.data.formats import labelstudio
from roomscan.data.synthetic import make_shapes_dataset


@pytest.fixture
def dataset(tmp_path) -> Path:
    make_shapes_dataset(tmp_path / "ds", n_images=3, image_size=(64, 48), seed=1)
    return tmp_path / "ds"


def _export(dataset: Path, out: Path, **kwargs) -> tuple[Path, list[dict]]:
    """Export the dataset with the Label Studio writer; returns the file and its tasks."""
    labelstudio.write(DetectionDataset.load(dataset), out, **kwargs)
    path = out / labelstudio.EXPORT_FILE
    return path, json.loads(path.read_text())


def _rect(label: str, x: float, y: float, w: float, h: float, size=(64, 48)) -> dict:
    return {"type": "rectanglelabels", "original_width": size[0], "original_height": size[1],
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def _save(path: Path, tasks: list[dict]) -> Path:
    path.write_text(json.dumps(tasks))
    return path


def _state(dataset: Path) -> dict[str, bytes]:
    return {p.relative_to(dataset).as_posix(): p.read_bytes() for p in sorted(dataset.rglob("*")) if p.is_file()}


def _new_photo(path: Path, sample_photo, seed: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sample_photo((64, 48), seed=seed))
    return path


def _edited_export(dataset: Path, tmp_path: Path, sample_photo) -> Path:
    """The dataset's export with task 0's first box moved and one new photo with one square."""
    path, tasks = _export(dataset, tmp_path / "export")
    tasks[0]["annotations"][0]["result"][0]["value"]["x"] += 10
    _new_photo(tmp_path / "export" / "images" / "new.jpg", sample_photo)
    tasks.append({"id": 99, "data": {"image": "images/new.jpg"}, "annotations": [{"result": [_rect("square", 10, 10, 50, 50)]}]})
    return _save(path, tasks)


def test_round_trip_applies_exactly_the_edits(dataset, tmp_path, sample_photo):
    before = DetectionDataset.load(dataset)
    moved_label = before.annotations[before.images[0].id].data["class_name"][0]
    report = import_labelstudio(_edited_export(dataset, tmp_path, sample_photo), dataset)

    assert report.written and report.images_added == ("new.jpg",) and report.images_updated == ("00000.jpg",)
    assert report.images_unchanged == 2
    assert report.boxes_removed == {moved_label: 1}
    assert report.boxes_added == dict(Counter([moved_label, "square"]))  # the moved box, and the new photo's square
    after = DetectionDataset.load(dataset)
    assert len(after) == len(before) + 1 and (dataset / "images" / "new.jpg").is_file()
    old0, new0 = before.annotations[before.images[0].id], after.annotations[after.images[0].id]
    np.testing.assert_allclose(new0.xyxy[0], old0.xyxy[0] + [6.4, 0, 6.4, 0], atol=0.01)  # 10 % of 64 px
    np.testing.assert_allclose(new0.xyxy[1:], old0.xyxy[1:], atol=0.01)
    for im_before, im_after in zip(before.images[1:], after.images[1:]):
        np.testing.assert_allclose(after.annotations[im_after.id].xyxy, before.annotations[im_before.id].xyxy, atol=0.01)
    np.testing.assert_allclose(after.annotations[after.images[-1].id].xyxy, [[6.4, 4.8, 38.4, 28.8]], atol=0.01)


def test_importing_the_same_export_twice_changes_nothing(dataset, tmp_path, sample_photo):
    export = _edited_export(dataset, tmp_path, sample_photo)
    import_labelstudio(export, dataset)
    state = _state(dataset)
    again = import_labelstudio(export, dataset)
    assert not again.changed and not again.written and again.images_unchanged == 4
    assert _state(dataset) == state


@pytest.mark.parametrize("prefix", ["/data/local-files/?d=rooms/images/", "/data/upload/3/1a2b3c4d-",
                                    "https://photos.example.com/x/", "images/"])
def test_photos_already_in_the_dataset_match_by_name_without_the_files(prefix, dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export", copy_images=False, image_prefix=prefix)
    tasks[1]["annotations"][0]["result"] = []  # the person removed every box
    report = import_labelstudio(_save(path, tasks), dataset)
    assert report.images_updated == ("00001.jpg",) and report.images_added == () and report.missing_images == ()
    assert len(DetectionDataset.load(dataset).annotations[2]) == 0


def test_a_renamed_copy_of_a_dataset_photo_matches_by_content(dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export")
    (tmp_path / "export" / "images" / "00002.jpg").rename(tmp_path / "export" / "images" / "renamed.jpg")
    tasks[2]["data"]["image"] = "images/renamed.jpg"
    tasks[2]["annotations"][0]["result"] = [_rect("circle", 0, 0, 50, 50)]
    report = import_labelstudio(_save(path, tasks), dataset)
    assert report.images_updated == ("00002.jpg",) and report.images_added == ()


def test_a_different_photo_under_a_taken_name_comes_in_renamed(dataset, tmp_path, sample_photo):
    _new_photo(tmp_path / "photos" / "00000.jpg", sample_photo, seed=3)
    export = _save(tmp_path / "export.json", [{"data": {"image": "00000.jpg"}, "annotations": [{"result": [_rect("circle", 0, 0, 50, 50)]}]}])
    report = import_labelstudio(export, dataset, images_root=tmp_path / "photos")
    (added,) = report.images_added
    assert added.startswith("00000-") and report.renamed == (("00000.jpg", added),) and report.images_updated == ()
    assert (dataset / "images" / added).read_bytes() == (tmp_path / "photos" / "00000.jpg").read_bytes()


def test_unknown_labels_are_an_error_naming_them_and_the_fixes(dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export", copy_images=False)
    tasks[0]["annotations"][0]["result"] += [_rect("Coffee machine", 0, 0, 20, 20), _rect("sqare", 0, 0, 20, 20)]
    state = _state(dataset)
    with pytest.raises(UnknownLabelsError) as err:
        import_labelstudio(_save(path, tasks), dataset)
    message = str(err.value)
    assert err.value.labels == {"Coffee machine": 1, "sqare": 1}
    for fragment in ("'Coffee machine' (1 box)", "did you mean square", "--map", "--skip-unknown", "taxonomy.yaml"):
        assert fragment in message
    assert _state(dataset) == state


def test_map_and_skip_unknown_resolve_or_leave_out_unknown_labels(dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export", copy_images=False)
    tasks[0]["annotations"][0]["result"] = [_rect("Coffee machine", 0, 0, 20, 20), _rect("Ring", 0, 0, 40, 40)]
    _save(path, tasks)
    mapped = import_labelstudio(path, dataset, label_map=parse_label_map(["Coffee machine=Square", "ring=circle"]), dry_run=True)
    assert mapped.unknown_labels == {} and mapped.boxes_added == {"circle": 1, "square": 1}
    skipped = import_labelstudio(path, dataset, label_map={"Ring": "circle"}, skip_unknown=True)
    assert skipped.unknown_labels == {"Coffee machine": 1}
    assert list(DetectionDataset.load(dataset).annotations[1].data["class_name"]) == ["circle"]
    with pytest.raises(DatasetError, match="'lamp' is not in the dataset's taxonomy"):
        import_labelstudio(path, dataset, label_map={"Ring": "lamp"})
    with pytest.raises(DatasetError, match="expected 'Label in the export=amenity slug'"):
        parse_label_map(["no-equals-sign"])


def test_an_export_without_tasks_is_an_error(dataset, tmp_path):
    with pytest.raises(DatasetError, match="the export has no tasks"):
        import_labelstudio(_save(tmp_path / "export.json", []), dataset)


def test_a_missing_photo_is_reported_and_skipped_unless_strict(dataset, tmp_path):
    export = _save(tmp_path / "export.json", [
        {"data": {"image": "/data/upload/3/0badc0de-gone.jpg"}, "annotations": [{"result": [_rect("circle", 0, 0, 50, 50)]}]}])
    state = _state(dataset)
    report = import_labelstudio(export, dataset)
    assert report.missing_images == ("/data/upload/3/0badc0de-gone.jpg",) and not report.written
    with pytest.raises(DatasetError, match="1 photo.*gone.jpg.*--images-root"):
        import_labelstudio(export, dataset, strict=True)
    assert _state(dataset) == state


def test_boxes_outside_the_image_are_clipped_and_degenerate_ones_dropped(dataset, tmp_path, sample_photo):
    _new_photo(tmp_path / "images" / "edge.jpg", sample_photo)
    export = _save(tmp_path / "export.json", [{"data": {"image": "images/edge.jpg"}, "annotations": [{"result": [
        _rect("circle", 80, 50, 40, 100),    # reaches past the right and bottom edges
        _rect("square", 110, 10, 10, 10),    # wholly outside
        _rect("triangle", 10, 10, 0.5, 20),  # 0.32 px wide
        _rect("square", 10, 10, 20, 20),
    ]}]}])
    report = import_labelstudio(export, dataset)
    assert (report.boxes_clipped, report.boxes_outside, report.boxes_degenerate) == (1, 1, 1)
    ds = DetectionDataset.load(dataset)
    np.testing.assert_allclose(ds.annotations[ds.images[-1].id].xyxy, [[51.2, 24, 64, 48], [6.4, 4.8, 19.2, 14.4]], atol=0.01)


def test_cancelled_and_unannotated_tasks_change_nothing_and_the_latest_annotation_wins(dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export", copy_images=False)
    tasks[0]["annotations"] = [{"id": 5, "was_cancelled": True, "result": []}]  # skipped in Label Studio
    tasks[1]["annotations"] = []                                                  # not labelled yet
    tasks[2]["annotations"] = [
        {"id": 1, "updated_at": "2024-05-01T10:00:00Z", "result": [_rect("circle", 0, 0, 10, 10)]},
        {"id": 2, "updated_at": "2024-05-03T10:00:00Z", "result": [_rect("triangle", 0, 0, 30, 30)]},
        {"id": 3, "updated_at": "2024-05-04T10:00:00Z", "was_cancelled": True, "result": []},
    ]
    before = DetectionDataset.load(dataset)
    report = import_labelstudio(_save(path, tasks), dataset)
    assert (report.unlabelled_tasks, report.cancelled_annotations) == (2, 2)
    assert report.images_updated == ("00002.jpg",)
    after = DetectionDataset.load(dataset)
    assert list(after.annotations[3].data["class_name"]) == ["triangle"]
    for image_id in (1, 2):  # a cancelled or missing annotation is not "no boxes": the old ones stay
        assert len(after.annotations[image_id]) == len(before.annotations[image_id]) > 0


def test_json_min_exports_import_too(dataset, tmp_path):
    rows = [{"id": 1, "image": "/data/local-files/?d=images/00000.jpg", "annotation_id": 4, "updated_at": "2024-05-01",
             "label": [{"x": 0, "y": 0, "width": 50, "height": 50, "rotation": 0, "rectanglelabels": ["circle"],
                        "original_width": 64, "original_height": 48}]}]
    report = import_labelstudio(_save(tmp_path / "min.json", rows), dataset)
    assert report.images_updated == ("00000.jpg",)
    np.testing.assert_allclose(DetectionDataset.load(dataset).annotations[1].xyxy, [[0, 0, 32, 24]])


def test_a_failed_copy_leaves_the_dataset_as_it_was(dataset, tmp_path, sample_photo, monkeypatch):
    path, tasks = _export(dataset, tmp_path / "export", copy_images=False)
    tasks[0]["annotations"][0]["result"] = []
    for k in range(3):
        _new_photo(tmp_path / "export" / "images" / f"new{k}.jpg", sample_photo, seed=10 + k)
        tasks.append({"data": {"image": f"images/new{k}.jpg"}, "annotations": [{"result": [_rect("circle", 0, 0, 50, 50)]}]})
    _save(path, tasks)
    state = _state(dataset)
    copy, calls = shutil.copy2, []

    def copy_then_fail(src, dst, **kwargs):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return copy(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="No space left"):
        import_labelstudio(path, dataset)
    assert _state(dataset) == state


def test_a_failed_annotations_write_removes_the_photos_it_placed(dataset, tmp_path, sample_photo, monkeypatch):
    export = _edited_export(dataset, tmp_path, sample_photo)
    state = _state(dataset)
    import os

    replace = os.replace

    def fail_on_annotations(src, dst):
        if str(dst).endswith("annotations.json"):
            raise OSError(5, "Input/output error")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_annotations)
    with pytest.raises(OSError, match="Input/output"):
        import_labelstudio(export, dataset)
    assert _state(dataset) == state


def test_a_dry_run_reports_without_writing(dataset, tmp_path, sample_photo):
    state = _state(dataset)
    report = import_labelstudio(_edited_export(dataset, tmp_path, sample_photo), dataset, dry_run=True)
    assert report.dry_run and not report.written and report.images_added == ("new.jpg",) and report.changed
    assert _state(dataset) == state


def test_a_new_dataset_starts_from_the_given_taxonomy(dataset, tmp_path, sample_photo):
    export = _edited_export(dataset, tmp_path, sample_photo)
    with pytest.raises(DatasetError, match="pass --taxonomy"):
        import_labelstudio(export, tmp_path / "fresh")
    report = import_labelstudio(export, tmp_path / "fresh", taxonomy=dataset / "taxonomy.yaml")
    fresh = DetectionDataset.load(tmp_path / "fresh")
    assert len(report.images_added) == len(fresh) == 4 and fresh.taxonomy.slugs == ["circle", "square", "triangle"]
    assert all(fresh.path(im).is_file() for im in fresh.images)


def test_a_taxonomy_other_than_the_datasets_is_refused(dataset, tmp_path):
    from roomscan.taxonomy import Amenity, Taxonomy

    other = Taxonomy((Amenity("square", "Square"), Amenity("circle", "Circle"), Amenity("triangle", "Triangle")))
    path, _ = _export(dataset, tmp_path / "export", copy_images=False)
    with pytest.raises(DatasetError, match="class ids would change"):
        import_labelstudio(path, dataset, taxonomy=other)


def test_the_report_serialises_to_json(dataset, tmp_path, sample_photo):
    report = import_labelstudio(_edited_export(dataset, tmp_path, sample_photo), dataset, dry_run=True)
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["images_added"] == ["new.jpg"] and doc["dry_run"] is True and isinstance(report, ImportReport)


def test_a_photo_labelled_at_another_size_is_scaled_or_if_reshaped_skipped(dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export", copy_images=False)
    tasks[0]["annotations"][0]["result"] = [_rect("circle", 0, 0, 50, 50, size=(128, 96))]  # shown at twice the size
    tasks[1]["annotations"][0]["result"] = [_rect("circle", 0, 0, 50, 50, size=(48, 64))]   # shown rotated
    _save(path, tasks)
    report = import_labelstudio(path, dataset)
    assert report.images_updated == ("00000.jpg",) and len(report.size_mismatches) == 1
    assert "64x48 but was labelled at 48x64" in report.size_mismatches[0]
    np.testing.assert_allclose(DetectionDataset.load(dataset).annotations[1].xyxy, [[0, 0, 32, 24]])
    with pytest.raises(DatasetError, match="labelled at 48x64"):
        import_labelstudio(path, dataset, strict=True)


def test_two_tasks_for_one_photo_are_refused(dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export")
    shutil.copy(dataset / "images" / "00000.jpg", tmp_path / "export" / "images" / "copy.jpg")
    tasks[1]["data"]["image"] = "images/copy.jpg"  # the same bytes as task 0's photo, under another name
    with pytest.raises(DatasetError, match=r"task\[1\] \(id 2\) and task\[0\] \(id 1\) are the same photo \(00000.jpg\)"):
        import_labelstudio(_save(path, tasks), dataset)
    tasks[1]["data"]["image"] = "/data/upload/1/0badc0de-00000.jpg"  # the same name: the reader refuses it
    with pytest.raises(DatasetError, match="appears in two tasks"):
        import_labelstudio(_save(path, tasks), dataset)


def test_an_unlabelled_duplicate_task_of_a_photo_is_left_out(dataset, tmp_path):
    path, tasks = _export(dataset, tmp_path / "export")  # the project imported its photos twice
    tasks.insert(0, {"id": 99, "data": {"image": tasks[0]["data"]["image"]}, "annotations": []})
    tasks[1]["annotations"][0]["result"] = []  # the labelled twin: its boxes removed by the person
    report = import_labelstudio(_save(path, tasks), dataset)
    assert report.images_updated == ("00000.jpg",) and len(DetectionDataset.load(dataset).annotations[1]) == 0
    assert any("duplicate task" in note for note in report.notes)


def test_an_import_that_races_another_writer_stops_and_keeps_their_change(dataset, tmp_path, sample_photo, monkeypatch):
    export = _edited_export(dataset, tmp_path, sample_photo)
    copy = shutil.copy2

    def copy_while_someone_edits(src, dst, **kwargs):
        ann = dataset / "annotations.json"
        ann.write_text(ann.read_text().replace('"images"', '"images" ', 1))  # another process saves the dataset
        return copy(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", copy_while_someone_edits)
    with pytest.raises(DatasetError, match="changed while importing"):
        import_labelstudio(export, dataset)
    theirs = _state(dataset)
    assert '"images" ' in theirs["annotations.json"].decode() and "images/new.jpg" not in theirs
