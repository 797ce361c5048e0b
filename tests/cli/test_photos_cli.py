"""``roomscan photos duplicates`` and ``photos analyse``, the photo insights of ``listings show``, and
``search --room``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from _models import room_scene
from cli_helpers import run
from PIL import Image


def save_jpeg(image: Image.Image, path: Path, quality: int = 92) -> Path:
    image.save(path, "JPEG", quality=quality)
    return path


@pytest.fixture
def three_listings(capsys, tmp_path, env, tiny_owlv2_dir, taxonomy_file):  # type: ignore[no-untyped-def]
    """Listing 1 with an original photo, 2 with a near-copy of it (75% size, JPEG 60), 3 with another photo;
    detected by the tiny OWLv2. Returns the detector options."""
    args = ["--model", str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file)]
    original = room_scene(5)
    files = [
        save_jpeg(original, tmp_path / "living.jpg"),
        save_jpeg(original.resize((240, 180)), tmp_path / "copy.jpg", 60),
        save_jpeg(room_scene(6), tmp_path / "other.jpg"),
    ]
    for i, path in enumerate(files, start=1):
        assert run(capsys, "listings", "add", f"Flat {i}")[0] == 0
        code, _, err = run(capsys, "listings", "photos", "add", str(i), str(path), *args)
        assert code == 0, err
    return args


def _show(capsys, taxonomy_file, listing: str) -> dict:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "listings", "show", listing, "--json", "--taxonomy", str(taxonomy_file))
    assert code == 0, err
    return json.loads(out)


def test_duplicates_lists_the_near_copy_across_listings(capsys, three_listings) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "photos", "duplicates", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert [c["listing_ids"] for c in found["clusters"]] == [[1, 2]]
    assert found["unanalysed_photos"] == 0
    code, out, err = run(capsys, "photos", "duplicates")
    assert code == 0 and "Flat 1" in out and "Flat 2" in out and "Flat 3" not in out
    assert "1 picture(s) on more than one listing" in err


def test_duplicates_refuses_a_distance_out_of_range(capsys, env) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "photos", "duplicates", "--max-distance", "40")
    assert code == 2 and "--max-distance" in err


def test_show_gives_each_photo_room_quality_duplicates_and_the_tour(capsys, three_listings, taxonomy_file) -> None:  # type: ignore[no-untyped-def]
    first, third = _show(capsys, taxonomy_file, "1"), _show(capsys, taxonomy_file, "3")
    [photo] = first["photos"]
    assert [(d["listing_id"], d["listing_title"]) for d in photo["duplicates"]] == [(2, "Flat 2")]
    assert photo["room"]["best"] in photo["room"]["scores"]
    assert 0 <= photo["quality"]["score"] <= 100
    assert {i["code"] for i in photo["quality"]["issues"]} >= {"low_resolution"}  # 320x240
    assert first["tour"]["cover"] == photo["photo_id"] and first["left_out_of_tour"] == []
    assert third["photos"][0]["duplicates"] == []
    code, out, _ = run(capsys, "listings", "show", "1", "--taxonomy", str(taxonomy_file))
    assert code == 0
    assert "suggested cover: living.jpg" in out
    assert "living.jpg" in out.split("also on listings")[1] and "Flat 2" not in out


def test_search_by_room_finds_the_listings_whose_photos_show_it(capsys, three_listings, taxonomy_file) -> None:  # type: ignore[no-untyped-def]
    rooms = {str(i): _show(capsys, taxonomy_file, str(i))["photos"][0]["room"]["best"] for i in (1, 2, 3)}
    room = rooms["1"]
    code, out, err = run(capsys, "search", "--room", room, "--json")
    assert code == 0, err
    hits = json.loads(out)["hits"]
    assert [h["listing_id"] for h in hits] == [int(i) for i, r in rooms.items() if r == room]
    assert all(h["room"] == room and 0 < h["room_score"] <= 1 for h in hits)


def test_search_names_the_room_types_when_the_room_is_unknown(capsys, env) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "search", "--room", "ballroom")
    assert code == 2 and "unknown room type 'ballroom'" in err and "bathroom" in err


def test_analyse_fills_photos_stored_before_and_resumes(capsys, tmp_path, env, tiny_owlv2_dir, taxonomy_file) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import delete

    from roomscan.catalog.db import open_catalog
    from roomscan.catalog.models import PhotoInsight
    from roomscan.settings import Settings

    assert run(capsys, "listings", "add", "Flat")[0] == 0
    paths = [str(save_jpeg(room_scene(20 + i), tmp_path / f"{i}.jpg")) for i in range(3)]
    code, _, err = run(capsys, "listings", "photos", "add", "1", *paths, "--no-process", "--model",
                       str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file))
    assert code == 0, err
    engine, Session = open_catalog(Settings.from_env().resolved_database_url)
    with Session() as session, session.begin():
        session.execute(delete(PhotoInsight))  # as if stored before 0009
    engine.dispose()
    code, _, err = run(capsys, "photos", "duplicates")
    assert "3 photo(s) have no hashes yet" in err
    code, _, err = run(capsys, "photos", "analyse", "--limit", "2")
    assert code == 0 and "analysed 2 photo(s), 0 failed; 1 still to analyse" in err
    code, _, err = run(capsys, "photos", "analyse")
    assert code == 0 and "analysed 1 photo(s), 0 failed" in err and "still" not in err
    code, _, err = run(capsys, "photos", "analyse")
    assert code == 0 and "nothing to do" in err


def test_analyse_names_a_photo_whose_file_is_gone(capsys, tmp_path, env, tiny_owlv2_dir, taxonomy_file) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import delete, select

    from roomscan.catalog.db import open_catalog
    from roomscan.catalog.models import Photo, PhotoInsight
    from roomscan.catalog.photos import open_photo_store
    from roomscan.settings import Settings

    assert run(capsys, "listings", "add", "Flat")[0] == 0
    buf = io.BytesIO()
    room_scene(30).save(buf, "JPEG")
    (tmp_path / "a.jpg").write_bytes(buf.getvalue())
    assert run(capsys, "listings", "photos", "add", "1", str(tmp_path / "a.jpg"), "--no-process", "--model",
               str(tiny_owlv2_dir), "--taxonomy", str(taxonomy_file))[0] == 0
    settings = Settings.from_env()
    engine, Session = open_catalog(settings.resolved_database_url)
    with Session() as session, session.begin():
        session.execute(delete(PhotoInsight))
        sha = session.scalar(select(Photo.sha256))
    engine.dispose()
    open_photo_store(settings.resolved_photo_store).delete(sha)
    code, _, err = run(capsys, "photos", "analyse")
    assert code == 1 and "0 photo(s), 1 failed" in err and sha in err
