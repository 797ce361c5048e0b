"""Two uploads of a photo the catalog already has, to one listing, at the same moment (a double-click, a client
retrying): both must succeed, the second answering ``already_on_listing``. Found by the load test's duplicates:
30 such concurrent uploads to a real server on PostgreSQL answered 500 eight times."""

from __future__ import annotations

import threading
import time

import pytest
from _cluster import jpeg
from _databases import fresh_database
from sqlalchemy import func, select, text

from roomscan.catalog import store
from roomscan.catalog.db import open_catalog
from roomscan.catalog.models import Listing, ListingPhoto, Model
from roomscan.catalog.photos import open_photo_store
from roomscan.detection.image import load_image


@pytest.mark.slow
@pytest.mark.postgres
def test_two_concurrent_attaches_of_a_stored_photo_to_one_listing_both_succeed(tmp_path):
    from _models import tiny_taxonomy

    with fresh_database("postgres", tmp_path) as url:
        engine, Session = open_catalog(url)
        photos = open_photo_store(str(tmp_path / "photos"))
        taxonomy = tiny_taxonomy()
        photo = load_image(jpeg(seed=1))
        with Session.begin() as session:
            model = Model(key="m@1", backend="test", name="m", version="1", taxonomy="t")
            elsewhere, listing = Listing(title="elsewhere"), Listing(title="flat")
            session.add_all([model, elsewhere, listing])
            session.flush()
            store.add_photo(session, photos, elsewhere, photo, model_id=model.id, taxonomy=taxonomy)
            model_id, listing_id = model.id, listing.id

        def attach(session):  # type: ignore[no-untyped-def]
            return store.add_photo(session, photos, session.get(Listing, listing_id), photo, model_id=model_id,
                                   taxonomy=taxonomy)

        first = Session()
        attach(first)  # flushed, not committed: the second waits on its listing_photos row
        outcome: dict[str, object] = {}

        def second() -> None:
            with Session() as session:
                try:
                    outcome["added"] = attach(session)
                    session.commit()
                except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                    outcome["error"] = exc

        racing = threading.Thread(target=second)
        racing.start()
        try:
            with engine.connect() as con:  # until the second upload waits for the first's row lock
                deadline = time.monotonic() + 120  # a loaded machine can starve the thread for a while
                while not con.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")).scalar():
                    assert racing.is_alive() and time.monotonic() < deadline, outcome
                    time.sleep(0.02)
        finally:
            first.commit()
            first.close()
            racing.join(timeout=30)
        try:
            assert "error" not in outcome, repr(outcome.get("error"))[:300]
            assert outcome["added"].newly_attached is False  # type: ignore[attr-defined]
            with Session() as session:
                assert session.scalar(select(func.count()).select_from(ListingPhoto)) == 2
        finally:
            engine.dispose()
