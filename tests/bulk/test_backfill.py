"""``roomscan.bulk.backfill``: every photo a model has not processed gets detected, once, on Ray."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from _bulk import DETECTOR_OPTIONS
from sqlalchemy import func, select, update

from roomscan.bulk import backfill
from roomscan.catalog.jobs import lease_holder
from roomscan.catalog.models import Detection, JobState, ListingAmenity, PhotoJob
from roomscan.services import Services, load_detector


def _jobs(settings) -> list[PhotoJob]:
    services = Services.open(settings)
    try:
        with services.sessions() as session:
            return list(session.scalars(select(PhotoJob).order_by(PhotoJob.id)))
    finally:
        services.close()


def _count(settings, stmt) -> int:
    services = Services.open(settings)
    try:
        with services.sessions() as session:
            return session.scalar(stmt) or 0
    finally:
        services.close()


def _run(settings, **kwargs):
    return backfill(settings, detector_options=DETECTOR_OPTIONS, batch_size=kwargs.pop("batch_size", 4), **kwargs)


def test_backfill_detects_every_photo_once_and_records_bad_ones(ray_local, bulk_settings, seed_catalog):
    made = seed_catalog(bulk_settings, {"Beach house": 5, "City flat": 4})
    services = Services.open(bulk_settings)
    try:  # one file gone, one file corrupt: their jobs fail, the run goes on
        with services.sessions() as session:
            from roomscan.catalog.models import Photo

            missing = session.get(Photo, made["City flat"][0]).sha256
            corrupt = session.get(Photo, made["City flat"][1]).sha256
        services.photos.delete(missing)
        services.photos.delete(corrupt)
        services.photos.put(corrupt, b"\xff\xd8\xff\xe0 not really a jpeg")
    finally:
        services.close()

    stats = _run(bulk_settings)

    assert (stats.total, stats.done, stats.failed, stats.skipped) == (9, 7, 2, 0)
    jobs = _jobs(bulk_settings)
    assert sorted(j.state for j in jobs) == [JobState.DONE] * 7 + [JobState.FAILED] * 2
    assert all(j.attempts == 1 for j in jobs)
    failed = {j.photo_id: j.error for j in jobs if j.state == JobState.FAILED}
    assert "missing from the photo store" in failed[made["City flat"][0]]
    assert failed[made["City flat"][1]]  # the image error, naming the photo
    assert _count(bulk_settings, select(func.count(func.distinct(Detection.photo_id)))) == 7
    # The roll-ups follow: both listings have their searchable amenity rows.
    assert _count(bulk_settings, select(func.count(func.distinct(ListingAmenity.listing_id)))) == 2

    again = _run(bulk_settings)  # idempotent: nothing left to do, Ray not even started
    assert (again.total, again.done, again.failed) == (0, 0, 0)


def test_backfill_queues_photos_a_new_model_never_saw_and_narrows_to_listings(ray_local, sqlite_settings,
                                                                              seed_catalog):
    from roomscan.catalog.models import Listing

    seed_catalog(sqlite_settings, {"Beach house": 3, "City flat": 3})
    # A different model (other options: another key): no jobs yet, backfill queues the selected photos only.
    options = {"score_threshold": 0.0, "image_size": 32}
    stats = backfill(sqlite_settings, listings="Beach%", detector_options=options, batch_size=4)
    assert (stats.queued, stats.total, stats.done) == (3, 3, 3)
    stats = backfill(sqlite_settings, listings="Beach%", detector_options=options, batch_size=4)
    assert stats.total == 0
    with_ids = _count(sqlite_settings, select(func.max(Listing.id)))
    stats = backfill(sqlite_settings, listings=f"1-{with_ids}", detector_options=options, batch_size=4)
    assert (stats.queued, stats.done) == (3, 3)


def test_stopped_backfill_resumes_with_only_what_is_missing(ray_local, sqlite_settings, seed_catalog):
    seed_catalog(sqlite_settings, {"Loft": 10})
    stop = threading.Event()

    first = _run(sqlite_settings, batch_size=2, stop=stop, on_progress=lambda stats: stop.set())
    assert first.stopped and 0 < first.done < 10
    jobs = _jobs(sqlite_settings)
    assert not [j for j in jobs if j.state == JobState.RUNNING]  # claims in flight were given back
    done_before = {j.id for j in jobs if j.state == JobState.DONE}

    second = _run(sqlite_settings, batch_size=4)
    assert second.total == 10 - len(done_before) and second.done == second.total
    jobs = _jobs(sqlite_settings)
    assert all(j.state == JobState.DONE for j in jobs)
    assert all(j.attempts == 1 for j in jobs)  # nothing detected twice


def test_backfill_and_a_worker_never_detect_the_same_photo(ray_local, bulk_settings, seed_catalog):
    seed_catalog(bulk_settings, {"Villa": 16})
    services = Services.open(bulk_settings)
    services.use(load_detector(bulk_settings, **DETECTOR_OPTIONS))
    worker = services.new_worker(batch_size=2)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), kwargs={"poll_seconds": 0.05})
    thread.start()
    try:
        stats = _run(bulk_settings, batch_size=2)
    finally:
        stop.set()
        thread.join(timeout=60)
        services.close()

    jobs = _jobs(bulk_settings)
    assert all(j.state == JobState.DONE for j in jobs)
    assert all(j.attempts == 1 for j in jobs)  # each photo claimed, so detected, exactly once
    assert stats.done + worker.stats.done == 16
    assert stats.done + stats.skipped == stats.total


def test_backfill_command_reports_missing_weights_clearly(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from roomscan.cli import app

    monkeypatch.setenv("ROOMSCAN_HOME", str(tmp_path))
    monkeypatch.delenv("ROOMSCAN_DATABASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["backfill", "--model", "nobody/no-such-model-xyz"])
    assert result.exit_code != 0
    from roomscan.errors import ModelUnavailableError

    assert isinstance(result.exception, ModelUnavailableError)


@pytest.mark.parametrize("spec", ["Beach%", "3-7", "12"])
def test_listing_filter_forms(spec):
    from roomscan.bulk.selection import listing_filter

    text = str(listing_filter(spec))
    assert ("LIKE" in text) == (spec == "Beach%")


def test_backfill_takes_over_at_once_the_jobs_of_a_killed_run(ray_local, sqlite_settings, seed_catalog):
    """A run killed midway (kill -9) leaves jobs running, leased by its actors' processes, which are gone."""
    seed_catalog(sqlite_settings, {"Chalet": 6})
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    host, _pid, boot = lease_holder().rsplit("/", 2)
    services = Services.open(sqlite_settings)
    try:
        with services.sessions() as session, session.begin():
            session.execute(update(PhotoJob).where(PhotoJob.id <= 3).values(
                state=JobState.RUNNING, attempts=1, leased_by=f"{host}/{gone}/{boot}",
                leased_until=datetime.now(UTC) + timedelta(minutes=5)))
    finally:
        services.close()

    stats = _run(sqlite_settings)

    assert (stats.total, stats.done) == (6, 6)
    assert sorted(j.attempts for j in _jobs(sqlite_settings)) == [1, 1, 1, 2, 2, 2]  # the killed attempt counts
