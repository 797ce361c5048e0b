"""``roomscan evaluate-rooms``: room-type accuracy on a labelled folder, with tiny OWLv2 / RT-DETR models.

Random weights type rooms at chance, so most tests check that the report is consistent with the files; one test
arranges the room prompts' embeddings so that the right answer is known, and checks the command finds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _models import make_image, tiny_taxonomy
from cli_helpers import run

pytest.importorskip("torch")


def _photos(folder: Path, n: int, *, seed: int = 0, suffix: str = ".jpg") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i}{suffix}"
        make_image((96, 64) if i % 2 else (64, 80), seed=seed + i).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def owl(tiny_owlv2_dir, taxonomy_file, env):  # type: ignore[no-untyped-def]
    return ["--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file), "--device", "cpu"]


@pytest.fixture
def labelled(tmp_path) -> Path:  # type: ignore[no-untyped-def]
    """3 bathroom and 2 kitchen photos in room folders, 1 exterior photo listed in labels.csv."""
    data = tmp_path / "data"
    _photos(data / "bathroom", 3, seed=0)
    _photos(data / "kitchen", 2, seed=10)
    _photos(data / "listing-7", 1, seed=20, suffix=".png")
    (data / "labels.csv").write_text("file,room\nlisting-7/0.png,exterior\n")
    return data


def _json(capsys, *args: str) -> tuple[int, dict, str]:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "evaluate-rooms", *args, "--json")
    return code, (json.loads(out) if out.strip() else {}), err


def _assert_consistent(doc: dict) -> None:
    """Counts add up: per-room support and predictions, the confusion matrix, accuracy, precision, recall."""
    confusion = np.asarray(doc["confusion"])
    assert confusion.shape == (len(doc["rooms"]),) * 2
    assert confusion.sum() == doc["count"] == len(doc["photos"])
    assert [r["room"] for r in doc["per_room"]] == doc["rooms"]
    for i, r in enumerate(doc["per_room"]):
        assert r["support"] == confusion[i].sum() == sum(p["room"] == r["room"] for p in doc["photos"])
        assert r["predicted"] == confusion[:, i].sum() == sum(p["predicted"] == r["room"] for p in doc["photos"])
        hits = confusion[i, i]
        assert r["recall"] == (None if not r["support"] else pytest.approx(hits / r["support"], abs=1e-4))
        assert r["precision"] == (None if not r["predicted"] else pytest.approx(hits / r["predicted"], abs=1e-4))
    right = sum(p["room"] == p["predicted"] for p in doc["photos"])
    assert doc["accuracy"] == pytest.approx(right / doc["count"], abs=1e-4)
    assert np.trace(confusion) == right


def test_report_counts_every_labelled_photo_and_adds_up(capsys, owl, labelled):
    code, doc, err = _json(capsys, "--data", str(labelled), *owl)
    assert code == 0, err
    assert doc["count"] == 6 and doc["skipped"] == []
    labels = {Path(p["file"]).relative_to(labelled).as_posix(): p["room"] for p in doc["photos"]}
    assert labels == {
        **{f"bathroom/{i}.jpg": "bathroom" for i in range(3)},
        **{f"kitchen/{i}.jpg": "kitchen" for i in range(2)},
        "listing-7/0.png": "exterior",
    }
    support = {r["room"]: r["support"] for r in doc["per_room"]}
    assert support["bathroom"] == 3 and support["kitchen"] == 2 and support["exterior"] == 1
    assert sum(support.values()) == 6
    _assert_consistent(doc)
    assert doc["source"] == "embedding+amenities" and doc["room_types"] == "default"
    assert "real" in doc["note"] and "weights" in doc["note"]


def test_table_shows_accuracy_per_room_confusion_and_the_caveat(capsys, owl, labelled):
    code, out, err = run(capsys, "evaluate-rooms", "--data", str(labelled), *owl)
    assert code == 0, err
    assert "room-type accuracy" in out and "on 6 photo(s)" in out
    assert "per room" in out and "confusion" in out
    per_room = out.split("per room", 1)[1].split("confusion", 1)[0]
    rows = {line.split()[0]: line.split()[1:] for line in per_room.splitlines() if line.strip()}
    # precision, recall, support, predicted
    assert rows["bathroom"][2] == "3" and rows["kitchen"][2] == "2" and rows["exterior"][2] == "1"
    assert rows["bedroom"][2] == "0" and rows["bedroom"][1] == "-"  # never labelled: no recall
    assert "real listing photos and the real model weights" in " ".join(out.split())


def test_amenities_only_scores_each_photo_from_its_detections_alone(capsys, owl, labelled, tiny_owlv2_dir):
    from roomscan.backends.owlv2 import Owlv2Detector
    from roomscan.detection.image import load_image
    from roomscan.insights.rooms import photo_room_scores

    code, doc, err = _json(capsys, "--data", str(labelled), *owl, "--amenities-only")
    assert code == 0, err
    assert doc["source"] == "amenities"
    _assert_consistent(doc)
    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=tiny_taxonomy(), device="cpu")
    for photo in doc["photos"]:
        dets = detector.predict([load_image(photo["file"]).image])[0]
        assert photo["predicted"] == photo_room_scores(dets, taxonomy=detector.taxonomy).best


def test_backend_without_text_tower_uses_amenities_and_says_so(capsys, tiny_rtdetr_dir, labelled, env):
    code, doc, err = _json(capsys, "--data", str(labelled), "--model", str(tiny_rtdetr_dir), "--device", "cpu")
    assert code == 0, err
    assert doc["source"] == "amenities" and "no text tower" in err
    _assert_consistent(doc)


def test_limit_takes_photos_in_turn_from_each_room_and_out_writes_the_report(capsys, owl, labelled, tmp_path):
    out = tmp_path / "reports" / "rooms.json"
    code, doc, err = _json(capsys, "--data", str(labelled), *owl, "--limit", "3", "--out", str(out))
    assert code == 0, err
    assert sorted(p["room"] for p in doc["photos"]) == ["bathroom", "exterior", "kitchen"]
    assert json.loads(out.read_text()) == doc


def test_unreadable_photos_are_skipped_counted_and_named(capsys, owl, labelled):
    (labelled / "kitchen" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (labelled / "bathroom" / "empty.png").write_bytes(b"")
    code, doc, err = _json(capsys, "--data", str(labelled), *owl)
    assert code == 1  # a report, and a status that tells scripts something was left out
    assert doc["count"] == 6
    skipped = {Path(s["file"]).name: s for s in doc["skipped"]}
    assert set(skipped) == {"broken.jpg", "empty.png"}
    assert skipped["broken.jpg"]["room"] == "kitchen" and skipped["broken.jpg"]["error"]
    _assert_consistent(doc)
    code, out, _ = run(capsys, "evaluate-rooms", "--data", str(labelled), *owl)
    assert code == 1 and "2 unreadable photo(s) skipped" in out and "broken.jpg" in out


def test_no_readable_photo_at_all_is_an_error(capsys, owl, tmp_path):
    (tmp_path / "d" / "bedroom").mkdir(parents=True)
    (tmp_path / "d" / "bedroom" / "a.jpg").write_bytes(b"garbage")
    code, out, err = run(capsys, "evaluate-rooms", "--data", str(tmp_path / "d"), *owl)
    assert code == 2 and "none of the 1 photo(s) could be read" in err


def _labels(tmp_path: Path, text: str, photos: int = 1) -> Path:
    data = tmp_path / "csv"
    _photos(data / "a", photos)
    (data / "labels.csv").write_text(text, encoding="utf-8")
    return data


BAD_LABELS = [
    ("a/0.jpg,bedroom\n", "line 1: expected the header 'file,room'"),
    ("file,room\na/0.jpg,bedroom,extra\n", "line 2: expected two values"),
    ("file,room\na/0.jpg,\n", "line 2: expected two values"),
    ("file,room\n\na/0.jpg,attic\n", "line 3: 'attic' is not a room type; use one of bedroom, bathroom"),
    ("file,room\na/9.jpg,bedroom\n", "line 2: no such photo 'a/9.jpg'"),
    ("file,room\na/0.jpg,bedroom\na/0.jpg,kitchen\n", "line 3: 'a/0.jpg' is labelled 'kitchen' here and 'bedroom' on line 2"),
    ("", "is empty: write the header 'file,room'"),
    ("file,room\n\"a/0.jpg,bedroom\n", "not valid CSV"),
]


@pytest.mark.parametrize(("text", "message"), BAD_LABELS, ids=[m.split(":")[0] for _, m in BAD_LABELS])
def test_malformed_labels_csv_names_the_line(capsys, owl, tmp_path, text, message):
    data = _labels(tmp_path, text)
    code, out, err = run(capsys, "evaluate-rooms", "--data", str(data), *owl)
    assert code == 2, err
    assert message in " ".join(err.split()), err
    assert out == ""


def test_labels_csv_not_utf8(capsys, owl, tmp_path):
    data = _labels(tmp_path, "")
    (data / "labels.csv").write_bytes("file,room\nsalle-à-manger.jpg,other\n".encode("latin-1"))
    code, _, err = run(capsys, "evaluate-rooms", "--data", str(data), *owl)
    assert code == 2 and "not UTF-8" in err


def test_bad_folders(capsys, owl, tmp_path):
    def error(data: Path) -> str:
        code, out, err = run(capsys, "evaluate-rooms", "--data", str(data), *owl)
        assert code == 2 and out == "", err
        return " ".join(err.split())

    assert "does not exist" in error(tmp_path / "nowhere")
    (tmp_path / "file.jpg").write_bytes(b"x")
    assert "is a file, not a folder" in error(tmp_path / "file.jpg")
    (tmp_path / "empty").mkdir()
    assert "has no labelled photos" in error(tmp_path / "empty")
    _photos(tmp_path / "rooms" / "bathroom", 1)
    _photos(tmp_path / "rooms" / "Bed room", 1)
    message = error(tmp_path / "rooms")
    assert "'Bed room' are not room types and labels.csv labels none" in message and "bedroom, bathroom, kitchen" in message
    # A photo in a room folder that labels.csv labels otherwise.
    _photos(tmp_path / "both" / "bathroom", 1)
    (tmp_path / "both" / "labels.csv").write_text("file,room\nbathroom/0.jpg,kitchen\n")
    assert "labelled 'kitchen' but sits in the bathroom/ folder" in error(tmp_path / "both")


def test_bad_room_types_file_is_refused(capsys, owl, labelled, tmp_path):
    bad = tmp_path / "rooms.yaml"
    bad.write_text("rooms: [{name: Attic}]\n")
    code, _, err = run(capsys, "evaluate-rooms", "--data", str(labelled), *owl, "--room-types", str(bad))
    assert code == 2 and "needs at least one prompt" in err


ARRANGED_ROOMS = ["bedroom", "bathroom", "kitchen", "other"]


@pytest.mark.parametrize("shift", [0, 1])
def test_accuracy_is_one_when_each_rooms_prompt_embedding_points_at_its_photos(
    capsys, owl, tmp_path, tiny_owlv2_dir, monkeypatch, shift
):
    """The known answer: one photo per room; each room's prompt embeds to the dual vector of its photo's embedding
    (cosine > 0 with that photo, exactly 0 with every other photo), so zero-shot typing is right on every photo:
    accuracy 1.0. Giving each room the next room's vector (shift 1) makes every photo wrong: accuracy 0.0."""
    from roomscan.backends.owlv2 import Owlv2Detector
    from roomscan.detection.image import load_image
    from roomscan.insights.rooms import DEFAULT_TEMPERATURE, FALLBACK_BIAS

    data = tmp_path / "arranged"
    photos = [_photos(data / room, 1, seed=100 + 7 * i)[0] for i, room in enumerate(ARRANGED_ROOMS)]
    # Room types with one prompt each and no amenity evidence: only the embedding can tell the rooms apart.
    rooms_yaml = tmp_path / "rooms.yaml"
    rooms_yaml.write_text(
        "fallback: other\nrooms:\n"
        + "".join(f"  - {{slug: {r}, name: {r}, prompts: [prompt of {r}]}}\n" for r in ARRANGED_ROOMS)
    )
    detector = Owlv2Detector(tiny_owlv2_dir, taxonomy=tiny_taxonomy(), device="cpu")
    embeds = np.stack([detector.predict([load_image(p).image])[0].metadata["image_embedding"] for p in photos])
    embeds /= np.linalg.norm(embeds, axis=1, keepdims=True)
    dual = np.linalg.pinv(embeds).T  # embeds @ dual.T == I: dual row i is orthogonal to every other photo
    np.testing.assert_allclose(embeds @ dual.T, np.eye(len(photos)), atol=1e-4)
    dual /= np.linalg.norm(dual, axis=1, keepdims=True)
    # The construction is decisive: each photo's own cosine beats the fallback room's bias for "other".
    assert np.diag(embeds @ dual.T).min() / DEFAULT_TEMPERATURE > 2 * FALLBACK_BIAS
    vectors = {f"prompt of {r}": dual[(i + shift) % len(ARRANGED_ROOMS)] for i, r in enumerate(ARRANGED_ROOMS)}
    monkeypatch.setattr(
        Owlv2Detector, "text_embeddings", lambda self, prompts: np.stack([vectors[p] for p in prompts])
    )

    code, doc, err = _json(capsys, "--data", str(data), *owl, "--room-types", str(rooms_yaml), "--batch-size", "3")
    assert code == 0, err
    assert doc["rooms"] == ARRANGED_ROOMS and doc["count"] == 4
    _assert_consistent(doc)
    predicted = {p["room"]: p["predicted"] for p in doc["photos"]}
    if shift == 0:
        assert doc["accuracy"] == 1.0 and all(p == r for r, p in predicted.items())
    else:
        # Photo i now matches the room given its dual vector: the room before it.
        assert doc["accuracy"] == 0.0
        assert predicted == {r: ARRANGED_ROOMS[(i - 1) % 4] for i, r in enumerate(ARRANGED_ROOMS)}
