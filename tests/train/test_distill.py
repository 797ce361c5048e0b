"""Distillation for real: a tiny teacher trained on shapes labels unlabelled copies of its photos, a tiny student
learns from those labels alone and finds shapes on photos neither has seen; and the failures a user meets
(a teacher that finds nothing, an empty folder, a crash mid-labelling, a review round trip through Label Studio)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence

import numpy as np
import pytest
import yaml
from _models import build_tiny_rtdetr, make_image, tiny_taxonomy
from PIL import Image

from roomscan.backends import Detector, ModelInfo, get_detector
from roomscan.backends._base import RawOutput
from roomscan.data.dataset import DatasetError, DetectionDataset
from roomscan.data.synthetic import make_shapes_dataset
from roomscan.train.distill import DistillConfig, DistillError, distill

IMAGE_SIZE = 64


class FakeTeacher(Detector):
    """A one-method backend: a bed at the top-left of every photo wider than ``min_width``, nothing elsewhere;
    after ``fail_after`` forward passes it crashes."""

    def __init__(self, *, min_width: int = 0, fail_after: int | None = None, name: str = "fake") -> None:
        self.taxonomy = tiny_taxonomy()  # bed, oven, sink
        self.info = ModelInfo("fake", name, "0" * 12, self.taxonomy.fingerprint())
        self.thresholds = np.full(len(self.taxonomy), 0.3, dtype=np.float32)
        self.class_map = np.arange(len(self.taxonomy))
        self.min_width, self.fail_after, self.calls = min_width, fail_after, 0

    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("out of memory")
        out = []
        for image in batch:
            w, h = image.size
            bed = 0.9 if w > self.min_width else 0.01
            out.append(RawOutput(np.array([[2, 3, w / 2, h / 2]], dtype=np.float32),
                                 np.array([[bed, 0.0, 0.0]], dtype=np.float32)))
        return out


def _photos(folder, n: int, size=(96, 64)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_image(size, seed=i).save(folder / f"p{i:02d}.jpg", "JPEG")
    return folder


def _labels_only(tmp_path, **changes) -> DistillConfig:
    return DistillConfig(**{"out": str(tmp_path / "run"), "images": str(tmp_path / "photos"), "labels_only": True,
                            "teacher": "fake", **changes})


def _recipe(cache) -> dict:
    """The fast recipe of tests/train (batch 4, lr 3e-3, short warm-up, no augmentation), at 64 px."""
    return {"scratch": True, "batch_size": 4, "lr": 3e-3, "image_size": IMAGE_SIZE, "val_fraction": 0.0,
            "warmup_steps": 5, "clip_grad": 1.0, "hflip": 0.0, "patience": 0, "num_workers": 0, "print_every": 1000,
            "eval_batch_size": 8, "cache_dir": str(cache)}


def test_distilling_a_trained_teacher_raises_the_students_ap_well_above_its_untrained_ap(tmp_path):
    """About 70 s on one core: the teacher and the student each train 30 short epochs (8 steps) at 64 px."""
    from roomscan.train import TrainConfig
    from roomscan.train.data import ImageCache
    from roomscan.train.engine import fit, predict
    from roomscan.train.evaluate import evaluate_detector, evaluate_predictions
    from roomscan.train.model import build_model

    shape = {"image_size": (IMAGE_SIZE, IMAGE_SIZE), "max_objects": 1, "min_size": 24}
    labelled = make_shapes_dataset(tmp_path / "labelled", n_images=32, seed=0, **shape)
    unseen = make_shapes_dataset(tmp_path / "unseen", n_images=16, seed=7, **shape)
    arch = build_tiny_rtdetr(tmp_path / "arch", labelled.taxonomy, image_size=IMAGE_SIZE)
    recipe = _recipe(tmp_path / "cache")

    # The teacher: a tiny RT-DETRv2 trained on the 32 labelled photos.
    teacher_run = fit(TrainConfig(data=str(tmp_path / "labelled"), model=str(arch), epochs=30, seed=0,
                                  out=str(tmp_path / "runs"), name="teacher", **recipe), log=lambda s: None)
    scored = get_detector(str(teacher_run / "model"), device="cpu", score_threshold=0.001)
    teacher_ap50 = evaluate_detector(scored, labelled)[0].ap50
    assert teacher_ap50 >= 0.5, teacher_ap50

    # The student (another seed) sees only unlabelled copies of those photos and the teacher's boxes on them.
    shutil.copytree(labelled.images_dir, tmp_path / "unlabelled")
    student_recipe = tmp_path / "recipe.yaml"
    student_recipe.write_text(yaml.safe_dump({k: v for k, v in recipe.items() if k not in ("scratch", "batch_size",
                                                                                            "lr", "image_size")}))
    config = DistillConfig(
        out=str(tmp_path / "run"), teacher=str(teacher_run / "model"), images=str(tmp_path / "unlabelled"),
        score_threshold=0.4, student=str(arch), scratch=True, epochs=30, batch_size=4, lr=3e-3,
        image_size=IMAGE_SIZE, train_config=str(student_recipe), holdout=0.2, eval_data=str(tmp_path / "unseen"),
        device="cpu", seed=2, speed_images=4,
    )
    teacher = get_detector(config.teacher, device="cpu", score_threshold=config.score_threshold)
    report = distill(config, teacher=teacher, log=lambda s: None)

    # Judged on 16 photos nobody trained on, against the student's own untrained (seeded) initialisation.
    untrained, processor = build_model(TrainConfig(data="-", model=str(arch), seed=2, **recipe), unseen.taxonomy)
    initial = evaluate_predictions(unseen, predict(untrained, processor, unseen, ImageCache(None, IMAGE_SIZE),
                                                   batch_size=8, device="cpu"))
    student = report.human_student.ap50
    assert initial.ap50 < 0.05
    assert student >= 0.15 and student >= initial.ap50 + 0.12, (initial.ap50, student, report.human_teacher.ap50)
    assert report.labels.photos == 32 and report.labels.boxes >= 20
    assert (report.train_photos, report.holdout_photos) == (26, 6)
    assert report.agreement.ap50 > 0.0
    assert report.speed.teacher_ms > 0 and report.speed.student_ms > 0
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["human_labels"]["student"]["ap50"] == pytest.approx(student)
    print(f"teacher AP50 on its photos {teacher_ap50:.3f}, on unseen {report.human_teacher.ap50:.3f}; student "
          f"untrained {initial.ap50:.3f}, distilled {student:.3f}; agreement {report.agreement.ap50:.3f}; "
          f"labels {report.labels}; {report.speed}")


def test_a_teacher_that_finds_nothing_is_a_clear_error_and_writes_no_dataset(tmp_path):
    _photos(tmp_path / "photos", 3)
    with pytest.raises(DistillError, match=r"found nothing on any of the 3 photos.*--score-threshold.*prompts"):
        distill(_labels_only(tmp_path), teacher=FakeTeacher(min_width=10_000), log=lambda s: None)
    assert not (tmp_path / "run" / "dataset").exists()


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: (p.mkdir(), (p / "notes.txt").write_text("x"))],
                         ids=["empty", "no photos"])
def test_a_folder_without_photos_is_a_clear_error(tmp_path, make):
    make(tmp_path / "photos")
    with pytest.raises(DistillError, match=r"photos: no photos \(.jpg"):
        distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)


def test_a_crash_while_labelling_leaves_no_half_written_dataset(tmp_path):
    _photos(tmp_path / "photos", 5)
    with pytest.raises(RuntimeError, match="out of memory"):
        distill(_labels_only(tmp_path, batch=2), teacher=FakeTeacher(fail_after=1), log=lambda s: None)
    assert not (tmp_path / "run" / "dataset").exists()
    assert list((tmp_path / "run").iterdir()) == []  # no temporary directory left behind either


def test_labels_only_writes_label_studio_tasks_that_the_reader_reads_back(tmp_path):
    from roomscan.data.formats import labelstudio

    _photos(tmp_path / "photos", 3)
    _photos(tmp_path / "photos" / "wide", 2, size=(120, 64))
    for i in range(2):  # wider photos: the teacher sees a bed on these
        shutil.move(tmp_path / "photos" / "wide" / f"p{i:02d}.jpg", tmp_path / "photos" / f"wide{i}.jpg")
    (tmp_path / "photos" / "wide").rmdir()
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    lines: list[str] = []
    report = distill(_labels_only(tmp_path), teacher=FakeTeacher(min_width=100), log=lines.append)

    assert (report.labels.photos, report.labels.boxes, report.labels.negatives) == (5, 2, 3)
    assert len(report.labels.unreadable) == 1 and "broken.jpg" in report.labels.unreadable[0]
    assert any(line.startswith("skipped 1 unreadable photo(s)") and "broken.jpg" in line for line in lines)
    assert report.agreement is None and report.student_dir is None and "--from-dataset" in report.notes[0]
    dataset_dir = tmp_path / "run" / "dataset"
    assert len(DetectionDataset.load(dataset_dir)) == 5  # negatives are kept
    tasks_file = dataset_dir / "labelstudio_tasks.json"
    tasks = json.loads(tasks_file.read_text())
    predicted = {t["data"]["image"]: t["predictions"][0]["result"] for t in tasks}
    assert [r["value"]["rectanglelabels"] for r in predicted["images/wide0.jpg"]] == [["Bed"]]
    assert predicted["images/wide0.jpg"][0]["score"] == pytest.approx(0.9)
    assert all("annotations" not in t for t in tasks)  # the teacher's boxes are suggestions, not ground truth

    as_is = labelstudio.read(tasks_file, taxonomy=tiny_taxonomy())
    assert len(as_is) == 5 and as_is.num_boxes == 0
    assert sum(s.kind == "prediction" for s in as_is.skipped) == 5

    # A reviewer accepts every suggestion (Label Studio turns predictions into annotations) and exports.
    for task in tasks:
        task["annotations"] = [{"id": task["id"], "result": task.pop("predictions")[0]["result"]}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    reviewed = labelstudio.read(export, images_dir=dataset_dir / "images", taxonomy=tiny_taxonomy())
    teacher_ds = DetectionDataset.load(dataset_dir)
    by_name = {im.file_name: dets for im, dets in teacher_ds}
    for im, dets in reviewed:
        np.testing.assert_allclose(dets.xyxy, by_name[im.file_name].xyxy, atol=1e-3)
    again = distill(_labels_only(tmp_path, images=None, from_dataset=str(export)), teacher=FakeTeacher(),
                    log=lambda s: None)
    assert again.labels.source == f"reviewed: {export}" and again.labels.boxes == 2


def test_a_rerun_reuses_a_complete_dataset_and_refuses_another_teachers(tmp_path):
    _photos(tmp_path / "photos", 2)
    distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)
    lines: list[str] = []
    teacher = FakeTeacher(fail_after=0)  # would crash if asked to label again
    report = distill(_labels_only(tmp_path), teacher=teacher, log=lines.append)
    assert report.labels.resumed and report.labels.photos == 2 and teacher.calls == 0
    assert any("skipping labelling" in line for line in lines)
    with pytest.raises(DistillError, match="was labelled by .*--from-dataset"):
        distill(_labels_only(tmp_path), teacher=FakeTeacher(name="other"), log=lambda s: None)


def _unknown_label(tasks):
    tasks[1]["annotations"][0]["result"][0]["value"]["rectanglelabels"] = ["Hot air balloon"]


def _missing_image(tasks):
    tasks[1]["data"]["image"] = "images/gone.jpg"


@pytest.mark.parametrize(
    ("spoil", "message"),
    [(_unknown_label, "Hot air balloon.*not in the taxonomy"), (_missing_image, "1 image.* not found.*gone.jpg")],
    ids=["unknown label", "missing image"],
)
def test_a_bad_reviewed_export_is_a_clear_error(tmp_path, spoil, message):
    _photos(tmp_path / "photos", 2)
    distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)
    tasks = json.loads((tmp_path / "run" / "dataset" / "labelstudio_tasks.json").read_text())
    for task in tasks:
        task["annotations"] = [{"id": task["id"], "result": task.pop("predictions")[0]["result"]}]
    spoil(tasks)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    with pytest.raises(DatasetError, match=message):
        distill(_labels_only(tmp_path, images=None, from_dataset=str(export)), teacher=FakeTeacher(),
                log=lambda s: None)


def test_reviewed_boxes_outside_the_image_are_clipped_and_reported(tmp_path):
    _photos(tmp_path / "photos", 2)
    distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)
    tasks = json.loads((tmp_path / "run" / "dataset" / "labelstudio_tasks.json").read_text())
    for task in tasks:
        task["annotations"] = [{"id": task["id"], "result": task.pop("predictions")[0]["result"]}]
    tasks[0]["annotations"][0]["result"][0]["value"].update(x=80.0, width=40.0)  # reaches past the right edge
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    lines: list[str] = []
    report = distill(_labels_only(tmp_path, images=None, from_dataset=str(export)), teacher=FakeTeacher(),
                     log=lines.append)
    assert report.labels.boxes == 2
    assert any("box clipped" in line for line in lines), lines


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"images": None}, "exactly one photo source"), ({"catalog": True}, "exactly one photo source"),
     ({"human_decisions": True}, "needs --catalog"), ({"holdout": 1.0}, "--holdout")],
)
def test_config_mistakes_are_named(tmp_path, changes, message):
    with pytest.raises(DistillError, match=message):
        _labels_only(tmp_path, **changes)


def test_catalog_photos_lose_the_boxes_of_amenities_their_host_rejected(tmp_path, monkeypatch):
    from roomscan.catalog import store
    from roomscan.catalog.models import AmenityDecision
    from roomscan.detection.image import load_image
    from roomscan.services import Services
    from roomscan.settings import Settings

    monkeypatch.setenv("ROOMSCAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ROOMSCAN_DATABASE_URL", raising=False)
    monkeypatch.delenv("ROOMSCAN_PHOTO_STORE", raising=False)
    teacher = FakeTeacher()  # a bed on every photo
    services = Services.open(Settings.from_env())
    try:
        with services.sessions() as session, session.begin():
            model_id = store.ensure_model(session, teacher.info).id
            for seed, title in enumerate(("rejects the bed", "says nothing")):
                listing = store.create_listing(session, title, taxonomy=teacher.taxonomy, model_id=model_id)
                session.flush()
                loaded = load_image(_jpeg(seed + 10))
                store.add_photo(session, services.photos, listing, loaded, model_id=model_id, taxonomy=teacher.taxonomy)
                if seed == 0:
                    session.add(AmenityDecision(listing_id=listing.id, amenity="bed", decision="rejected"))

        def labels(tmp, **changes):
            config = DistillConfig(out=str(tmp), catalog=True, labels_only=True, **changes)
            return distill(config, teacher=teacher, services=services, log=lambda s: None).labels

        plain = labels(tmp_path / "plain")
        assert (plain.photos, plain.boxes, plain.negatives, plain.removed_by_hosts) == (2, 2, 0, 0)
        decided = labels(tmp_path / "decided", human_decisions=True)
        assert (decided.photos, decided.boxes, decided.negatives, decided.removed_by_hosts) == (2, 1, 1, 1)
    finally:
        services.close()


def _jpeg(seed: int) -> bytes:
    import io

    buf = io.BytesIO()
    make_image((96, 64), seed=seed).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("review", [False, True], ids=["images-prefix", "local-files"])
def test_photo_names_with_url_characters_survive_the_label_studio_round_trip(tmp_path, review):
    from urllib.parse import unquote, urlparse

    names = ["a&b #1+50%.jpg", "a%20b.jpg", "é ü.jpg", "q?x=1.jpg"]
    (tmp_path / "photos").mkdir()
    for i, name in enumerate(names):
        make_image((120, 64), seed=i).save(tmp_path / "photos" / name, "JPEG")
    distill(_labels_only(tmp_path, review=review), teacher=FakeTeacher(), log=lambda s: None)
    tasks_file = tmp_path / "run" / "dataset" / "labelstudio_tasks.json"
    tasks = json.loads(tasks_file.read_text())
    if review:  # what Label Studio's local-file serving opens: the d= parameter, decoded once
        opened = {unquote(urlparse(t["data"]["image"]).query.partition("d=")[2]) for t in tasks}
        assert opened == {str((tmp_path / "run" / "dataset" / "images" / n).resolve()) for n in names}
    for task in tasks:
        task["annotations"] = [{"id": task["id"], "result": task.pop("predictions")[0]["result"]}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    again = distill(_labels_only(tmp_path, images=None, from_dataset=str(export)), teacher=FakeTeacher(),
                    log=lambda s: None)
    assert again.labels.photos == 4 and again.labels.boxes == 4


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda tmp: {"train_config": str(tmp / "missing.yaml")}, "config file not found"),
        (lambda tmp: (tmp / "bad.yaml").write_text("{: [") and {"train_config": str(tmp / "bad.yaml")},
         "not a readable YAML config"),
        (lambda tmp: {"eval_data": str(tmp / "no-such-dataset")}, "dataset directory not found"),
    ],
    ids=["missing-train-config", "bad-train-config", "missing-eval-data"],
)
def test_mistakes_in_later_steps_are_named_before_the_teacher_labels_anything(tmp_path, spoil, message):
    _photos(tmp_path / "photos", 2)
    teacher = FakeTeacher()
    config = _labels_only(tmp_path, labels_only=False, scratch=True, **spoil(tmp_path))
    with pytest.raises(Exception, match=message):
        distill(config, teacher=teacher, log=lambda s: None)
    assert teacher.calls == 0 and not (tmp_path / "run" / "dataset").exists()


@pytest.mark.parametrize("content", ["[1", "[1, 2]", '{"teacher": "fake"}'], ids=["cut", "list", "missing-keys"])
def test_an_unreadable_teacher_json_is_named_and_the_dataset_kept(tmp_path, content):
    _photos(tmp_path / "photos", 2)
    distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)
    info = tmp_path / "run" / "dataset" / "teacher.json"
    info.write_text(content)
    with pytest.raises(DistillError, match="teacher.json: unreadable"):
        distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)
    assert info.read_text() == content and len(DetectionDataset.load(tmp_path / "run" / "dataset")) == 2


def test_a_run_directory_that_is_a_file_is_named(tmp_path):
    _photos(tmp_path / "photos", 2)
    (tmp_path / "run").write_text("notes")
    with pytest.raises(DistillError, match="exists and is not a directory"):
        distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)
    assert (tmp_path / "run").read_text() == "notes"


def test_a_catalog_photo_missing_from_the_store_is_skipped_like_an_unreadable_one(tmp_path):
    import io

    from roomscan.errors import NotFoundError
    from roomscan.train.distill import PhotoSource, label_with_teacher

    def gone() -> bytes:
        raise NotFoundError("photo file abc is missing from the photo store at /store")

    buffer = io.BytesIO()
    make_image((96, 64), seed=0).save(buffer, "JPEG")
    photos = [PhotoSource("a.jpg", "catalog photo 1", read=buffer.getvalue),
              PhotoSource("b.jpg", "catalog photo 2", read=gone)]
    dataset = label_with_teacher(FakeTeacher(), photos, tmp_path / "dataset", log=lambda s: None)
    assert [im.file_name for im in dataset.images] == ["a.jpg"]
    (skipped,) = [s for s in dataset.skipped if s.kind == "unreadable image"]
    assert skipped.where == "catalog photo 2" and "missing from the photo store" in skipped.reason


def test_a_rerun_on_other_labels_trains_the_student_again_instead_of_reusing_it(tmp_path, monkeypatch):
    from roomscan.detection.core import make_detections
    from roomscan.train import engine, runs

    trained: list[str] = []

    def fake_fit(config=None, *, resume=None, log=print):  # the student "trains" in no time
        run_dir = tmp_path / "run" / "student"
        (run_dir / runs.MODEL_DIR).mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"data": config.data}))
        runs.update_info(run_dir, status="finished")
        trained.append(DetectionDataset.load(config.data).fingerprint())

    monkeypatch.setattr(engine, "fit", fake_fit)
    _photos(tmp_path / "photos", 4, size=(120, 64))
    distill(_labels_only(tmp_path), teacher=FakeTeacher(), log=lambda s: None)
    dataset_dir = tmp_path / "run" / "dataset"
    lines: list[str] = []

    def student(source, log):
        with pytest.raises(Exception):  # noqa: B017  # stops after training: the export is not under test
            distill(_labels_only(tmp_path, images=None, from_dataset=str(source), labels_only=False, scratch=True),
                    teacher=FakeTeacher(), log=log)

    student(dataset_dir, lines.append)
    student(dataset_dir, lines.append)  # the same labels: reused
    assert len(trained) == 1 and any("reusing its model" in line for line in lines)
    reviewed = tmp_path / "reviewed"  # a reviewer drew one more box
    ds = DetectionDataset.load(dataset_dir)
    first = ds.images[0].id
    extra = make_detections(np.vstack([ds.annotations[first].xyxy, [[50, 30, 90, 60]]]),
                            [1.0] * (len(ds.annotations[first]) + 1), [0] * (len(ds.annotations[first]) + 1),
                            ["bed"] * (len(ds.annotations[first]) + 1))
    DetectionDataset(ds.images_dir, ds.taxonomy, ds.images, {**ds.annotations, first: extra}).save(reviewed)
    lines.clear()
    student(reviewed, lines.append)
    assert any("trained on other labels" in line for line in lines)
    assert len(trained) == 2 and trained[1] != trained[0]
