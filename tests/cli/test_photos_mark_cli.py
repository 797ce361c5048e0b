"""``roomscan photos mark``: marked copies of the photos on published listings, resumable, with clear errors when
the marking settings are missing or bad."""

from __future__ import annotations

import io

import pytest
from _marking import write_marking
from _models import make_image, tiny_taxonomy
from cli_helpers import run as run_cli

from roomscan.backends._base import ModelInfo
from roomscan.catalog import store
from roomscan.catalog.models import PhotoMark
from roomscan.detection.image import load_image
from roomscan.services import Services
from roomscan.settings import Settings


def photo_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    make_image((96, 64), seed).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def catalog(env):  # type: ignore[no-untyped-def]
    """Listing 1 (published) with three photos, one of them WebP; listing 2 (unpublished) with one photo."""
    services = Services.open(Settings.from_env())
    taxonomy = tiny_taxonomy()
    with services.sessions() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        for title, published, datas in (("Loft", True, [photo_bytes(1), photo_bytes(2), photo_bytes(3, "WEBP")]),
                                        ("Draft", False, [photo_bytes(4)])):
            listing = store.create_listing(session, title, published=published)
            for data in datas:
                store.add_photo(session, services.photos, listing, load_image(data), model_id=model_id,
                                taxonomy=taxonomy)
        session.commit()
    services.close()
    return env


@pytest.fixture
def marking(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    key, network = write_marking(tmp_path / "marking")
    monkeypatch.setenv("ROOMSCAN_MARK_KEY", str(key))
    monkeypatch.setenv("ROOMSCAN_MARK_NETWORK", str(network))
    return key, network


def run(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """The CLI's exit code, output and messages (the console's line wrapping undone)."""
    code, out, err = run_cli(capsys, *args)
    return code, out, " ".join(err.split())


def _marks() -> list[PhotoMark]:
    services = Services.open(Settings.from_env())
    try:
        with services.sessions() as session:
            return list(session.query(PhotoMark).order_by(PhotoMark.photo_id))
    finally:
        services.close()


def test_mark_marks_published_photos_and_a_rerun_nothing(capsys, catalog, marking) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "photos", "mark", "--limit", "1", "--steps", "5")
    assert code == 0, err
    assert "marked 1 photo(s)" in err and "2 still to mark" in err
    code, _, err = run(capsys, "photos", "mark", "--steps", "5")
    assert code == 0, err
    assert "marked 1 photo(s)" in err and "1 cannot be marked" in err and "WEBP" in err
    rows = _marks()
    assert [r.photo_id for r in rows] == [1, 2, 3]  # photo 4 is on the unpublished listing
    assert [r.marked_sha256 is not None for r in rows] == [True, True, False]
    code, _, err = run(capsys, "photos", "mark")
    assert code == 0 and "nothing to do" in err


def test_a_new_key_marks_every_photo_again(capsys, catalog, marking, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert run(capsys, "photos", "mark", "--steps", "5")[0] == 0
    before = {r.photo_id: r.marked_sha256 for r in _marks()}
    key, network = write_marking(tmp_path / "new", seed=3)
    monkeypatch.setenv("ROOMSCAN_MARK_KEY", str(key))
    monkeypatch.setenv("ROOMSCAN_MARK_NETWORK", str(network))
    code, _, err = run(capsys, "photos", "mark", "--steps", "5")
    assert code == 0 and "marked 2 photo(s)" in err, err
    after = {r.photo_id: r.marked_sha256 for r in _marks()}
    assert after[1] != before[1] and after[2] != before[2]


def test_mark_without_settings_says_what_to_set(capsys, catalog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ROOMSCAN_MARK_KEY", raising=False)
    monkeypatch.delenv("ROOMSCAN_MARK_NETWORK", raising=False)
    code, _, err = run(capsys, "photos", "mark")
    assert code == 2 and "ROOMSCAN_MARK_KEY" in err and "ROOMSCAN_MARK_NETWORK" in err


@pytest.mark.parametrize("broken", ["key", "network"])
def test_mark_with_a_corrupt_file_names_it(capsys, catalog, marking, tmp_path, monkeypatch, broken: str) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / f"corrupt-{broken}"
    bad.write_bytes(b"garbage")
    monkeypatch.setenv(f"ROOMSCAN_MARK_{broken.upper()}", str(bad))
    code, _, err = run(capsys, "photos", "mark")
    assert code == 2 and f"ROOMSCAN_MARK_{broken.upper()}" in err and "not a" in err
    assert _marks() == []
