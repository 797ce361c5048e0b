"""Real roomscan processes on one catalog, for the system tests and ``benchmarks/bench_load.py``.

A :class:`Cluster` starts ``roomscan serve --no-worker`` and ``roomscan worker --watch`` processes (the real CLI, on
the tiny test model) against one database and one photo store, drives uploads at the server over loopback, kills
processes with SIGKILL, and audits the catalog afterwards.

Each process runs the CLI through :data:`LAUNCHER`, which only observes (and, when told, stops inside
detection). It appends what the process did to ``<events>/<pid>.events``, one line per event, so the test counts
work across processes without trusting the code under test to count it:

* ``claim JOB ATTEMPT``: the queue handed this process the job (``JobQueue.claim`` returned it);
* ``done JOB PHOTO ATTEMPT NDETS``: a completion *committed* (``JobQueue.complete`` returned True and
  ``store.save_detections`` stored NDETS boxes in the transaction, logged from the session's ``after_commit``);
* ``detect N``: the detector was called on N images.

``SYSTEM_DETECT_SECONDS`` makes each detector call take that much longer (a worker is then mostly inside a
batch); ``SYSTEM_STOP_IN_DETECTION`` makes the first one block until the process is killed.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

API_KEY = "system-test-key"
HEADERS = {"X-API-Key": API_KEY}

# `roomscan ...` with observation hooks: see the module docstring. Argument 1 is the event folder.
LAUNCHER = r"""
import os, pathlib, sys, time

events = pathlib.Path(sys.argv[1])
log_file = open(events / f"{os.getpid()}.events", "a", buffering=1)

def log(line):
    log_file.write(line + "\n")

from sqlalchemy import event
from sqlalchemy.orm import Session

from roomscan import backends
from roomscan.catalog import jobs, store

real_claim, real_complete, real_save = jobs.JobQueue.claim, jobs.JobQueue.complete, store.save_detections

def claim(self, limit):
    claims = real_claim(self, limit)
    for c in claims:
        log(f"claim {c.job_id} {c.attempt}")
    return claims

def complete(self, session, c):
    ok = real_complete(self, session, c)
    if ok:
        session.info.setdefault("system_done", []).append(c)
    return ok

def save_detections(session, photo_id, model_id, dets):
    session.info.setdefault("system_dets", {})[photo_id] = len(dets)
    return real_save(session, photo_id, model_id, dets)

@event.listens_for(Session, "after_commit")
def committed(session):
    dets = session.info.pop("system_dets", {})
    for c in session.info.pop("system_done", []):
        log(f"done {c.job_id} {c.photo_id} {c.attempt} {dets.get(c.photo_id, -1)}")

@event.listens_for(Session, "after_rollback")
def rolled_back(session):
    session.info.pop("system_dets", None)
    session.info.pop("system_done", None)

jobs.JobQueue.claim, jobs.JobQueue.complete, store.save_detections = claim, complete, save_detections

real_get_detector = backends.get_detector

def get_detector(*args, **kwargs):
    detector = real_get_detector(*args, **kwargs)
    real_predict = detector.predict

    def predict(images, batch_size=4):
        log(f"detect {len(images)}")
        time.sleep(float(os.environ.get("SYSTEM_DETECT_SECONDS", "0")))
        if os.environ.get("SYSTEM_STOP_IN_DETECTION"):
            (events / f"{os.getpid()}.in-detection").write_text("")
            time.sleep(3600)  # until killed
        return real_predict(images, batch_size=batch_size)

    detector.predict = predict
    return detector

backends.get_detector = get_detector

from roomscan.cli import main

main(sys.argv[2:])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jpeg(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A photo-like JPEG; distinct seeds give distinct bytes."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(40, 220, 3)
    arr = np.clip(rng.normal(0, 40, (size[1], size[0], 3)) + colour, 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident memory of ``pid`` in KiB, from /proc (VmRSS, VmHWM)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    base: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


class Cluster:
    """Processes of one test on one catalog (``url``) and one photo store (``home/photos``)."""

    def __init__(self, workdir: Path, url: str, model_dir: Path, taxonomy: Path, **env: str) -> None:
        self.workdir = workdir
        self.url = url
        self.model_dir = model_dir
        self.taxonomy = taxonomy
        self.home = workdir / "home"
        self.photo_root = self.home / "photos"
        self.events = workdir / "events"
        self.events.mkdir(parents=True, exist_ok=True)
        self.extra_env = env
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "HF_HUB_OFFLINE": "1", "ROOMSCAN_HOME": str(self.home),
                "ROOMSCAN_DATABASE_URL": self.url, "ROOMSCAN_API_KEY": API_KEY, "ROOMSCAN_DEVICE": "cpu",
                "OMP_NUM_THREADS": "1", **self.extra_env, **extra}

    def _start(self, name: str, args: Sequence[str], **env: str) -> Proc:
        log = self.workdir / f"{name}.log"
        popen = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(self.events), *args,
             "--model", str(self.model_dir), "--taxonomy", str(self.taxonomy)],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=self.env(**env),
        )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def serve(self, name: str = "server", *, worker: bool = False, **env: str) -> Proc:
        """Start ``roomscan serve --no-worker`` (``worker``: with its detection thread) on a free loopback port
        (wait with :meth:`ready`)."""
        port = free_port()
        args = ["serve", "--worker" if worker else "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
        proc = self._start(name, args, **env)
        proc.base = f"http://127.0.0.1:{port}"
        return proc

    def worker(self, name: str, *, batch_size: int = 2, poll: float = 0.2, stop_in_detection: bool = False,
               detect_seconds: float = 0.0) -> Proc:
        """Start ``roomscan worker --watch``; ``stop_in_detection``: it blocks in its first detector call;
        ``detect_seconds``: each detector call takes that much longer."""
        env = {"SYSTEM_DETECT_SECONDS": str(detect_seconds)}
        if stop_in_detection:
            env["SYSTEM_STOP_IN_DETECTION"] = "1"
        return self._start(name, ["worker", "--watch", "--batch-size", str(batch_size), "--poll", str(poll)], **env)

    def ready(self, *procs: Proc, timeout: float = 120) -> None:
        """Wait until each server answers /healthz and each worker has said it is serving the queue."""
        deadline = time.monotonic() + timeout
        for proc in procs:
            while True:
                assert proc.popen.poll() is None, f"{proc.name} ended:\n{proc.tail()}"
                assert time.monotonic() < deadline, f"{proc.name} did not start:\n{proc.tail()}"
                if proc.base:
                    try:
                        if httpx.get(f"{proc.base}/healthz", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                elif "Ctrl-C stops" in proc.log.read_text(errors="replace"):
                    break
                time.sleep(0.1)

    def kill(self, proc: Proc) -> None:
        """SIGKILL, then reap (as its parent, a shell or systemd, would): its pid names no process any more."""
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait()

    def stop(self, proc: Proc, timeout: float = 60) -> str:
        """SIGTERM (a worker finishes its batch); returns its output."""
        proc.popen.send_signal(signal.SIGTERM)
        proc.popen.wait(timeout=timeout)
        return proc.tail()

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
            proc.popen.wait()

    # -- reading back ----------------------------------------------------------------------------------------------
    def read_events(self) -> list[tuple[int, list[str]]]:
        """Every event line of every process: ``(pid, words)``."""
        out = []
        for path in sorted(self.events.glob("*.events")):
            pid = int(path.stem)
            out.extend((pid, line.split()) for line in path.read_text().splitlines() if line.strip())
        return out

    def files(self) -> list[Path]:
        return [p for p in self.photo_root.glob("*/*") if p.is_file()]

    def backdate_files(self, age: timedelta = timedelta(minutes=20)) -> None:
        """Age every photo file past the start-up sweep's grace (10 minutes), as a restart much later would."""
        old = time.time() - age.total_seconds()
        for path in self.files():
            os.utime(path, (old, old))

    def wait_drained(self, timeout: float = 120) -> float:
        """Wait until every job is done or failed; returns the seconds it took."""
        from sqlalchemy import func, select

        from roomscan.catalog.db import make_engine
        from roomscan.catalog.models import PhotoJob

        engine = make_engine(self.url)
        started = time.monotonic()
        try:
            while True:
                with engine.connect() as con:
                    left = con.scalar(
                        select(func.count()).where(PhotoJob.state.in_(("pending", "running")))
                    )
                if left == 0:
                    return time.monotonic() - started
                assert time.monotonic() - started < timeout, f"{left} job(s) still queued after {timeout} s"
                time.sleep(0.2)
        finally:
            engine.dispose()


# -- uploads ---------------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    """One upload request's outcome: its final answer (after any 503 retries) and every attempt's latency."""

    listing_id: int
    shas: list[str]
    status: int | None = None  # None: no answer (the connection broke)
    photos: list[dict] = field(default_factory=list)
    error: str = ""
    latencies: list[float] = field(default_factory=list)  # seconds, one per attempt that was answered
    total: float = 0.0  # seconds from the first attempt to the final answer, waits after 503s included
    refusals: int = 0  # 503s with Retry-After before the final answer
    refusals_without_retry_after: int = 0


def upload_requests(listing_ids: Sequence[int], n: int, *, seed: int = 0, size: tuple[int, int] = (160, 120),
                    duplicate_every: int = 5) -> list[tuple[int, list[tuple[str, bytes]]]]:
    """``n`` single-photo uploads spread over ``listing_ids``; every ``duplicate_every``-th repeats the bytes of
    an earlier upload, alternately to another listing (a shared photo) and to the same listing (a re-upload)."""
    import hashlib

    out: list[tuple[int, list[tuple[str, bytes]]]] = []
    for i in range(n):
        listing_id = listing_ids[i % len(listing_ids)]
        if duplicate_every and i and i % duplicate_every == 0:
            j = i - duplicate_every // 2 - 1
            earlier_listing, earlier_files = out[j]
            same = (i // duplicate_every) % 2 == 0
            out.append((earlier_listing if same else listing_id, earlier_files))
            continue
        data = jpeg(seed * 100_000 + i, size)
        out.append((listing_id, [(f"{hashlib.sha256(data).hexdigest()[:8]}.jpg", data)]))
    return out


def run_uploads(
    base: str,
    requests: Sequence[tuple[int, list[tuple[str, bytes]]]],
    *,
    concurrency: int,
    retries_on_503: int = 0,
    on_answer: Callable[[Answer], None] | None = None,
    timeout: float = 60,
) -> list[Answer]:
    """Send the uploads with ``concurrency`` in flight at once (asyncio, in a thread of its own); a 503 is
    retried after its Retry-After up to ``retries_on_503`` times."""
    import hashlib

    async def main() -> list[Answer]:
        limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, limits=limits, timeout=timeout) as client:

            async def one(listing_id: int, files: list[tuple[str, bytes]]) -> Answer:
                answer = Answer(listing_id, [hashlib.sha256(data).hexdigest() for _, data in files])
                async with gate:
                    first = time.monotonic()
                    for attempt in range(retries_on_503 + 1):
                        started = time.monotonic()
                        try:
                            r = await client.post(
                                f"/api/v1/listings/{listing_id}/photos",
                                files=[("files", (name, data, "image/jpeg")) for name, data in files],
                            )
                        except httpx.TransportError as exc:
                            answer.status, answer.error = None, f"{type(exc).__name__}: {exc}"
                            break
                        answer.latencies.append(time.monotonic() - started)
                        answer.status = r.status_code
                        if r.status_code == 503:
                            retry_after = r.headers.get("retry-after")
                            if not retry_after:
                                answer.refusals_without_retry_after += 1
                                break
                            if attempt < retries_on_503:
                                answer.refusals += 1
                                await asyncio.sleep(float(retry_after))
                                continue
                        if 200 <= r.status_code < 300:
                            answer.photos = r.json()["photos"]
                        else:
                            answer.error = r.text[:300]
                        break
                    answer.total = time.monotonic() - first
                if on_answer:
                    on_answer(answer)
                return answer

            return await asyncio.gather(*(one(lid, files) for lid, files in requests))

    result: list[Answer] = []
    # A thread of its own: the caller may already run an event loop (Playwright's sync API in the full suite).
    thread = threading.Thread(target=lambda: result.extend(asyncio.run(main())))
    thread.start()
    thread.join()
    return result


def make_listings(base: str, n: int) -> list[int]:
    ids = []
    for i in range(n):
        r = httpx.post(f"{base}/api/v1/listings", json={"title": f"Flat {i}", "claimed_amenities": ["bed"]},
                       headers=HEADERS, timeout=30)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def latency_summary(answers: Iterable[Answer]) -> dict[str, float]:
    """p50/p99/mean, in ms, of the answered attempts that were accepted (2xx), and (``total_*``) of those
    uploads from their first attempt, retries after 503s included."""
    accepted = [a for a in answers if a.status and 200 <= a.status < 300]
    last = [a.latencies[-1] * 1000 for a in accepted]
    total = [a.total * 1000 for a in accepted]
    return {"n": len(accepted), "p50_ms": percentile(last, 50), "p99_ms": percentile(last, 99),
            "mean_ms": statistics.fmean(last) if last else float("nan"),
            "total_p50_ms": percentile(total, 50), "total_p99_ms": percentile(total, 99)}


# -- the audit -------------------------------------------------------------------------------------------------------
@dataclass
class Audit:
    """What the catalog, the photo store and the processes' events hold after a run (see :func:`audit`)."""

    photos: dict[int, str]  # photo id -> sha256
    files: set[str]
    temp_files: list[str]
    attachments: Counter[tuple[int, int]]  # (listing, photo) -> rows
    jobs: dict[int, tuple[int, str, int]]  # job id -> (photo id, state, attempts)
    jobs_per_photo: Counter[int]
    detection_rows: Counter[int]  # photo id -> detection rows
    duplicate_detection_rows: int
    claims: Counter[int]  # job id -> claims seen in events
    completions: Counter[int]  # job id -> committed completions seen in events
    completed_dets: dict[int, int]  # photo id -> boxes the committed completion stored
    detected_images: int

    def check(self, answers: Iterable[Answer] = ()) -> None:
        """The invariants every run must keep, whatever was killed: each accepted photo stored, attached and
        detected once, every row with its file and job, nothing half-written, no litter."""
        assert not self.temp_files, f"unfinished upload files left: {self.temp_files}"
        assert self.files == set(self.photos.values()), (
            f"files without a row: {sorted(self.files - set(self.photos.values()))}; "
            f"rows without a file: {sorted(set(self.photos.values()) - self.files)}"
        )
        assert len(set(self.photos.values())) == len(self.photos), "one sha256 stored twice"
        assert all(n == 1 for n in self.attachments.values()), "a photo attached twice to one listing"
        assert {photo for _, photo in self.attachments} == set(self.photos), "a photo on no listing"
        assert all(self.jobs_per_photo[p] == 1 for p in self.photos), "a photo without exactly one job"
        not_done = {j: v for j, v in self.jobs.items() if v[1] != "done"}
        assert not not_done, f"jobs not done: {not_done}"
        assert self.duplicate_detection_rows == 0, f"{self.duplicate_detection_rows} duplicated detection rows"
        twice = {j: n for j, n in self.completions.items() if n != 1}
        assert not twice, f"jobs completed more than once: {twice}"
        assert set(self.completions) == set(self.jobs), (
            f"done jobs without a committed completion: {sorted(set(self.jobs) - set(self.completions))}"
        )
        for photo, n in self.completed_dets.items():  # the boxes of the one completion, stored once
            assert self.detection_rows[photo] == n, (photo, self.detection_rows[photo], n)
        by_sha = {sha: pid for pid, sha in self.photos.items()}
        for answer in answers:
            if answer.status is None or not 200 <= answer.status < 300:
                continue
            for photo in answer.photos:
                assert by_sha.get(photo["sha256"]) == photo["photo_id"], f"accepted photo {photo} not stored"
                assert self.attachments[(answer.listing_id, photo["photo_id"])] == 1, f"{photo} not attached"

    def check_each_job_claimed_once(self) -> None:
        """No job was handed out twice (a run in which no worker died and the database stayed up)."""
        assert all(attempts == 1 for _, _, attempts in self.jobs.values()), {
            j: v for j, v in self.jobs.items() if v[2] != 1}
        assert all(self.claims[j] == 1 for j in self.jobs), {j: self.claims[j] for j in self.jobs if self.claims[j] != 1}
        assert self.detected_images == len(self.jobs), (self.detected_images, len(self.jobs))


def audit(cluster: Cluster) -> Audit:
    """Read the catalog, the photo store and the event logs of ``cluster``."""
    from sqlalchemy import func, select

    from roomscan.catalog.db import make_engine
    from roomscan.catalog.models import Detection, ListingPhoto, Photo, PhotoJob

    engine = make_engine(cluster.url)
    try:
        with engine.connect() as con:
            photos = dict(con.execute(select(Photo.id, Photo.sha256)).all())
            attachments = Counter(
                {(lid, pid): n for lid, pid, n in con.execute(
                    select(ListingPhoto.listing_id, ListingPhoto.photo_id, func.count())
                    .group_by(ListingPhoto.listing_id, ListingPhoto.photo_id)).all()}
            )
            jobs = {jid: (pid, state, attempts) for jid, pid, state, attempts in con.execute(
                select(PhotoJob.id, PhotoJob.photo_id, PhotoJob.state, PhotoJob.attempts)).all()}
            rows = Counter(dict(con.execute(
                select(Detection.photo_id, func.count()).group_by(Detection.photo_id)).all()))
            key = (Detection.photo_id, Detection.model_id, Detection.amenity, Detection.score,
                   Detection.x1, Detection.y1, Detection.x2, Detection.y2)
            duplicated = sum(n - 1 for *_, n in con.execute(
                select(*key, func.count()).group_by(*key).having(func.count() > 1)).all())
    finally:
        engine.dispose()
    claims: Counter[int] = Counter()
    completions: Counter[int] = Counter()
    completed_dets: dict[int, int] = {}
    detected = 0
    for _, words in cluster.read_events():
        if words[0] == "claim":
            claims[int(words[1])] += 1
        elif words[0] == "done":
            completions[int(words[1])] += 1
            completed_dets[int(words[2])] = int(words[4])
        elif words[0] == "detect":
            detected += int(words[1])
    all_files = cluster.files()
    return Audit(
        photos=photos,
        files={p.name for p in all_files if not p.name.startswith(".")},
        temp_files=[p.name for p in all_files if p.name.startswith(".")],
        attachments=attachments,
        jobs=jobs,
        jobs_per_photo=Counter(pid for pid, _, _ in jobs.values()),
        detection_rows=rows,
        duplicate_detection_rows=duplicated,
        claims=claims,
        completions=completions,
        completed_dets=completed_dets,
        detected_images=detected,
    )
