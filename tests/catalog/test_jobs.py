"""The job queue (``catalog.jobs``) on SQLite and PostgreSQL: enqueue, claim, settle, give back, counts; and many
workers, in threads and in separate processes, never taking one job twice."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from roomscan.catalog import jobs
from roomscan.catalog.jobs import JobQueue, JobState
from roomscan.catalog.models import Listing, ListingPhoto, Model, Photo, PhotoJob


def _photos(Session, n: int) -> int:  # type: ignore[no-untyped-def]
    """``n`` photos on one listing and a model; returns the model id (no jobs yet)."""
    with Session.begin() as session:
        model = Model(key="m@1", backend="test", name="m", version="1", taxonomy="t")
        listing = Listing(title="flat")
        session.add_all([model, listing])
        session.flush()
        for i in range(n):
            photo = Photo(sha256=f"{i:064x}", format="JPEG", width=1, height=1, size_bytes=1)
            session.add(photo)
            session.flush()
            session.add(ListingPhoto(listing_id=listing.id, photo_id=photo.id, position=i))
        return model.id


def test_enqueue_is_idempotent_and_enqueue_missing_queues_each_photo_once(catalog):
    _, Session = catalog
    model_id = _photos(Session, 5)
    with Session.begin() as session:
        first = jobs.enqueue(session, 1, model_id)
        assert jobs.enqueue(session, 1, model_id).id == first.id
        assert jobs.enqueue_missing(session, model_id) == 4
        assert jobs.enqueue_missing(session, model_id) == 0
    with Session() as session:
        assert jobs.counts(session, model_id) == {JobState.PENDING: 5, JobState.RUNNING: 0, JobState.DONE: 0,
                                                  JobState.FAILED: 0}
        assert jobs.counts(session, model_id + 1) == dict.fromkeys(JobState, 0)


def test_a_claim_is_settled_once_and_only_by_its_holder(catalog):
    _, Session = catalog
    model_id = _photos(Session, 3)
    with Session.begin() as session:
        jobs.enqueue_missing(session, model_id)
    queue = JobQueue(Session, model_id)
    claims = queue.claim(2)
    assert [c.attempt for c in claims] == [1, 1] and len({c.job_id for c in claims}) == 2
    with Session.begin() as session:
        assert queue.complete(session, claims[0])
    with Session.begin() as session:
        assert not queue.complete(session, claims[0])  # already done: a second completion changes nothing
    assert queue.fail(claims[1], "boom", final=False)  # back to pending, attempt counted
    assert queue.release(queue.claim(5)) == 2  # given back unworked: attempts not counted
    with Session() as session:
        states = dict(session.execute(select(PhotoJob.id, PhotoJob.state)).all())
        attempts = dict(session.execute(select(PhotoJob.id, PhotoJob.attempts)).all())
    assert Counter(states.values()) == {"done": 1, "pending": 2}
    assert attempts[claims[1].job_id] == 1 and attempts[claims[0].job_id] == 1


def test_a_dead_workers_expired_lease_is_claimed_again_and_its_late_result_ignored(catalog):
    _, Session = catalog
    model_id = _photos(Session, 1)
    with Session.begin() as session:
        jobs.enqueue_missing(session, model_id)
    dead = JobQueue(Session, model_id, lease=timedelta(seconds=-1), holder="elsewhere/1/1/dead")
    (stale,) = dead.claim(1)
    live = JobQueue(Session, model_id)
    (claim,) = live.claim(1)
    assert claim.job_id == stale.job_id and claim.attempt == 2
    with Session.begin() as session:
        assert not dead.complete(session, stale)
    with Session.begin() as session:
        assert live.complete(session, claim)


def test_retry_failed_queues_failed_jobs_again(catalog):
    _, Session = catalog
    model_id = _photos(Session, 2)
    with Session.begin() as session:
        jobs.enqueue_missing(session, model_id)
    queue = JobQueue(Session, model_id)
    for claim in queue.claim(2):
        queue.fail(claim, "bad photo", final=True)
    with Session.begin() as session:
        assert jobs.retry_failed(session, model_id) == 2
    assert len(queue.claim(5)) == 2


def test_concurrent_workers_never_claim_one_job_twice(catalog):
    _, Session = catalog
    model_id = _photos(Session, 120)
    with Session.begin() as session:
        jobs.enqueue_missing(session, model_id)
    taken: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        queue = JobQueue(Session, model_id, holder=f"test/{i}/{i}/x")
        while claims := queue.claim(3):
            for claim in claims:
                with Session.begin() as session:
                    assert queue.complete(session, claim)
            with lock:
                taken.extend(c.job_id for c in claims)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(1, 121))
    with Session() as session:
        assert jobs.counts(session, model_id)[JobState.DONE] == 120


_CLAIMER = """
import sys
from roomscan.catalog.db import open_catalog
from roomscan.catalog.jobs import JobQueue
_, Session = open_catalog(sys.argv[1])
queue = JobQueue(Session, int(sys.argv[2]))
while claims := queue.claim(2):
    for claim in claims:
        with Session.begin() as session:
            if not queue.complete(session, claim):
                raise SystemExit(f"lost job {claim.job_id}")
        print(claim.job_id, flush=True)
"""


@pytest.mark.slow
def test_worker_processes_share_the_queue_each_job_done_once(catalog, catalog_url, tmp_path: Path):
    _, Session = catalog
    model_id = _photos(Session, 60)
    with Session.begin() as session:
        jobs.enqueue_missing(session, model_id)
    script = tmp_path / "claimer.py"
    script.write_text(_CLAIMER)
    procs = [subprocess.Popen([sys.executable, str(script), catalog_url, str(model_id)], stdout=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    done = [int(line) for out in outputs for line in out.split()]
    assert sorted(done) == list(range(1, 61))  # every job once, none twice
