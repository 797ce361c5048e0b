"""The photo store keeps what rows name and what uploads are writing, and sweeps what interrupted uploads left."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta
from pathlib import Path

from _models import tiny_taxonomy

from roomscan.backends._base import ModelInfo
from roomscan.catalog import store
from roomscan.catalog.photos import SWEEP_GRACE, LocalPhotoStore, PhotoStore, SweepReport, sweep_photo_store
from roomscan.detection.image import load_image


def _age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def _put(photos: LocalPhotoStore, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    photos.put(sha, data)
    return photos.path(sha)


def test_photo_store_of_a_directory_is_the_local_store(tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path)
    assert isinstance(photos, LocalPhotoStore)
    assert (photos.root, str(photos)) == (tmp_path, str(tmp_path))


def test_put_is_atomic_and_idempotent(tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path)
    first = _put(photos, b"photo bytes")
    assert _put(photos, b"photo bytes") == first
    assert first.read_bytes() == b"photo bytes"
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp file left behind


def test_sweep_removes_old_litter_and_keeps_rows_and_uploads_in_flight(tmp_path: Path) -> None:
    photos = PhotoStore(tmp_path)
    old = 2 * SWEEP_GRACE.total_seconds()
    named = _put(photos, b"a photo with a row")
    orphan = _put(photos, b"a photo whose row never committed")
    in_flight = _put(photos, b"a photo whose upload is still running")
    dead_temp = named.parent / ".incoming-abc123"
    dead_temp.write_bytes(b"half a photo")
    live_temp = orphan.parent / ".incoming-def456"
    live_temp.write_bytes(b"being written")
    for path in (named, orphan, dead_temp):
        _age(path, old)
    asked: list[str] = []

    def known(hashes):  # type: ignore[no-untyped-def]
        asked.extend(hashes)
        return {h for h in hashes if h == named.name}

    litter_bytes = dead_temp.stat().st_size + orphan.stat().st_size

    report = photos.sweep(known)

    assert report == SweepReport(temp_files=1, orphan_files=1, bytes=litter_bytes)
    assert named.exists() and in_flight.exists() and live_temp.exists()
    assert not orphan.exists() and not dead_temp.exists()
    assert in_flight.name not in asked  # young files are never even looked up
    assert photos.sweep(known) == SweepReport()  # nothing left to remove
    assert "1 unfinished upload file(s) and 1 photo file(s)" in str(report)


def test_storing_bytes_again_makes_an_old_unnamed_file_young(tmp_path: Path) -> None:
    # An upload of the same bytes as an old orphan reuses the file: the sweep must not take it before the
    # upload's row commits.
    photos = PhotoStore(tmp_path)
    path = _put(photos, b"uploaded twice")
    _age(path, 2 * SWEEP_GRACE.total_seconds())
    _put(photos, b"uploaded twice")
    assert photos.sweep(lambda hashes: set()) == SweepReport()
    assert path.exists()


def test_sweep_of_a_missing_store_is_empty(tmp_path: Path) -> None:
    assert PhotoStore(tmp_path / "never-created").sweep(lambda hashes: set()) == SweepReport()


def test_sweep_photo_store_keeps_every_file_the_catalog_names(catalog, tmp_path: Path, sample_photo) -> None:  # type: ignore[no-untyped-def]
    _, Session = catalog
    photos = PhotoStore(tmp_path / "photos")
    taxonomy = tiny_taxonomy()
    with Session() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        listing = store.create_listing(session, "Loft")
        kept = [
            store.add_photo(session, photos, listing, load_image(sample_photo(seed=s)), model_id=model_id,
                            taxonomy=taxonomy).sha256
            for s in (1, 2)
        ]
        session.commit()
        # An upload killed after writing its file, before its row committed.
        store.add_photo(session, photos, listing, load_image(sample_photo(seed=3)), model_id=model_id,
                        taxonomy=taxonomy)
        session.rollback()
    files = {p.name: p for p in photos.root.glob("*/*")}
    assert len(files) == 3
    for path in files.values():
        _age(path, 3600)

    report = sweep_photo_store(Session, photos, grace=timedelta(minutes=10))

    assert (report.temp_files, report.orphan_files) == (0, 1)
    assert sorted(p.name for p in photos.root.glob("*/*")) == sorted(kept)
