"""``roomscan active rank`` end to end on tiny real models, and its answers to bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _models import build_tiny_rtdetr, make_image
from cli_helpers import run

from roomscan.taxonomy import Amenity, Taxonomy


@pytest.fixture(scope="module")
def second_rtdetr_dir(tmp_path_factory):
    return build_tiny_rtdetr(tmp_path_factory.mktemp("rtdetr-seed1"), seed=1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    (photos / "bath").mkdir(parents=True)
    for i in range(4):
        make_image((80, 64), seed=i).save((photos / "bath" if i == 3 else photos) / f"room{i}.jpg", "JPEG")
    return photos


def test_rank_a_folder_with_an_ensemble_and_tta(
    env, capsys, tiny_rtdetr_dir, second_rtdetr_dir, folder, tmp_path
):
    out = tmp_path / "batch"
    code, stdout, stderr = run(
        capsys,
        "active",
        "rank",
        "--model",
        str(tiny_rtdetr_dir),
        "--model",
        str(second_rtdetr_dir),
        "--tta",
        "--images",
        str(folder),
        "--score",
        "bald",
        "--budget",
        "2",
        "--out",
        str(out),
        "--min-score",
        "0",
        "--diversity",
        "--device",
        "cpu",
    )
    assert code == 0, stderr
    assert "committee: 6 members: 2 models" in stderr and "pool: 4 photo(s)" in stderr
    assert "Top photos to label" in stdout and "1 " in stdout
    for name in (
        "ranking.csv",
        "ranking.json",
        "contact_sheet.html",
        "labelstudio_tasks.json",
        "labelstudio_config.xml",
    ):
        assert (out / name).is_file()
    ranking = json.loads((out / "ranking.json").read_text())
    assert len(ranking["photos"]) == 2 and len({p["photo"] for p in ranking["photos"]}) == 2
    assert len(json.loads((out / "labelstudio_tasks.json").read_text())) == 2


def test_json_output_and_a_budget_past_the_pool(env, capsys, tiny_rtdetr_dir, folder, tmp_path):
    code, stdout, stderr = run(
        capsys,
        "active",
        "rank",
        "-m",
        str(tiny_rtdetr_dir),
        "--tta",
        "--images",
        str(folder),
        "--score",
        "entropy",
        "--budget",
        "9",
        "--out",
        str(tmp_path / "o"),
        "--min-score",
        "0",
        "--json",
        "--class-balance",
    )
    assert code == 0, stderr
    assert "budget 9 exceeds the pool of 4" in stderr
    payload = json.loads(stdout)
    assert payload["short"] is True and len(payload["photos"]) == 4
    assert {Path(f).name for f in payload["files"]} >= {"ranking.csv", "labelstudio_tasks.json"}


def test_unreadable_photos_are_named_and_skipped(env, capsys, tiny_rtdetr_dir, folder, tmp_path):
    (folder / "torn.jpg").write_bytes(b"\xff\xd8\xff\xe0 torn")
    code, _, stderr = run(
        capsys,
        "active",
        "rank",
        "-m",
        str(tiny_rtdetr_dir),
        "--tta",
        "--images",
        str(folder),
        "--score",
        "bald",
        "--budget",
        "2",
        "--out",
        str(tmp_path / "o"),
        "--min-score",
        "0",
    )
    assert code == 0, stderr
    assert "skipped 1 unreadable photo(s)" in stderr and "torn.jpg" in stderr


def test_mc_dropout_on_a_model_without_dropout_exits_2(env, capsys, tiny_rtdetr_dir, folder, tmp_path):
    code, _, stderr = run(
        capsys,
        "active",
        "rank",
        "-m",
        str(tiny_rtdetr_dir),
        "--mc-dropout",
        "3",
        "--images",
        str(folder),
        "--budget",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2
    assert "error:" in stderr and "has no dropout" in stderr and "--mc-dropout" in stderr
    assert not (tmp_path / "o" / "ranking.csv").exists()


def test_members_with_different_taxonomies_exit_2(env, capsys, tiny_rtdetr_dir, folder, tmp_path):
    other = Taxonomy(
        (Amenity("bed", "Bed"), Amenity("oven", "Oven"), Amenity("bathtub", "Bathtub")), source="x"
    )
    other_dir = build_tiny_rtdetr(tmp_path / "other", other)
    code, _, stderr = run(
        capsys,
        "active",
        "rank",
        "-m",
        str(tiny_rtdetr_dir),
        "-m",
        str(other_dir),
        "--images",
        str(folder),
        "--budget",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2
    assert "must detect the same taxonomy" in stderr and "bathtub" in stderr and "sink" in stderr


def test_one_member_with_a_disagreement_score_exits_2(env, capsys, tiny_rtdetr_dir, folder, tmp_path):
    code, _, stderr = run(
        capsys,
        "active",
        "rank",
        "-m",
        str(tiny_rtdetr_dir),
        "--images",
        str(folder),
        "--score",
        "bald",
        "--budget",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "measures disagreement" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "either --images DIR or --catalog"),
        (["--catalog", "--images", "."], "either --images DIR or --catalog"),
        (["--images", ".", "--score", "vibes"], "unknown score"),
    ],
)
def test_bad_options_are_usage_errors(env, capsys, tmp_path, args, message):
    code, _, stderr = run(capsys, "active", "rank", *args, "--budget", "2", "--out", str(tmp_path / "o"))
    assert code == 2 and message in stderr


def test_an_empty_folder_exits_2_before_loading_a_model(env, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, stderr = run(
        capsys,
        "active",
        "rank",
        "-m",
        str(tmp_path / "no-such-model"),
        "--images",
        str(tmp_path / "empty"),
        "--budget",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "no image files" in stderr


def test_an_empty_catalog_exits_2(env, capsys, tmp_path):
    code, _, stderr = run(
        capsys,
        "active",
        "rank",
        "--catalog",
        "--db",
        f"sqlite:///{tmp_path / 'c.db'}",
        "-m",
        "unused",
        "--budget",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "catalog has no photos" in stderr


def test_rank_the_catalog_puts_a_host_rejected_photo_first(env, capsys, tiny_rtdetr_dir, tmp_path):
    import io

    from roomscan.backends import get_detector
    from roomscan.catalog import store
    from roomscan.detection.image import load_image
    from roomscan.services import Services
    from roomscan.settings import Settings

    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    detector = get_detector(str(tiny_rtdetr_dir), device="cpu", score_threshold=0.0)
    services = Services.open(Settings(home=env, database_url=db))
    try:
        services.use(detector)
        with services.sessions() as session, session.begin():
            listings = [
                store.create_listing(session, t, taxonomy=detector.taxonomy, model_id=services.model_id)
                for t in ("Flat", "House")
            ]
            photo_ids = []
            for i in range(4):
                buf = io.BytesIO()
                make_image((80, 64), seed=20 + i).save(buf, "JPEG")
                added = store.add_photo(
                    session,
                    services.photos,
                    listings[i // 3],
                    load_image(buf.getvalue()),
                    model_id=services.model_id,
                    taxonomy=detector.taxonomy,
                )
                photo_ids.append(added.photo_id)
        services.worker.run_until_idle()
        with services.sessions() as session, session.begin():
            house = store.get_listing(session, listings[1].id)
            seen = store.photo_detections(session, [photo_ids[3]], services.model_id)[photo_ids[3]]
            amenity = str(seen.data["class_name"][0])
            store.set_decision(
                session, house, amenity, "rejected", taxonomy=detector.taxonomy, model_id=services.model_id
            )
    finally:
        services.close()

    out = tmp_path / "batch"
    code, stdout, stderr = run(
        capsys,
        "active",
        "rank",
        "--catalog",
        "--db",
        db,
        "-m",
        str(tiny_rtdetr_dir),
        "--tta",
        "--min-score",
        "0",
        "--score",
        "bald",
        "--budget",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert code == 0, stderr
    first = json.loads(stdout)["photos"][0]
    assert first["photo"] == photo_ids[3] and first["known_error"]
    assert f"rejected {amenity} on listing {listings[1].id}" in first["why"]


def test_an_out_that_is_a_file_exits_2_before_loading_a_model(env, capsys, folder, tmp_path):
    (tmp_path / "batch.csv").write_text("kept")
    code, _, stderr = run(capsys, "active", "rank", "-m", str(tmp_path / "no-such-model"), "--images", str(folder),
                          "--budget", "2", "--out", str(tmp_path / "batch.csv"))
    assert code == 2 and "is a file, not a folder" in " ".join(stderr.split()) and "Traceback" not in stderr
    assert (tmp_path / "batch.csv").read_text() == "kept"


def test_a_file_name_that_is_not_utf8_is_ranked_and_written(env, capsys, tiny_rtdetr_dir, folder, tmp_path, monkeypatch):
    import os

    from roomscan.cli._console import console

    monkeypatch.setattr(console, "width", 400)  # the table shows whole paths

    latin1 = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")  # a name from a Windows zip
    with open(latin1, "wb") as f:
        f.write((folder / "room0.jpg").read_bytes())
    out = tmp_path / "batch"
    code, stdout, stderr = run(capsys, "active", "rank", "-m", str(tiny_rtdetr_dir), "--tta", "--images", str(folder),
                               "--score", "random", "--budget", "5", "--out", str(out), "--min-score", "0",
                               "--image-prefix", "/data/local-files/?d=rooms/", "--device", "cpu")
    assert code == 0, stderr
    tasks = json.loads((out / "labelstudio_tasks.json").read_text())
    assert "/data/local-files/?d=rooms/caf%E9.jpg" in {t["data"]["image"] for t in tasks}
    assert b"caf\xe9.jpg" in (out / "ranking.csv").read_bytes()  # the file's own bytes
    assert "\ufffd" in stdout and "\udce9" not in stdout  # a UTF-8 terminal can print the table
