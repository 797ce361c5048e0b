"""Marked copies in the catalog (catalog.marks): which photos get marked, what is stored, what a reader is served,
key changes, the settings' errors, the photo store sweep and the 0010 migration."""

from __future__ import annotations

import dataclasses
import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from _marking import PSNR_FLOOR, write_marking
from _models import make_image, tiny_taxonomy
from alembic import command
from PIL import Image
from sqlalchemy import inspect, select, text

from roomscan.backends._base import ModelInfo
from roomscan.catalog import marks, store
from roomscan.catalog.db import alembic_config, make_engine, migrate
from roomscan.catalog.models import Listing, Photo, PhotoMark, Role, User
from roomscan.catalog.photos import PhotoStore, sweep_photo_store
from roomscan.detection.image import load_image
from roomscan.errors import PermissionDeniedError, RoomscanError
from roomscan.settings import Settings


def photo_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    make_image((96, 64), seed).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture
def env(catalog, tmp_path: Path):  # type: ignore[no-untyped-def]
    _, Session = catalog
    photos = PhotoStore(tmp_path / "photos")
    key, network = write_marking(tmp_path / "marking")
    settings = Settings(home=tmp_path, mark_key=str(key), mark_network=str(network))
    taxonomy = tiny_taxonomy()
    with Session() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        session.commit()

    def add(title: str, *datas: bytes, published: bool = True, owner_id: int | None = None) -> list[int]:
        with Session() as session:
            listing = store.create_listing(session, title, published=published, owner_id=owner_id)
            ids = [store.add_photo(session, photos, listing, load_image(d), model_id=model_id,
                                   taxonomy=taxonomy).photo_id for d in datas]
            session.commit()
        return ids

    return Session, photos, settings, add


def run(Session, photos, settings, **options) -> marks.MarkStats:  # type: ignore[no-untyped-def]
    pub = marks.publishing(settings)
    with Session() as session:
        return marks.mark_pending(session, photos, pub, pub.load_network(), steps=10, **options)


def test_published_photos_get_a_marked_copy_beside_the_original(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    originals = [photo_bytes(1), photo_bytes(2, "PNG")]
    ids = add("Loft", *originals)
    stats = run(Session, photos, settings)
    assert (stats.marked, stats.skipped, stats.failed) == (2, 0, 0)
    pub = marks.publishing(settings)
    with Session() as session:
        for photo_id, original in zip(ids, originals, strict=True):
            photo = session.get(Photo, photo_id)
            row = session.get(PhotoMark, photo_id)
            assert photos.get(photo.sha256) == original  # the original is kept as it was
            copy = photos.get(row.marked_sha256)
            assert copy != original and row.key_fingerprint == pub.fingerprint and row.carrier == "published"
            assert row.psnr >= PSNR_FLOOR and row.linf <= pub.key.epsilon + 1e-9
            with Image.open(io.BytesIO(copy)) as a, Image.open(io.BytesIO(original)) as b:
                assert (a.format, a.size) == (b.format, b.size)
        assert marks.pending_count(session, pub.fingerprint) == 0


def test_a_rerun_marks_nothing_new_and_limit_stops_early(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    add("Loft", photo_bytes(1), photo_bytes(2), photo_bytes(3))
    assert run(Session, photos, settings, limit=2).marked == 2
    assert run(Session, photos, settings).marked == 1
    assert run(Session, photos, settings).marked == 0


def test_unpublished_listings_photos_wait_until_published(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    [photo_id] = add("Draft", photo_bytes(4), published=False)
    assert run(Session, photos, settings).marked == 0
    with Session() as session:
        listing = store.get_listing(session, session.scalars(select(Listing.id)).one())
        listing.published = True
        session.commit()
    assert run(Session, photos, settings).marked == 1
    with Session() as session:
        assert session.get(PhotoMark, photo_id) is not None


def test_a_new_key_makes_old_marks_stale_and_remarks_them(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    [photo_id] = add("Loft", photo_bytes(1))
    run(Session, photos, settings)
    with Session() as session:
        photo, old = session.get(Photo, photo_id), session.get(PhotoMark, photo_id).marked_sha256
    key, network = write_marking(tmp_path / "new-marking", seed=1)
    renewed = dataclasses.replace(settings, mark_key=str(key), mark_network=str(network))
    new_pub = marks.publishing(renewed)
    with Session() as session:
        # Stale marks are not served: readers get the original until the new key's mark exists.
        assert marks.served_copy(session, photo, new_pub, user_id=None, is_admin=False).sha256 == photo.sha256
    assert run(Session, photos, renewed).marked == 1
    with Session() as session:
        row = session.get(PhotoMark, photo_id)
        assert row.key_fingerprint == new_pub.fingerprint and row.marked_sha256 != old
        assert marks.served_copy(session, photo, new_pub, user_id=None, is_admin=False).sha256 == row.marked_sha256


def test_readers_get_the_marked_copy_owners_and_admins_the_original(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    with Session() as session:
        host, other = User(name="host", role=Role.HOST), User(name="other", role=Role.HOST)
        session.add_all([host, other])
        session.commit()
        host_id, other_id = host.id, other.id
    [photo_id] = add("Loft", photo_bytes(1), owner_id=host_id)
    run(Session, photos, settings)
    pub = marks.publishing(settings)
    with Session() as session:
        photo, marked = session.get(Photo, photo_id), session.get(PhotoMark, photo_id).marked_sha256
        for user_id, is_admin, expected in ((None, False, marked), (other_id, False, marked),
                                            (host_id, False, photo.sha256), (None, True, photo.sha256)):
            served = marks.served_copy(session, photo, pub, user_id=user_id, is_admin=is_admin)
            assert served.sha256 == expected and served.personal == (expected == photo.sha256)
        with pytest.raises(PermissionDeniedError, match="original"):
            marks.served_copy(session, photo, pub, user_id=other_id, is_admin=False, original=True)
        assert marks.served_copy(session, photo, None, user_id=None, is_admin=False).sha256 == photo.sha256


def test_a_photo_that_cannot_be_marked_is_recorded_and_left_until_asked(env) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    [photo_id] = add("Loft", photo_bytes(1, "WEBP"))
    stats = run(Session, photos, settings)
    assert (stats.marked, stats.skipped) == (0, 1) and "WEBP" in stats.errors[0]
    with Session() as session:
        row = session.get(PhotoMark, photo_id)
        assert row.marked_sha256 is None and "JPEG or PNG" in row.note
    assert run(Session, photos, settings).skipped == 0  # not tried again under this key
    assert run(Session, photos, settings, retry_skipped=True).skipped == 1


def test_the_sweep_keeps_current_marked_copies_and_removes_replaced_ones(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    [photo_id] = add("Loft", photo_bytes(1))
    run(Session, photos, settings)
    with Session() as session:
        old = session.get(PhotoMark, photo_id).marked_sha256
    key, network = write_marking(tmp_path / "new-marking", seed=1)
    run(Session, photos, dataclasses.replace(settings, mark_key=str(key), mark_network=str(network)))
    with Session() as session:
        new = session.get(PhotoMark, photo_id).marked_sha256
    past = time.time() - 7200
    for sha in (old, new):
        os.utime(tmp_path / "photos" / sha[:2] / sha, (past, past))
    report = sweep_photo_store(Session, photos, grace=timedelta(minutes=1))
    assert report.orphan_files == 1
    assert photos.get(new)
    assert not (tmp_path / "photos" / old[:2] / old).exists()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("mark_key", "missing.npz", "ROOMSCAN_MARK_KEY: .*no such key file"),
        ("mark_key", "corrupt.npz", "ROOMSCAN_MARK_KEY: .*not a marking key"),
        ("mark_network", "missing.pt", "ROOMSCAN_MARK_NETWORK: .*no such marking network file"),
        ("mark_set", "kitchen", "ROOMSCAN_MARK_SET: .*no carrier 'kitchen'"),
    ],
)
def test_bad_marking_settings_are_named(tmp_path: Path, setting: str, value: str, message: str) -> None:
    key, network = write_marking(tmp_path / "m")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    values = {"mark_key": str(key), "mark_network": str(network)}
    values[setting] = value if setting == "mark_set" else str(tmp_path / value)
    with pytest.raises(RoomscanError, match=message):
        marks.publishing(Settings(home=tmp_path, **values))


def test_a_key_with_several_carriers_needs_mark_set(tmp_path: Path) -> None:
    key, network = write_marking(tmp_path / "m", names=("kitchen", "bedroom"))
    with pytest.raises(RoomscanError, match="ROOMSCAN_MARK_SET: .*2 carriers"):
        marks.publishing(Settings(home=tmp_path, mark_key=str(key), mark_network=str(network)))
    chosen = marks.publishing(Settings(home=tmp_path, mark_key=str(key), mark_network=str(network), mark_set="bedroom"))
    assert chosen is not None and chosen.carrier == "bedroom"


def test_a_network_other_than_the_keys_is_refused(tmp_path: Path) -> None:
    key, _ = write_marking(tmp_path / "a", seed=0)
    _, other = write_marking(tmp_path / "b", seed=1)
    pub = marks.publishing(Settings(home=tmp_path, mark_key=str(key), mark_network=str(other)))
    with pytest.raises(RoomscanError, match="ROOMSCAN_MARK_NETWORK: .*made with marking network"):
        pub.load_network()


def test_key_and_network_go_together() -> None:
    with pytest.raises(RoomscanError, match="go together"):
        Settings(mark_key="key.npz")


def test_the_migration_upgrades_a_0009_catalog(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    with engine.begin() as con:
        command.upgrade(alembic_config(con), "0009")
    with engine.begin() as con:
        con.execute(text("INSERT INTO photos (id, sha256, format, width, height, size_bytes, created_at) "
                         f"VALUES (1, '{'a' * 64}', 'JPEG', 4, 4, 10, '2026-01-01 00:00:00+00:00')"))
    assert "photo_marks" not in inspect(engine).get_table_names()
    migrate(engine)
    assert "photo_marks" in inspect(engine).get_table_names()
    with engine.begin() as con:
        assert con.execute(text("SELECT count(*) FROM photos")).scalar() == 1
        assert con.execute(text("SELECT count(*) FROM photo_marks")).scalar() == 0
    engine.dispose()


def test_a_photo_deleted_while_it_is_marked_is_left_out(env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    Session, photos, settings, add = env
    first, second = add("Loft", photo_bytes(1), photo_bytes(2))
    real = marks._mark_one

    def delete_first_meanwhile(photos_, photo, *args):  # type: ignore[no-untyped-def]
        result = real(photos_, photo, *args)
        if photo.id == first:
            with Session() as other:
                other.execute(text("DELETE FROM listing_photos WHERE photo_id = :p"), {"p": first})
                other.execute(text("DELETE FROM photo_jobs WHERE photo_id = :p"), {"p": first})
                other.execute(text("DELETE FROM photos WHERE id = :p"), {"p": first})
                other.commit()
        return result

    monkeypatch.setattr(marks, "_mark_one", delete_first_meanwhile)
    stats = run(Session, photos, settings)
    assert stats.marked == 1
    with Session() as session:
        assert session.get(PhotoMark, first) is None and session.get(PhotoMark, second) is not None
