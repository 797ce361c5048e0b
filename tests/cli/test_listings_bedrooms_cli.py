"""``roomscan listings add/edit --bedrooms``: the declared bedroom count, shown by ``listings show`` and checked
against the listing's photos there."""

from __future__ import annotations

import json

import pytest
from cli_helpers import photo, run


def _show(capsys, *args: str) -> dict:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "listings", "show", "1", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_add_edit_and_clear_the_bedroom_count(capsys, env) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, "listings", "add", "Two-bed flat", "--bedrooms", "2")
    assert code == 0 and "2 bedrooms" in out, err
    assert _show(capsys)["bedrooms"] == 2
    code, out, _ = run(capsys, "listings", "show", "1")
    assert code == 0 and "2 bedrooms declared" in out
    code, out, _ = run(capsys, "listings", "edit", "1", "--title", "Renamed")
    assert code == 0 and "2 bedrooms" in out and _show(capsys)["bedrooms"] == 2  # other edits leave it
    code, out, _ = run(capsys, "listings", "edit", "1", "--bedrooms", "1")
    assert code == 0 and "1 bedroom)" in out and _show(capsys)["bedrooms"] == 1
    code, out, _ = run(capsys, "listings", "edit", "1", "--clear-bedrooms")
    assert code == 0 and "bedroom" not in out and _show(capsys)["bedrooms"] is None
    code, out, _ = run(capsys, "listings", "show", "1")
    assert code == 0 and "declared" not in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "Flat", "--bedrooms", "-1"], "bedrooms must be a whole number from 0 to 100, got -1"),
        (["add", "Flat", "--bedrooms", "101"], "bedrooms must be a whole number from 0 to 100, got 101"),
        (["add", "Flat", "--bedrooms", "two"], "Invalid value for '--bedrooms'"),
        (["edit", "1", "--bedrooms", "500"], "bedrooms must be a whole number from 0 to 100, got 500"),
        (["edit", "1", "--bedrooms", "2", "--clear-bedrooms"], "--bedrooms and --clear-bedrooms contradict"),
    ],
)
def test_a_bad_count_is_refused_and_changes_nothing(capsys, env, args, says) -> None:  # type: ignore[no-untyped-def]
    assert run(capsys, "listings", "add", "Studio", "--bedrooms", "0")[0] == 0
    code, _, err = run(capsys, "listings", *args)
    assert code == 2 and says in " ".join(err.split()), err
    code, out, _ = run(capsys, "listings", "list")
    assert "Flat" not in out
    assert _show(capsys)["bedrooms"] == 0


def test_show_notes_fewer_bedroom_photos_than_declared(capsys, tmp_path, env, tiny_owlv2_dir, taxonomy_file) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from roomscan.catalog import insights
    from roomscan.catalog.db import open_catalog
    from roomscan.catalog.models import ListingPhoto, Model
    from roomscan.insights.rooms import default_room_types, scores_from_amenities
    from roomscan.settings import Settings

    tax = ["--taxonomy", str(taxonomy_file)]
    assert run(capsys, "listings", "add", "Two-bed flat", "--bedrooms", "2", *tax)[0] == 0
    files = [str(photo(tmp_path / f"{name}.jpg", seed)) for seed, name in enumerate(("bed", "bath"))]
    code, _, err = run(capsys, "listings", "photos", "add", "1", *files, "--model", str(tiny_owlv2_dir), *tax)
    assert code == 0, err
    # The tiny model's room guesses are random: make one photo a bedroom and the other a bathroom.
    rooms = default_room_types()
    engine, Session = open_catalog(Settings.from_env().resolved_database_url)
    with Session() as session, session.begin():
        model_id = session.scalar(select(Model.id))
        by_name = dict(session.execute(select(ListingPhoto.filename, ListingPhoto.photo_id)).tuples().all())
        insights.save_room_scores(session, by_name["bed.jpg"], model_id,
                                  scores_from_amenities([("bed", 0.9, "bedroom")], room_types=rooms))
        insights.save_room_scores(session, by_name["bath.jpg"], model_id,
                                  scores_from_amenities([("toilet", 0.9, "bathroom")], room_types=rooms))
    engine.dispose()
    notes = _show(capsys, *tax)["tour"]["notes"]
    assert {"code": "bedrooms-unshown", "message": "2 bedrooms declared, 1 bedroom photo", "room": "bedroom",
            "amenity": None} in notes
    code, out, _ = run(capsys, "listings", "show", "1", *tax)
    assert code == 0 and "note: 2 bedrooms declared, 1 bedroom photo" in out
    assert run(capsys, "listings", "edit", "1", "--bedrooms", "1", *tax)[0] == 0
    assert "bedrooms-unshown" not in {n["code"] for n in _show(capsys, *tax)["tour"]["notes"]}
