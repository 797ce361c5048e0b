"""Detection jobs survive crashes: an accepted photo is never lost, and a restart finishes the work."""

from __future__ import annotations

import time
from datetime import timedelta

from api_helpers import jpeg, make_listing, upload
from fastapi.testclient import TestClient
from sqlalchemy import select

from roomscan.api import create_app
from roomscan.catalog.models import PhotoJob
from roomscan.services import open_services
from roomscan.worker import DetectionWorker


def test_restart_finishes_pending_work_in_the_background(settings, api_detector):
    # First life: photos accepted, the process "dies" before the worker ran.
    first = open_services(settings, detector=api_detector)
    with TestClient(create_app(services=first, start_worker=False)) as client:
        listing_id = make_listing(client)
        assert upload(client, listing_id, ("a.jpg", jpeg(seed=1)), ("b.jpg", jpeg(seed=2))).status_code == 202

    # Second life: a new app over the same catalog; its background worker picks the jobs up by itself.
    second = open_services(settings, detector=api_detector)
    with TestClient(create_app(services=second, start_worker=True)) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = client.get(f"/api/v1/listings/{listing_id}/amenities").json()["processing"]
            if state["state"] == "complete":
                break
            time.sleep(0.2)
        assert state == {"state": "complete", "total": 2, "pending": 0, "running": 0, "done": 2, "failed": 0}


def test_a_job_whose_worker_died_mid_way_is_taken_over_after_its_lease(client, services):
    listing_id = make_listing(client)
    upload(client, listing_id, ("a.jpg", jpeg(seed=3)))
    w = services.worker
    dead = DetectionWorker(w.sessions, w.photos, w.detector, w.model_id, w.taxonomy, lease=timedelta(seconds=-1))
    assert len(dead.claim(1)) == 1  # claimed, then the process "crashed": the job stays `running`
    with w.sessions() as s:
        assert s.scalars(select(PhotoJob.state)).one() == "running"
    stats = w.run_until_idle()  # the lease ran out, so a live worker takes the job
    assert stats.done == 1
    assert client.get(f"/api/v1/listings/{listing_id}/amenities").json()["processing"]["done"] == 1


def test_a_live_lease_is_not_stolen(client, services):
    listing_id = make_listing(client)
    upload(client, listing_id, ("a.jpg", jpeg(seed=4)))
    w = services.worker
    busy = DetectionWorker(w.sessions, w.photos, w.detector, w.model_id, w.taxonomy)
    assert len(busy.claim(1)) == 1
    assert w.claim(1) == []


class _Broken:
    def __init__(self, detector):
        self.taxonomy, self.info = detector.taxonomy, detector.info

    def predict(self, images, batch_size=4):
        raise RuntimeError("CUDA out of memory (simulated)")


def test_failing_detection_is_retried_then_recorded_and_the_worker_goes_on(client, services):
    listing_id = make_listing(client)
    photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=5))).json()["photos"][0]["photo_id"]
    w = services.worker
    broken = DetectionWorker(w.sessions, w.photos, _Broken(w.detector), w.model_id, w.taxonomy, max_attempts=2)
    stats = broken.run_until_idle()
    assert (stats.retried, stats.failed) == (1, 1)
    detail = client.get(f"/api/v1/photos/{photo_id}").json()
    assert detail["job_state"] == "failed" and "out of memory" in detail["error"]
    assert client.get(f"/api/v1/listings/{listing_id}/amenities").json()["processing"]["failed"] == 1


def test_a_worker_that_lost_its_lease_cannot_complete_or_fail_the_new_owners_job(client, services):
    listing_id = make_listing(client)
    upload(client, listing_id, ("a.jpg", jpeg(seed=6)))
    w = services.worker
    slow = DetectionWorker(w.sessions, w.photos, w.detector, w.model_id, w.taxonomy, lease=timedelta(seconds=-1))
    (stale,) = slow.claim(1)  # its lease is already over...
    (claim,) = w.claim(1)  # ...so a live worker takes the job over
    job_id = stale.job_id
    assert claim.job_id == job_id and claim.attempt == stale.attempt + 1
    slow._fail(stale, "too late", final=True)  # the stale worker wakes up: ignored
    with w.sessions() as s:
        assert s.get(PhotoJob, job_id).state == "running"
    slow._complete(stale, w.detector.predict_one(jpeg_image()))  # ...and cannot complete it either
    with w.sessions() as s:
        assert s.get(PhotoJob, job_id).state == "running"
    w._complete(claim, w.detector.predict_one(jpeg_image()))
    with w.sessions() as s:
        assert s.get(PhotoJob, job_id).state == "done"


def test_a_photo_that_keeps_killing_the_worker_is_failed_not_retried_forever(client, services):
    listing_id = make_listing(client)
    photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=7))).json()["photos"][0]["photo_id"]
    w = services.worker
    for _ in range(w.max_attempts):  # each claim "crashes": the lease runs out every time
        crashed = DetectionWorker(w.sessions, w.photos, w.detector, w.model_id, w.taxonomy, lease=timedelta(seconds=-1))
        assert len(crashed.claim(1)) == 1
    assert w.claim(1) == []
    detail = client.get(f"/api/v1/photos/{photo_id}").json()
    assert detail["job_state"] == "failed" and "--retry-failed" in detail["error"]


def jpeg_image():
    import io

    from PIL import Image

    return Image.open(io.BytesIO(jpeg(seed=8))).convert("RGB")
