"""The command line as a user runs it: real entry point for the headline command, in-process for the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import photo, run

ROOMSCAN = Path(sys.executable).with_name("roomscan")


def test_detect_json_with_a_tiny_owlv2_directory_through_the_real_entry_point(tmp_path, tiny_owlv2_dir, taxonomy_file):
    img = photo(tmp_path / "photo.jpg")
    proc = subprocess.run(
        [str(ROOMSCAN), "detect", "--model", str(tiny_owlv2_dir), str(img), "--json",
         "--taxonomy", str(taxonomy_file), "--min-score", "0"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [r["image"] for r in result] == [str(img)]
    dets = result[0]["detections"]
    assert dets, "with --min-score 0 the tiny model reports amenities"
    for d in dets:
        assert set(d) == {"label", "score", "box"}
        assert d["label"] in {"bed", "oven", "sink"} and 0 <= d["score"] <= 1
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= 96 and 0 <= y1 <= y2 <= 72


def test_detect_a_folder_skips_bad_files_and_reports_them(capsys, tmp_path, tiny_owlv2_dir, taxonomy_file, env):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo(folder / "a.jpg", 1)
    photo(folder / "b.png", 2)
    (folder / "broken.jpg").write_bytes(b"not really a jpeg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out_dir = tmp_path / "annotated"
    code, out, err = run(capsys, "detect", str(folder), "--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file),
                         "--json", "--save-annotated", str(out_dir))
    assert code == 1  # some inputs were skipped
    results = {Path(r["image"]).name: r for r in json.loads(out)}
    assert set(results) == {"a.jpg", "b.png", "broken.jpg", "empty.jpg"}
    assert "not an image" in results["broken.jpg"]["error"] and "empty" in results["empty.jpg"]["error"]
    assert "broken.jpg" in err and "empty.jpg" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.annotated.jpg", "b.annotated.jpg"]


def test_detect_missing_path(capsys, tmp_path, env):
    code, _, err = run(capsys, "detect", str(tmp_path / "nope.jpg"))
    assert code == 1 and "no such file" in err


def test_offline_without_weights_says_what_to_do(capsys, tmp_path, env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code, _, err = run(capsys, "detect", str(photo(tmp_path / "p.jpg")))
    assert code == 2
    text = " ".join(err.split())
    assert "google/owlv2-base-patch16-ensemble" in text and "roomscan models pull" in text and "--model" in text


def test_listing_workflow_add_photos_show_search(capsys, tmp_path, tiny_owlv2_dir, taxonomy_file, env):
    code, out, _ = run(capsys, "listings", "add", "Loft", "--claim", "bed", "--taxonomy", str(taxonomy_file))
    assert code == 0 and "created listing 1" in out
    photo(tmp_path / "p1.jpg", 3)
    photo(tmp_path / "p2.jpg", 4)
    args = ["--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file)]
    code, _, err = run(capsys, "listings", "photos", "add", "1", str(tmp_path / "p1.jpg"), str(tmp_path / "p2.jpg"), *args)
    assert code == 0 and "2 photo(s) added" in err and "2 photo(s) done" in err
    # Adding the same photo again changes nothing.
    code, _, err = run(capsys, "listings", "photos", "add", "1", str(tmp_path / "p1.jpg"), *args)
    assert code == 0 and "0 photo(s) added" in err

    code, out, _ = run(capsys, "listings", "show", "1", "--json", "--taxonomy", str(taxonomy_file))
    shown = json.loads(out)
    assert shown["processing"]["state"] == "complete" and shown["processing"]["done"] == 2
    seen = [a for a in shown["amenities"] if a["status"] in ("confirmed", "discovered")]
    statuses = {a["slug"]: a["status"] for a in shown["amenities"]}
    assert statuses["bed"] in ("confirmed", "unverified")
    if seen:
        code, out, _ = run(capsys, "search", "--amenity", seen[0]["slug"], "--json", "--taxonomy", str(taxonomy_file))
        assert [h["listing_id"] for h in json.loads(out)["hits"]] == [1]
    code, out, _ = run(capsys, "listings", "list")
    assert "Loft" in out


def test_a_photo_already_in_the_catalog_reaches_a_new_listings_search(capsys, tmp_path, tiny_owlv2_dir, taxonomy_file, env):
    args = ["--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file)]
    shared = photo(tmp_path / "shared.jpg", 7)
    run(capsys, "listings", "add", "A", "--taxonomy", str(taxonomy_file))
    run(capsys, "listings", "add", "B", "--taxonomy", str(taxonomy_file))
    assert run(capsys, "listings", "photos", "add", "1", str(shared), *args)[0] == 0
    # Detection of B's photo is already stored: nothing is queued, and B is searchable without processing.
    code, _, err = run(capsys, "listings", "photos", "add", "2", str(shared), "--no-process", *args)
    assert code == 0 and "1 photo(s) added" in err
    code, out, _ = run(capsys, "listings", "show", "1", "--json", "--taxonomy", str(taxonomy_file))
    seen = [a["slug"] for a in json.loads(out)["amenities"] if a["status"] in ("confirmed", "discovered")]
    assert seen, "the tiny taxonomy's thresholds make the random model report amenities"
    code, out, _ = run(capsys, "search", "--amenity", seen[0], "--json", "--taxonomy", str(taxonomy_file))
    assert sorted(h["listing_id"] for h in json.loads(out)["hits"]) == [1, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--amenity", "swiming-pool"], "did you mean swimming-pool"),
        (["search"], "at least one --amenity"),
        (["listings", "show", "42"], "listing 42 does not exist"),
        (["listings", "add", "x", "--claim", "sauna"], "unknown amenity 'sauna'"),
        (["listings", "add", "x", "--taxonomy", "/nonexistent.yaml"], "taxonomy file not found"),
    ],
)
def test_user_errors_print_one_clear_line_and_exit_2(capsys, env, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in " ".join(err.split())


def test_help_is_fast_and_does_not_load_torch():
    code = "import sys; from roomscan.cli import app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    proc = subprocess.run([str(ROOMSCAN), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for command in ("detect", "listings", "search", "serve", "models"):
        assert command in proc.stdout


def test_titles_and_messages_with_brackets_print_as_written(capsys, env):
    code, out, _ = run(capsys, "listings", "add", "Loft [/x]")
    assert code == 0
    code, out, _ = run(capsys, "listings", "list")
    assert code == 0 and "Loft [/x]" in out  # neither swallowed as markup nor a MarkupError


def test_detect_with_a_fine_tuned_model_directory_uses_its_own_taxonomy(capsys, tmp_path, env):
    from _models import build_tiny_rtdetr

    from roomscan.data.synthetic import shapes_taxonomy

    model_dir = build_tiny_rtdetr(tmp_path / "shapes-model", shapes_taxonomy())
    code, out, err = run(capsys, "detect", "--model", str(model_dir), str(photo(tmp_path / "p.jpg")), "--json",
                         "--min-score", "0")
    assert code == 0, err
    labels = {d["label"] for d in json.loads(out)[0]["detections"]}
    assert labels and labels <= {"circle", "square", "triangle"}
