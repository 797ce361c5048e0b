"""A transaction is stored whole or not at all, on SQLite as on PostgreSQL: a refused upload leaves no row."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _models import tiny_taxonomy
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from roomscan.backends._base import ModelInfo
from roomscan.catalog import store
from roomscan.catalog.db import open_catalog
from roomscan.catalog.models import Listing, ListingPhoto, Photo, PhotoJob
from roomscan.catalog.photos import PhotoStore
from roomscan.detection.image import load_image

KEY = "test-key-transactions"


def _counts(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {
        table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
        for table in (Photo, ListingPhoto, PhotoJob)
    }


def test_a_rolled_back_add_photo_leaves_no_row(catalog, tmp_path: Path, sample_photo) -> None:  # type: ignore[no-untyped-def]
    _, Session = catalog
    photos = PhotoStore(tmp_path / "photos")
    taxonomy = tiny_taxonomy()
    with Session() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        listing = store.create_listing(session, "Loft")
        kept = store.add_photo(session, photos, listing, load_image(sample_photo(seed=1)), model_id=model_id,
                               taxonomy=taxonomy)
        session.commit()
        before = _counts(session)
        assert before == {"photos": 1, "listing_photos": 1, "photo_jobs": 1}

        # A new photo, first in its transaction (no write before it): its row goes in under a SAVEPOINT.
        store.add_photo(session, photos, listing, load_image(sample_photo(seed=2)), model_id=model_id,
                        taxonomy=taxonomy)
        session.rollback()
    with Session() as session:
        assert _counts(session) == before
        assert session.scalars(select(Photo.id)).all() == [kept.photo_id]


def test_a_read_then_write_waits_for_a_concurrent_writer_instead_of_failing(tmp_path: Path) -> None:
    # Uploads and job claims read before they write. On SQLite a transaction that holds a read snapshot cannot
    # take the write lock once another connection wrote since, and fails at once ("database is locked"):
    # reads before the first write must not pin the transaction to a snapshot.
    engine, Session = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        with Session() as reader_then_writer, Session() as other:
            assert reader_then_writer.scalar(select(func.count()).select_from(Listing)) == 0
            other.add(Listing(title="written meanwhile"))
            other.commit()
            reader_then_writer.add(Listing(title="written after reading"))
            reader_then_writer.commit()
        with Session() as session:
            assert session.scalar(select(func.count()).select_from(Listing)) == 2
    finally:
        engine.dispose()


def test_a_writer_waits_for_another_writers_transaction(tmp_path: Path) -> None:
    engine, Session = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        first = Session()
        first.add(Listing(title="first"))
        first.flush()  # holds the write lock until it commits
        done = threading.Event()

        def second() -> None:
            with Session() as session:
                session.add(Listing(title="second"))
                session.commit()
            done.set()

        thread = threading.Thread(target=second)
        thread.start()
        assert not done.wait(0.5)  # waiting for the lock (busy timeout), not failing
        first.rollback()
        first.close()
        thread.join(timeout=30)
        assert done.is_set()
        with Session() as session:
            assert session.scalars(select(Listing.title)).all() == ["second"]
    finally:
        engine.dispose()


@pytest.fixture
def upload_client(catalog_url: str, tmp_path: Path, tiny_owlv2_dir: Path) -> Iterator[TestClient]:
    from roomscan.api import create_app
    from roomscan.backends import get_detector
    from roomscan.services import open_services
    from roomscan.settings import Settings

    detector = get_detector(str(tiny_owlv2_dir), taxonomy=tiny_taxonomy(), device="cpu", score_threshold=0.0)
    settings = Settings(home=tmp_path / "home", database_url=catalog_url, api_key=KEY)
    with TestClient(create_app(services=open_services(settings, detector=detector), start_worker=False)) as client:
        yield client


@pytest.mark.parametrize(
    ("bad", "status"),
    [(b"these are my notes, not a photo\n" * 10, 415), (b"\xff\xd8\xff\xe0" + b"\x00" * 64, 422)],
    ids=["not-an-image", "corrupt-jpeg"],
)
def test_a_refused_upload_stores_nothing(upload_client: TestClient, sample_photo, bad: bytes, status: int) -> None:  # type: ignore[no-untyped-def]
    headers = {"X-API-Key": KEY}
    listing_id = upload_client.post("/api/v1/listings", json={"title": "Villa"}, headers=headers).json()["id"]
    services = upload_client.app.state.services  # type: ignore[attr-defined]
    with services.sessions() as session:
        before = _counts(session)
    r = upload_client.post(
        f"/api/v1/listings/{listing_id}/photos",
        files=[("files", ("good.jpg", sample_photo(seed=3), "image/jpeg")), ("files", ("bad.jpg", bad, "image/jpeg"))],
        headers=headers,
    )
    assert r.status_code == status, r.text
    with services.sessions() as session:
        assert _counts(session) == before == {"photos": 0, "listing_photos": 0, "photo_jobs": 0}
    listing = upload_client.get(f"/api/v1/listings/{listing_id}").json()
    assert listing.get("photos", []) == []


def test_0003_deletes_the_photo_rows_refused_uploads_left(catalog_url: str) -> None:
    # Before the fix, SQLite kept the first photo row of a refused upload: no listing, no job.
    from alembic import command
    from sqlalchemy import text

    from roomscan.catalog.db import alembic_config, make_engine, migrate

    engine = make_engine(catalog_url)
    with engine.begin() as con:
        command.upgrade(alembic_config(con), "0002")
    with engine.begin() as con:
        now = "2026-01-01 00:00:00+00:00"
        con.execute(text(f"INSERT INTO listings (id, title, created_at) VALUES (1, 'Loft', '{now}')"))
        for photo_id, sha in ((1, "a"), (2, "b")):
            con.execute(text(f"INSERT INTO photos (id, sha256, format, width, height, size_bytes, created_at) "
                             f"VALUES ({photo_id}, '{sha * 64}', 'JPEG', 4, 4, 10, '{now}')"))
        con.execute(text("INSERT INTO listing_photos (listing_id, photo_id, position) VALUES (1, 1, 0)"))
    migrate(engine)
    with engine.connect() as con:
        assert con.execute(text("SELECT id FROM photos")).scalars().all() == [1]
        assert con.execute(text("SELECT listing_id, photo_id FROM listing_photos")).all() == [(1, 1)]
    engine.dispose()
