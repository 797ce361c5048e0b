from __future__ import annotations

import csv
from pathlib import Path

import pytest

from roomscan.errors import TaxonomyError
from roomscan.taxonomy import default_taxonomy, load_taxonomy, slugify

# Shipped inside the package (a user's clone has nothing beside it).
REFERENCE = Path(__file__).resolve().parents[1] / "roomscan" / "data" / "reference"


def _rows(name: str) -> list[dict[str, str]]:
    with (REFERENCE / name).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_default_taxonomy_is_the_30_open_images_amenities_with_their_ids():
    tax = default_taxonomy()
    expected = {row["name"]: row["mid"] for row in _rows("openimages-amenities-30.csv")}
    assert len(tax) == 30
    assert {a.name: a.mid for a in tax} == expected


def test_every_default_amenity_is_an_open_images_boxable_class():
    boxable = {row["mid"]: row["name"] for row in _rows("openimages-boxable-classes.csv")}
    assert len(boxable) == 599
    for a in default_taxonomy():
        assert boxable.get(a.mid) == a.name, a.slug


def test_every_default_amenity_has_prompts_group_threshold_and_a_stable_slug():
    for a in default_taxonomy():
        assert a.prompts and all(p.strip() for p in a.prompts)
        assert a.group in {"kitchen", "bathroom", "bedroom", "living", "outdoor", "laundry", "general"}
        assert 0 < a.threshold < 1
        assert a.slug == a.slug.lower() and " " not in a.slug


@pytest.mark.parametrize(
    ("key", "slug"),
    [("swimming-pool", "swimming-pool"), ("Swimming pool", "swimming-pool"), ("JACUZZI", "jacuzzi"),
     ("/m/0fx9l", "microwave-oven"), ("Kitchen & dining room table", "kitchen-dining-table")],
)
def test_resolve_accepts_slug_name_or_open_images_id(key, slug):
    assert default_taxonomy().resolve(key).slug == slug


@pytest.mark.parametrize(
    ("key", "slug"),
    [("hot tub", "jacuzzi"), ("hot-tub", "jacuzzi"), ("Hot Tub", "jacuzzi"), ("pool", "swimming-pool"),
     ("pool table", "billiard-table"), ("TV", "television"), ("fridge", "refrigerator"), ("sofa", "couch")],
)
def test_resolve_accepts_synonyms(key, slug):
    assert default_taxonomy().resolve(key).slug == slug


def test_synonyms_do_not_change_the_fingerprint(tmp_path):
    # A model's catalog key includes the fingerprint: adding a synonym must not re-queue every photo.
    (tmp_path / "a.yaml").write_text("amenities:\n  - {name: Sauna, prompts: [a sauna]}\n")
    (tmp_path / "b.yaml").write_text("amenities:\n  - {name: Sauna, prompts: [a sauna], synonyms: [steam room]}\n")
    a, b = load_taxonomy(tmp_path / "a.yaml"), load_taxonomy(tmp_path / "b.yaml")
    assert a.fingerprint() == b.fingerprint()
    assert b.resolve("Steam room").slug == "sauna"


def test_unknown_amenity_suggests_the_closest():
    with pytest.raises(TaxonomyError, match="did you mean swimming-pool"):
        default_taxonomy().resolve("swiming pool")


def test_user_file_extends_default_with_a_new_amenity(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "extends: default\namenities:\n"
        "  - name: Espresso machine\n    prompts: [an espresso machine]\n    threshold: 0.3\n    group: kitchen\n"
        "  - name: Oven\n    slug: oven\n    prompts: [a wall oven]\n"
    )
    tax = load_taxonomy(path)
    assert len(tax) == 31
    assert tax["espresso-machine"].prompts == ("an espresso machine",)
    assert tax["oven"].prompts == ("a wall oven",)  # same slug overrides the default's prompts
    assert tax.index("oven") == default_taxonomy().index("oven")  # and keeps its class id


def test_a_minimal_file_needs_only_names(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("amenities:\n  - name: Sauna\n")
    tax = load_taxonomy(path)
    assert tax.slugs == ["sauna"] and tax["sauna"].prompts == ("a photo of a sauna",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("amenities: [", "not valid YAML"),
        ("foo: 1", "'amenities' list"),
        ("amenities:\n  - {name: Sauna, colour: red}", "unknown key"),
        ("amenities:\n  - {name: Sauna, threshold: 2}", "between 0 and 1"),
        ("amenities:\n  - {prompts: [x]}", "'name' is required"),
        ("amenities:\n  - {name: A}\n  - {name: a}", "appears twice"),
        ("amenities:\n  - {name: Sauna, group: spa}", "group 'spa'"),
        ("extends: other\namenities: []", "'extends' may only be"),
        ("amenities:\n  - {name: Sauna, synonyms: [pool]}\n  - {name: Pool}", "names both"),
        ("extends: default\namenities:\n  - {name: Plunge pool, synonyms: [hot tub]}", "names both"),
        ("amenities:\n  - {name: Sauna, synonyms: [1]}", "'synonyms' must be"),
    ],
)
def test_malformed_taxonomy_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyError, match=message) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "nope.yaml")


def test_save_round_trips_and_fingerprint_tracks_changes(tmp_path):
    tax = default_taxonomy()
    tax.save(tmp_path / "t.yaml")
    again = load_taxonomy(tmp_path / "t.yaml")
    assert again.amenities == tax.amenities
    assert again.fingerprint() == tax.fingerprint()
    (tmp_path / "u.yaml").write_text("extends: default\namenities:\n  - {name: Oven, prompts: [an oven], threshold: 0.5}\n")
    assert load_taxonomy(tmp_path / "u.yaml").fingerprint() != tax.fingerprint()


def test_slugify():
    assert slugify("Kitchen & dining room table") == "kitchen-dining-room-table"
