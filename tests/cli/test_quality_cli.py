"""``roomscan quality``: models' precision per amenity from hosts' decisions, as a table or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cli_helpers import run

from roomscan.catalog.db import open_catalog
from roomscan.catalog.models import AmenityDecision, Detection, Listing, ListingPhoto, Model, Photo

NOW = datetime.now(UTC)


@pytest.fixture
def db(tmp_path, env, taxonomy_file):  # type: ignore[no-untyped-def]
    """A catalog where hosts decided: under owlv2, bed 3 confirmed + 1 rejected and oven 1 rejected; under
    detr, sink 1 confirmed."""
    from _models import tiny_taxonomy

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine, sessions = open_catalog(url)
    fingerprint = tiny_taxonomy().fingerprint()
    with sessions() as session, session.begin():
        models = {key: Model(key=key, backend=key.split(":")[0], name=key, version="1", taxonomy=fingerprint)
                  for key in ("owlv2:tiny@1", "detr:tiny@2")}
        session.add_all(models.values())
        session.flush()
        cases = [("owlv2:tiny@1", "bed", 0.9, "confirmed"), ("owlv2:tiny@1", "bed", 0.8, "confirmed"),
                 ("owlv2:tiny@1", "bed", 0.6, "rejected"), ("owlv2:tiny@1", "bed", 0.5, "confirmed"),
                 ("owlv2:tiny@1", "oven", 0.4, "rejected"), ("detr:tiny@2", "sink", 0.7, "confirmed")]
        for i, (key, amenity, score, decision) in enumerate(cases):
            listing = Listing(title=f"Flat {i}")
            photo = Photo(sha256=f"{i:064x}", format="JPEG", width=64, height=48, size_bytes=10)
            session.add_all([listing, photo])
            session.flush()
            session.add_all([
                ListingPhoto(listing_id=listing.id, photo_id=photo.id),
                Detection(photo_id=photo.id, model_id=models[key].id, amenity=amenity, score=score,
                          x1=0, y1=0, x2=10, y2=10),
                AmenityDecision(listing_id=listing.id, amenity=amenity, decision=decision,
                                decided_at=NOW - timedelta(weeks=i % 2)),
            ])
    engine.dispose()
    return url


def test_table_shows_precision_interval_thresholds_and_the_weekly_trend(capsys, db, taxonomy_file):
    code, out, err = run(capsys, "quality", "--db", db, "--taxonomy", str(taxonomy_file), "--model", "owlv2")
    assert code == 0, err
    assert "owlv2:tiny@1" in out and "detr:tiny@2" not in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    # bed: 3 of 4 confirmed, Wilson [0.30, 0.95]; >= 0.8 keeps 2 confirmed at precision 1; threshold 0.05
    assert rows["bed"] == ["4", "1", "0.75", "[0.30–0.95]", "0.800", "keeps", "2", "0.050"]
    assert rows["oven"] == ["1", "1", "0.00", "[0.00–0.79]", "not", "reachable", "0.100"]
    assert rows["all"][:4] == ["5", "2", "0.60", "[0.23–0.88]"]
    assert "weekly trend" in out and out.count("-W") >= 8


def test_json_has_every_figure(capsys, db, taxonomy_file):
    code, out, _ = run(capsys, "quality", "--db", db, "--taxonomy", str(taxonomy_file), "--json",
                       "--amenity", "Bed", "--amenity", "sink", "--weeks", "2", "--target-precision", "0.7")
    assert code == 0
    doc = json.loads(out)
    assert doc["target_precision"] == 0.7 and len(doc["weeks"]) == 2
    by_key = {m["key"]: m for m in doc["models"]}
    bed = by_key["owlv2:tiny@1"]["amenities"][0]
    assert (bed["amenity"], bed["decisions"], bed["confirmed"]) == ("bed", 4, 3)
    assert bed["threshold"]["threshold"] == 0.5 and bed["threshold"]["kept_confirmed"] == 3  # 3/4 >= 0.7
    assert [w["decisions"] for w in bed["weekly"]] == [2, 2]
    assert by_key["owlv2:tiny@1"]["total"]["decisions"] == 4  # oven left out by --amenity
    assert [a["amenity"] for a in by_key["detr:tiny@2"]["amenities"]] == ["sink"]


def test_min_decisions_hides_thin_rows(capsys, db, taxonomy_file):
    code, out, _ = run(capsys, "quality", "--db", db, "--taxonomy", str(taxonomy_file), "--json",
                       "--min-decisions", "2")
    assert code == 0
    doc = json.loads(out)
    assert [[a["amenity"] for a in m["amenities"]] for m in doc["models"]] == [["bed"], []]


def test_an_empty_catalog_is_not_an_error(capsys, env, tmp_path):
    code, _, err = run(capsys, "quality", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 0
    assert "no host has confirmed or rejected" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "yolo"],
         "no catalog model has a key containing 'yolo'; the models are: owlv2:tiny@1, detr:tiny@2"),
        (["--model", "tiny"], "'tiny' matches 2 models"),
        (["--amenity", "helipad"], "helipad"),
        (["--since", "last week"], "--since must be an ISO 8601 time"),
        (["--since", "0001-01-01T00:00+01:00"], "is beyond the calendar once in UTC"),
        (["--since", "9999-12-31T23:59-01:00"], "is beyond the calendar once in UTC"),
    ],
)
def test_bad_options_say_what_to_do(capsys, db, taxonomy_file, args, message):
    code, _, err = run(capsys, "quality", "--db", db, "--taxonomy", str(taxonomy_file), *args)
    assert code == 2
    assert message in " ".join(err.split())
