"""Ranking a pool: a folder or the catalog in, a batch to label and its files out."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from _models import make_image, tiny_taxonomy
from PIL import Image

from roomscan.active.committee import Committee
from roomscan.active.outputs import (
    CONTACT_SHEET,
    LABELSTUDIO_CONFIG,
    LABELSTUDIO_TASKS,
    RANKING_CSV,
    RANKING_JSON,
)
from roomscan.active.rank import RankError, SkippedPhotosWarning, rank
from roomscan.active.select import BudgetWarning
from roomscan.backends import Detector, ModelInfo
from roomscan.backends._base import RawOutput
from roomscan.data.formats import labelstudio


class NoisyDetector(Detector):
    """Deterministic per (seed, image): 1-3 random boxes with random class probabilities; seeds disagree."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.taxonomy = tiny_taxonomy()
        self.info = ModelInfo("fake", f"noisy-{seed}", "0" * 12, self.taxonomy.fingerprint())
        self.thresholds = np.zeros(len(self.taxonomy), dtype=np.float32)
        self.class_map = np.arange(len(self.taxonomy))

    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        out = []
        for image in batch:
            rng = np.random.default_rng([self.seed, zlib.crc32(image.tobytes())])
            w, h = image.size
            n = int(rng.integers(1, 4))
            xy = rng.uniform(0, 0.5, (n, 2)) * (w, h)
            wh = rng.uniform(0.2, 0.5, (n, 2)) * (w, h)
            out.append(RawOutput(np.concatenate([xy, xy + wh], axis=1), rng.uniform(0.05, 0.95, (n, 3))))
        return out


class FixedDetector(NoisyDetector):
    """The same oven box on every photo: a committee of these agrees everywhere."""

    def _forward(self, batch: Sequence[Image.Image]) -> list[RawOutput]:
        box = np.array([[2, 2, 20, 20]], dtype=np.float32)
        return [RawOutput(box, np.array([[0.1, 0.8, 0.1]], dtype=np.float32)) for _ in batch]


@pytest.fixture
def committee() -> Committee:
    return Committee.build([NoisyDetector(0), NoisyDetector(1)], tta=True)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "kitchen").mkdir(parents=True)
    for i in range(6):
        sub = folder / "kitchen" if i % 2 else folder
        make_image((96, 64), seed=i).save(sub / f"p{i}.jpg", "JPEG")
    return folder


def test_ranking_a_folder_picks_the_budget_without_duplicates(committee, photos, tmp_path):
    result = rank(committee, photos, score="bald", budget=4, out_dir=tmp_path / "out")
    ids = [p.id for p in result.photos]
    assert len(ids) == 4 == len(set(ids))
    assert result.pool_size == 6 and not result.short
    assert [p.rank for p in result.photos] == [1, 2, 3, 4]
    assert [p.score for p in result.photos] == sorted((p.score for p in result.photos), reverse=True)
    assert any(i.startswith("kitchen/") for i in ids) or len(ids) == 4  # recursive pool
    assert {p.id for p in result.photos} <= {f"p{i}.jpg" for i in range(0, 6, 2)} | {
        f"kitchen/p{i}.jpg" for i in range(1, 6, 2)
    }
    for p in result.photos:
        assert set(p.scores) == {"entropy", "bald", "box-variance", "count", "least-confidence", "random"}
        assert p.scores["bald"] == pytest.approx(p.score)
        assert p.why.startswith("bald ")


def test_budget_larger_than_the_pool_warns_and_returns_the_pool(committee, photos):
    with pytest.warns(BudgetWarning, match="exceeds the pool of 6"):
        result = rank(committee, photos, score="entropy", budget=50)
    assert result.short and len(result.photos) == 6
    assert len({p.id for p in result.photos}) == 6


def test_diversity_and_class_balance_still_give_distinct_picks(committee, photos):
    result = rank(committee, photos, score="bald", budget=3, diversity=True, class_balance=True)
    assert len({p.id for p in result.photos}) == 3
    assert all("diverse: pick" in p.why for p in result.photos)
    assert result.class_counts is not None and set(result.class_counts) == {"bed", "oven", "sink"}


def test_class_counts_favour_photos_of_rare_classes(committee, photos):
    plain = rank(committee, photos, score="entropy", budget=6)
    rare = rank(
        committee, photos, score="entropy", budget=6, class_counts={"bed": 1, "oven": 1000, "sink": 1000}
    )
    before = {p.id: p.score for p in plain.photos}
    boosted = [p for p in rare.photos if "rare: bed" in p.why]
    assert boosted
    assert all(p.score > before[p.id] > 0 for p in boosted)
    assert all(p.score == pytest.approx(before[p.id]) for p in rare.photos if "rare:" not in p.why)


def test_an_empty_folder_is_a_clear_error(committee, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    with pytest.raises(RankError, match="no image files in it or its sub-folders"):
        rank(committee, tmp_path / "empty", score="bald", budget=3)
    with pytest.raises(RankError, match="no such folder"):
        rank(committee, tmp_path / "missing", score="bald", budget=3)


def test_a_linked_sub_folder_is_ranked_and_a_link_loop_does_not_hang(committee, photos, tmp_path):
    from roomscan.active.pool import folder_pool

    elsewhere = tmp_path / "mnt" / "batch3"
    elsewhere.mkdir(parents=True)
    make_image((96, 64), seed=9).save(elsewhere / "loft.jpg", "JPEG")
    (photos / "batch3").symlink_to(elsewhere, target_is_directory=True)
    (photos / "kitchen" / "up").symlink_to(photos, target_is_directory=True)  # a loop back to the top
    ids = [p.id for p in folder_pool(photos).photos]
    assert "batch3/loft.jpg" in ids and len(ids) == 7 and len(set(ids)) == 7


def test_unreadable_files_are_skipped_and_listed(committee, photos):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (photos / "kitchen" / "empty.png").write_bytes(b"")
    with pytest.warns(SkippedPhotosWarning) as caught:
        result = rank(committee, photos, score="bald", budget=6)
    message = str(caught[0].message)
    assert "skipped 2 unreadable photo(s)" in message and "broken.jpg" in message and "empty.png" in message
    assert result.pool_size == 6 and len(result.skipped) == 2
    assert "broken.jpg" not in {p.id for p in result.photos}


def test_no_readable_photo_is_an_error(committee, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"junk")
    with pytest.warns(SkippedPhotosWarning), pytest.raises(RankError, match="none of the 1 photo"):
        rank(committee, tmp_path / "bad", score="bald", budget=1)


def test_a_disagreement_score_needs_more_than_one_member(photos):
    with pytest.raises(RankError, match="measures disagreement"):
        rank(Committee.build(NoisyDetector(0)), photos, score="bald", budget=1)
    assert len(rank(Committee.build(NoisyDetector(0)), photos, score="entropy", budget=2).photos) == 2


def test_output_files_exist_and_nothing_temporary_is_left(committee, photos, tmp_path):
    out = tmp_path / "new" / "out"
    result = rank(committee, photos, score="bald", budget=3, out_dir=out)
    names = {RANKING_CSV, RANKING_JSON, CONTACT_SHEET, LABELSTUDIO_TASKS, LABELSTUDIO_CONFIG}
    assert {p.name for p in out.iterdir()} == names
    assert {p.name for p in result.files} == names
    table = json.loads((out / RANKING_JSON).read_text())
    assert [p["photo"] for p in table["photos"]] == [p.id for p in result.photos]
    assert table["members"] == [m.name for m in committee.members]
    lines = (out / RANKING_CSV).read_text().splitlines()
    assert lines[0].startswith("rank,photo,score,entropy,bald,") and len(lines) == 4
    sheet = (out / CONTACT_SHEET).read_text()
    assert sheet.count("data:image/jpeg;base64,") == 3
    assert "http://" not in sheet and "https://" not in sheet and 'src="/' not in sheet
    for member in committee.members:
        assert member.name in sheet


def test_an_out_dir_that_is_a_file_or_a_bad_class_counts_dataset_fail_before_ranking(committee, photos, tmp_path):
    (tmp_path / "batch.txt").write_text("kept")
    for out in (tmp_path / "batch.txt", tmp_path / "batch.txt" / "sub"):
        with pytest.raises(RankError, match=r"batch\.txt is a file, not a folder"):
            rank(_unusable(committee), photos, score="bald", budget=2, out_dir=out)
    assert (tmp_path / "batch.txt").read_text() == "kept"
    with pytest.raises(Exception, match="dataset directory not found"):
        rank(_unusable(committee), photos, score="bald", budget=2, class_counts=tmp_path / "no-dataset")


def test_a_failed_write_keeps_the_previous_batch_and_says_why(committee, photos, tmp_path, monkeypatch):
    import os

    out = tmp_path / "out"
    rank(committee, photos, score="bald", budget=2, out_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    replace = os.replace

    def disk_full(src, dst):
        if str(dst).endswith(LABELSTUDIO_TASKS):
            raise OSError(28, "No space left on device")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(RankError, match="could not write the batch's files.*No space left"):
        rank(committee, photos, score="bald", budget=2, out_dir=out)
    assert {p.name for p in out.iterdir()} == set(before)  # no temporary file left behind


def _unusable(committee: Committee) -> Committee:
    """The committee, made to fail if it is asked to predict: errors must come before the long pass."""

    class Refuse:
        def __getattr__(self, name):
            if name in ("predict", "embed"):
                raise AssertionError("ranking started before the options were checked")
            return getattr(committee, name)

    return Refuse()  # type: ignore[return-value]


@pytest.mark.parametrize("name", ["a%20b.jpg", "50% off & more #1.jpg", "chambre été?.jpg"])
def test_labelstudio_urls_are_percent_encoded_and_read_back_to_the_file(name, committee, tmp_path):
    folder = tmp_path / "rooms"
    folder.mkdir()
    make_image((96, 64), seed=1).save(folder / name, "JPEG")
    for prefix in ("/data/local-files/?d=rooms/", "https://photos.example/rooms/"):
        rank(committee, folder, score="bald", budget=1, out_dir=tmp_path / "out", image_prefix=prefix)
        [task] = json.loads((tmp_path / "out" / LABELSTUDIO_TASKS).read_text())
        assert not {" ", "#", "&"} & set(task["data"]["image"][len(prefix):])
        assert labelstudio.locate_image(task["data"]["image"], tmp_path, tmp_path) == (f"rooms/{name}", folder / name)


def test_labelstudio_tasks_follow_the_import_format_and_read_back(committee, photos, tmp_path):
    out = tmp_path / "out"
    result = rank(committee, photos, score="bald", budget=6, out_dir=out)
    tasks = json.loads((out / LABELSTUDIO_TASKS).read_text())
    config = ElementTree.fromstring((out / LABELSTUDIO_CONFIG).read_text())
    image_tag = config.find("Image")
    rect = config.find("RectangleLabels")
    assert image_tag is not None and image_tag.get("name") == "image" and image_tag.get("value") == "$image"
    assert rect is not None and rect.get("name") == "label" and rect.get("toName") == "image"
    labels = {label.get("value") for label in rect.findall("Label")}
    assert labels == {a.name for a in tiny_taxonomy()}

    assert isinstance(tasks, list) and len(tasks) == 6
    boxes_seen = 0
    for task, photo in zip(tasks, result.photos, strict=True):
        assert task["data"]["image"] == photo.id
        [prediction] = task["predictions"]
        assert isinstance(prediction["model_version"], str) and 0 <= prediction["score"] <= 1
        assert len(prediction["result"]) == len(photo.consensus)
        for region in prediction["result"]:
            assert (region["from_name"], region["to_name"], region["type"]) == (
                "label",
                "image",
                "rectanglelabels",
            )
            assert (region["original_width"], region["original_height"]) == (photo.width, photo.height)
            assert region["image_rotation"] == 0 and 0 <= region["score"] <= 1
            value = region["value"]
            assert value["rotation"] == 0 and len(value["rectanglelabels"]) == 1
            assert value["rectanglelabels"][0] in labels
            for key in ("x", "y", "width", "height"):
                assert 0 <= value[key] <= 100
            assert value["x"] + value["width"] <= 100 + 1e-6 and value["y"] + value["height"] <= 100 + 1e-6
            boxes_seen += 1
    assert boxes_seen > 0

    # The reader takes annotations, not predictions: as annotations, the same boxes come back.
    as_annotations = [
        {"data": t["data"], "annotations": [{"result": t["predictions"][0]["result"]}]} for t in tasks
    ]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(as_annotations))
    dataset = labelstudio.read(export, images_dir=photos, taxonomy=tiny_taxonomy())
    back = {im.file_name: dets for im, dets in dataset}
    for photo in result.photos:
        dets = back[photo.id]
        expected = np.array([b.xyxy for b in photo.consensus]).reshape(-1, 4)
        assert np.allclose(dets.xyxy, expected, atol=1e-3)
        assert list(dets.data["class_name"]) == [b.label for b in photo.consensus]


def test_catalog_mode_ranks_a_host_rejected_photo_first(tmp_path):
    from roomscan.catalog import store
    from roomscan.detection.image import load_image
    from roomscan.services import Services
    from roomscan.settings import Settings

    taxonomy = tiny_taxonomy()
    model = FixedDetector(0)
    services = Services.open(Settings(home=tmp_path / "home"))
    try:
        services.use(model)  # it reports an oven in every photo
        with services.sessions() as session, session.begin():
            listing = store.create_listing(session, "Flat", taxonomy=taxonomy, model_id=services.model_id)
            other = store.create_listing(session, "House", taxonomy=taxonomy, model_id=services.model_id)
            ids = []
            for i, target in enumerate([other, other, listing]):
                buf = io.BytesIO()
                make_image((64, 48), seed=10 + i).save(buf, "JPEG")
                added = store.add_photo(
                    session,
                    services.photos,
                    target,
                    load_image(buf.getvalue()),
                    model_id=services.model_id,
                    taxonomy=taxonomy,
                )
                ids.append(added.photo_id)
        services.worker.run_until_idle()
        with services.sessions() as session, session.begin():
            store.set_decision(
                session,
                store.get_listing(session, listing.id),
                "oven",
                "rejected",
                taxonomy=taxonomy,
                model_id=services.model_id,
            )

        committee = Committee.build([FixedDetector(0), FixedDetector(1)])
        result = rank(committee, services, score="entropy", budget=2, out_dir=tmp_path / "out")
        first = result.photos[0]
        assert first.id == ids[2] and first.known_error
        assert "host rejected oven on listing" in first.why and "known model error" in first.why
        assert not result.photos[1].known_error
        tasks = json.loads((tmp_path / "out" / LABELSTUDIO_TASKS).read_text())
        assert tasks[0]["data"]["image"] == f"/api/v1/photos/{ids[2]}/image"
    finally:
        services.close()


def test_an_empty_catalog_is_a_clear_error(tmp_path):
    from roomscan.services import Services
    from roomscan.settings import Settings

    services = Services.open(Settings(home=tmp_path / "home"))
    try:
        with pytest.raises(RankError, match="catalog has no photos"):
            rank(Committee.build([FixedDetector(0), FixedDetector(1)]), services, score="bald", budget=1)
    finally:
        services.close()


def test_class_counts_from_a_dataset_count_its_labelled_boxes(committee, photos, tmp_path):
    from roomscan.data.dataset import DetectionDataset, ImageRecord
    from roomscan.detection.core import make_detections
    from roomscan.taxonomy import Amenity, Taxonomy

    labelled = Taxonomy(
        (Amenity("bed", "Bed"), Amenity("sink", "Sink"), Amenity("stairs", "Stairs")), source="x"
    )
    src = tmp_path / "src"
    src.mkdir()
    make_image((40, 30), seed=7).save(src / "a.jpg", "JPEG")
    boxes = make_detections(
        [[0, 0, 9, 9], [10, 10, 20, 20], [1, 1, 5, 5], [2, 2, 8, 8]],
        [1] * 4,
        [0, 0, 1, 2],
        ["bed", "bed", "sink", "stairs"],
    )
    DetectionDataset(src, labelled, [ImageRecord(1, "a.jpg", 40, 30)], {1: boxes}).save(tmp_path / "labelled")
    with pytest.warns(UserWarning, match=r"not counted: stairs \(1\)"):
        result = rank(committee, photos, score="bald", budget=2, class_counts=tmp_path / "labelled")
    assert result.class_counts == {"bed": 2, "oven": 0, "sink": 1}
