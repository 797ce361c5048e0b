"""``roomscan listings`` beyond the basics: edit, delete, photos remove, host decisions and their label export,
the worker's summary, and names/synonyms resolved the same way as the API."""

from __future__ import annotations

import json

import pytest
from cli_helpers import photo, run


@pytest.fixture
def detected(capsys, tmp_path, tiny_owlv2_dir, taxonomy_file, env):
    """Listing 1 with two detected photos; returns (args for the detector, a seen amenity)."""
    args = ["--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file)]
    run(capsys, "listings", "add", "Loft", "--taxonomy", str(taxonomy_file))
    photo(tmp_path / "kitchen.jpg", 11)
    photo(tmp_path / "bath.jpg", 12)
    code, _, err = run(capsys, "listings", "photos", "add", "1", str(tmp_path / "kitchen.jpg"), str(tmp_path / "bath.jpg"), *args)
    assert code == 0 and "2 photo(s) done" in err
    shown = _show(capsys, taxonomy_file)
    seen = [a for a in shown["amenities"] if a["status"] == "discovered"]
    assert seen
    return args, seen[0]


def _show(capsys, taxonomy_file, listing="1") -> dict:
    code, out, err = run(capsys, "listings", "show", listing, "--json", "--taxonomy", str(taxonomy_file))
    assert code == 0, err
    return json.loads(out)


def _hits(capsys, taxonomy_file, slug: str) -> list[int]:
    code, out, err = run(capsys, "search", "--amenity", slug, "--json", "--taxonomy", str(taxonomy_file))
    assert code == 0, err
    return [h["listing_id"] for h in json.loads(out)["hits"]]


def test_show_names_evidence_photos_by_file_name(capsys, detected, taxonomy_file):
    _, amenity = detected
    assert {e["file"] for e in amenity["evidence"]} <= {"kitchen.jpg", "bath.jpg"}
    code, out, _ = run(capsys, "listings", "show", "1", "--taxonomy", str(taxonomy_file))
    assert code == 0 and ("kitchen.jpg" in out or "bath.jpg" in out)


def test_adding_a_photo_the_listing_has_says_so(capsys, detected, tmp_path):
    args, _ = detected
    code, _, err = run(capsys, "listings", "photos", "add", "1", str(tmp_path / "kitchen.jpg"), *args)
    assert code == 0 and "already has this photo" in err and "0 photo(s) added" in err and "1 already there" in err


def test_edit_title_and_claims(capsys, detected, taxonomy_file):
    code, out, _ = run(capsys, "listings", "edit", "1", "--title", "Sunny loft", "--claim", "Bed", "--claim", "oven",
                       "--taxonomy", str(taxonomy_file))
    assert code == 0 and "Sunny loft" in out and "bed, oven" in out
    shown = _show(capsys, taxonomy_file)
    assert shown["title"] == "Sunny loft"
    assert {a["slug"] for a in shown["amenities"] if a["status"] in ("confirmed", "unverified")} == {"bed", "oven"}
    code, _, err = run(capsys, "listings", "edit", "1", "--claim", "sauna", "--taxonomy", str(taxonomy_file))
    assert code == 2 and "unknown amenity 'sauna'" in err
    assert _show(capsys, taxonomy_file)["title"] == "Sunny loft"
    code, _, err = run(capsys, "listings", "edit", "1")
    assert code == 2 and "nothing to change" in err


def test_decide_reject_hides_from_search_and_export_keeps_confirmed_boxes(capsys, detected, taxonomy_file, tmp_path):
    _, amenity = detected
    slug = amenity["slug"]
    assert _hits(capsys, taxonomy_file, slug) == [1]
    code, out, _ = run(capsys, "listings", "decide", "1", slug, "rejected", "--taxonomy", str(taxonomy_file))
    assert code == 0 and "rejected" in out
    assert _hits(capsys, taxonomy_file, slug) == []
    row = next(a for a in _show(capsys, taxonomy_file)["amenities"] if a["slug"] == slug)
    assert row["decision"] == "rejected" and row["evidence"]  # the model's boxes stay

    code, out, _ = run(capsys, "listings", "decide", "1", slug, "confirmed", "--taxonomy", str(taxonomy_file))
    assert code == 0 and _hits(capsys, taxonomy_file, slug) == [1]
    code, _, err = run(capsys, "listings", "export-labels", str(tmp_path / "labels"), "--taxonomy", str(taxonomy_file))
    assert code == 0 and "exported 1 decision(s)" in err, err
    from roomscan.data.dataset import DetectionDataset

    ds = DetectionDataset.load(tmp_path / "labels")
    # Every box of the confirmed amenity (the roll-up's evidence shows the best 10), and nothing else.
    assert len(ds) == 2 and ds.num_boxes >= len(row["evidence"])
    assert all(set(dets.data["class_name"]) <= {slug} for _, dets in ds)
    lines = [json.loads(x) for x in (tmp_path / "labels" / "decisions.jsonl").read_text().splitlines()]
    assert [(x["listing_id"], x["amenity"], x["decision"]) for x in lines] == [(1, slug, "confirmed")]
    assert len(lines[0]["boxes"]) == ds.num_boxes
    # A second export into the same folder is refused, not merged.
    code, _, err = run(capsys, "listings", "export-labels", str(tmp_path / "labels"), "--taxonomy", str(taxonomy_file))
    assert code == 2 and "not empty" in err

    code, _, err = run(capsys, "listings", "decide", "1", slug, "maybe", "--taxonomy", str(taxonomy_file))
    assert code == 2 and "confirmed, rejected or clear" in err


def test_remove_a_photo_by_file_name_then_delete_the_listing(capsys, detected, taxonomy_file, env):
    code, _, err = run(capsys, "listings", "photos", "remove", "1", "kitchen.jpg", "--taxonomy", str(taxonomy_file))
    assert code == 0 and "removed photo" in err
    assert _show(capsys, taxonomy_file)["processing"]["total"] == 1
    code, _, err = run(capsys, "listings", "photos", "remove", "1", "nope.jpg", "--taxonomy", str(taxonomy_file))
    assert code == 2 and "bath.jpg" in err  # names what it has
    files = [p for p in (env / "photos").rglob("*") if p.is_file()]
    assert len(files) == 1  # the removed photo's file is gone
    code, _, err = run(capsys, "listings", "delete", "1", "--yes")
    assert code == 0 and "deleted listing 1" in err
    assert not [p for p in (env / "photos").rglob("*") if p.is_file()]
    code, _, err = run(capsys, "listings", "show", "1")
    assert code == 2 and "does not exist" in err


def test_worker_reports_what_it_did(capsys, detected):
    args, _ = detected
    code, _, err = run(capsys, "worker", *args)
    assert code == 0 and "nothing to do" in err


def test_claims_resolve_names_and_synonyms_like_the_api(capsys, env):
    code, out, _ = run(capsys, "listings", "add", "Spa", "--claim", "hot tub", "--claim", "Swimming pool")
    assert code == 0
    code, out, _ = run(capsys, "listings", "list")
    assert "jacuzzi, swimming-pool" in out


def test_detect_says_what_it_skipped_and_recurses(capsys, tmp_path, tiny_owlv2_dir, taxonomy_file, env):
    root = tmp_path / "shoot"
    (root / "upstairs").mkdir(parents=True)
    photo(root / "a.jpg", 1)
    photo(root / "upstairs" / "b.jpg", 2)
    (root / "notes.txt").write_text("not a photo")
    args = ["--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file), "--json"]
    code, out, err = run(capsys, "detect", str(root), *args)
    assert code == 0
    assert [r["image"] for r in json.loads(out)] == [str(root / "a.jpg")]
    text = " ".join(err.split())
    assert "1 file(s) that are not photos (.txt)" in text and "1 sub-folder(s); add --recursive" in text
    code, out, err = run(capsys, "detect", str(root), "--recursive", *args)
    assert code == 0
    assert sorted(r["image"] for r in json.loads(out)) == [str(root / "a.jpg"), str(root / "upstairs" / "b.jpg")]


def test_unpublish_takes_a_listing_out_of_search_and_publish_puts_it_back(capsys, detected, taxonomy_file):
    _, amenity = detected
    slug = amenity["slug"]
    code, out, _ = run(capsys, "listings", "edit", "1", "--unpublish", "--taxonomy", str(taxonomy_file))
    assert code == 0 and "unpublished" in out
    assert _hits(capsys, taxonomy_file, slug) == []
    assert _show(capsys, taxonomy_file)["published"] is False
    code, out, _ = run(capsys, "listings", "list")
    assert code == 0 and "no" in out.split("Loft", 1)[1].splitlines()[0]
    code, _, _ = run(capsys, "listings", "edit", "1", "--publish", "--taxonomy", str(taxonomy_file))
    assert code == 0 and _hits(capsys, taxonomy_file, slug) == [1]
    code, out, _ = run(capsys, "listings", "add", "Draft", "--unpublished")
    assert code == 0 and "(unpublished)" in out
    assert _show(capsys, taxonomy_file, "2")["published"] is False
