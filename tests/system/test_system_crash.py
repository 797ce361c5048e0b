"""kill -9 in the middle of the work, on PostgreSQL, with real processes: a server killed while uploads are in
flight, a worker killed inside detection. After a restart, every upload that was answered 2xx is stored and
detected exactly once, and the catalog holds no half-written rows and the photo store no litter."""

from __future__ import annotations

import threading
import time

import pytest
from _cluster import Answer, audit, make_listings, run_uploads, upload_requests
from sqlalchemy import select

from roomscan.catalog.db import make_engine
from roomscan.catalog.models import PhotoJob


@pytest.mark.slow
@pytest.mark.postgres
def test_a_server_killed_mid_upload_loses_nothing_it_accepted_and_leaves_nothing_half_written(cluster):
    first = cluster.serve("first", worker=True)  # its detection thread may hold jobs when it dies, too
    cluster.ready(first)
    listings = make_listings(first.base, 3)
    # Larger photos, two per request: each upload spends a while decoding, hashing and writing files.
    requests = upload_requests(listings, 40, size=(480, 360), duplicate_every=6)
    requests = [(lid, files + other) for (lid, files), (_, other) in zip(requests[::2], requests[1::2], strict=True)]
    accepted_enough = threading.Event()
    answered: list[Answer] = []

    def count(answer: Answer) -> None:
        answered.append(answer)
        if sum(a.status == 202 for a in answered) >= 4:
            accepted_enough.set()

    killer = threading.Thread(target=lambda: (accepted_enough.wait(60), cluster.kill(first)))
    killer.start()
    answers = run_uploads(first.base, requests, concurrency=10, on_answer=count)
    killer.join()
    accepted = [a for a in answers if a.status == 202]
    unanswered = [a for a in answers if a.status is None]
    assert len(accepted) >= 4 and unanswered, "the server was to be killed while uploads were in flight"
    assert all(a.status in (202, None) for a in answers), [a.error for a in answers if a.status not in (202, None)]

    cluster.backdate_files()  # the restart comes after the start-up sweep's grace period
    second = cluster.serve("second", worker=True)
    cluster.ready(second)
    cluster.wait_drained(timeout=60)
    cluster.stop(second)
    result = audit(cluster)
    result.check(accepted)  # no photo without its file, listing or done job; no file without its row
    swept = [line for line in second.tail(100_000).splitlines() if line.startswith("photo store")]
    print(f"\n{len(accepted)} uploads accepted, {len(unanswered)} cut off by the kill; {len(result.photos)} photos "
          f"stored; jobs claimed twice: {sum(n > 1 for n in result.claims.values())}; {' '.join(swept)}")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_killed_mid_job_is_taken_over_at_once_and_each_job_completed_once(cluster):
    from fastapi.testclient import TestClient

    from roomscan.api import create_app
    from roomscan.backends import get_detector
    from roomscan.services import open_services
    from roomscan.settings import Settings

    settings = Settings(home=cluster.home, database_url=cluster.url, api_key="k")
    detector = get_detector(str(cluster.model_dir), taxonomy=str(cluster.taxonomy), device="cpu")
    services = open_services(settings, detector=detector)  # the workers' model: one queue
    with TestClient(create_app(services=services, start_worker=False)) as client:
        listing = client.post("/api/v1/listings", json={"title": "Villa"}, headers={"X-API-Key": "k"}).json()["id"]
        from _cluster import jpeg

        files = [("files", (f"{i}.jpg", jpeg(seed=500 + i), "image/jpeg")) for i in range(7)]
        r = client.post(f"/api/v1/listings/{listing}/photos", files=files, headers={"X-API-Key": "k"})
        assert r.status_code == 202, r.text
    services.close()

    doomed = cluster.worker("doomed", batch_size=4, stop_in_detection=True)
    marker = cluster.events / f"{doomed.pid}.in-detection"
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert doomed.popen.poll() is None and time.monotonic() < deadline, doomed.tail()
        time.sleep(0.05)
    engine = make_engine(cluster.url)
    with engine.connect() as con:
        held = con.execute(select(PhotoJob.id, PhotoJob.leased_until).where(PhotoJob.state == "running")).all()
    assert len(held) == 4
    cluster.kill(doomed)

    successor = cluster.worker("successor", batch_size=4)
    cluster.wait_drained(timeout=60)
    said = cluster.stop(successor)
    with engine.connect() as con:
        jobs = {j: (state, attempts, updated) for j, state, attempts, updated in con.execute(
            select(PhotoJob.id, PhotoJob.state, PhotoJob.attempts, PhotoJob.updated_at)).all()}
    engine.dispose()
    # Taken over at once: finished before the dead worker's lease (renewed until its death) would have run out.
    for job_id, leased_until in held:
        assert jobs[job_id][0] == "done" and jobs[job_id][1] == 2
        assert jobs[job_id][2] < leased_until, (jobs[job_id], leased_until)
    assert sorted(attempts for _, attempts, _ in jobs.values()) == [1, 1, 1, 2, 2, 2, 2]
    assert "took over 4 photo(s)" in " ".join(said.split()), said
    result = audit(cluster)
    result.check()  # each job completed once (the dead worker committed nothing), its boxes stored once
    assert result.detected_images == 4 + 7  # the dead worker's batch, then every photo once by its successor
