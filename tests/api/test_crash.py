"""A process killed mid-way (kill -9) loses nothing accepted and leaves nothing behind once restarted.

The end-to-end tests run real processes (a uvicorn server, ``roomscan worker``) on a catalog in ``tmp_path`` and
kill them with SIGKILL at a moment the child announces (a marker file) while it waits there: inside detection,
or inside writing an upload's second file. No sleep-and-hope: the child blocks until it is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from api_helpers import API_KEY, HEADERS, jpeg, make_listing, upload
from sqlalchemy import func, select, update

from roomscan.catalog.db import open_catalog
from roomscan.catalog.models import ListingPhoto, Photo, PhotoJob
from roomscan.catalog.photos import PhotoStore
from roomscan.worker import DetectionWorker, lease_holder

# -- taking over a gone holder's jobs (in process) --------------------------------------------------------------


def _hold(services, holder: str) -> int:  # type: ignore[no-untyped-def]
    """Claim the one queued job as if ``holder`` had (its lease still running). Returns the job id."""
    w = services.worker
    other = DetectionWorker(w.sessions, w.photos, w.detector, w.model_id, w.taxonomy)
    job_id = other.claim(1)[0].job_id
    with w.sessions() as session:
        session.execute(update(PhotoJob).where(PhotoJob.id == job_id).values(leased_by=holder))
        session.commit()
    return job_id


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def _host_part() -> str:
    return lease_holder().rsplit("/", 2)[0]


@pytest.mark.parametrize(
    ("holder", "taken_over"),
    [
        (lambda: f"{_host_part()}/{_gone_pid()}/0badb007", True),  # killed: its pid is gone
        (lambda: f"{_host_part()}/{os.getpid()}/0badb007", True),  # our pid, another boot: the process before us
        (lambda: f"{_host_part()}/{os.getppid()}/0badb007", False),  # a live process of this host
        (lambda: lease_holder(), False),  # this very process (another worker in it)
        (lambda: f"other-host/{_host_part().rsplit('/', 1)[1]}/{_gone_pid()}/0badb007", False),  # its lease decides
        (lambda: f"{_host_part().rsplit('/', 1)[0]}/1/{_gone_pid()}/0badb007", False),  # another pid namespace
    ],
    ids=["gone-pid", "earlier-boot", "live-pid", "this-process", "other-host", "other-pid-namespace"],
)
def test_a_running_job_is_taken_over_at_once_only_when_its_holder_is_gone(client, services, holder, taken_over):
    listing_id = make_listing(client)
    upload(client, listing_id, ("a.jpg", jpeg(seed=11)))
    job_id = _hold(services, holder())
    w = services.worker
    assert [c.job_id for c in w.claim(1)] == ([job_id] if taken_over else [])
    assert w.stats.reclaimed == int(taken_over)


def test_a_photo_that_kills_the_worker_every_time_is_failed_not_taken_over_forever(client, services):
    listing_id = make_listing(client)
    photo_id = upload(client, listing_id, ("a.jpg", jpeg(seed=12))).json()["photos"][0]["photo_id"]
    w = services.worker
    for _ in range(w.max_attempts):
        _hold(services, f"{_host_part()}/{_gone_pid()}/0badb007")  # claimed, then that process was killed
    assert w.claim(1) == []
    detail = client.get(f"/api/v1/photos/{photo_id}").json()
    assert detail["job_state"] == "failed" and "--retry-failed" in detail["error"]


def test_a_worker_done_with_a_job_leaves_no_holder(client, services):
    listing_id = make_listing(client)
    upload(client, listing_id, ("a.jpg", jpeg(seed=13)))
    assert services.worker.run_until_idle().done == 1
    with services.sessions() as session:
        assert session.execute(select(PhotoJob.state, PhotoJob.leased_by, PhotoJob.leased_until)).all() == [
            ("done", None, None)
        ]


class _Slow:
    """The detector, taking as long as the test says (longer than the lease)."""

    def __init__(self, detector) -> None:  # type: ignore[no-untyped-def]
        self.taxonomy, self.info, self.inner = detector.taxonomy, detector.info, detector
        self.started, self.release = threading.Event(), threading.Event()

    def predict(self, images, batch_size=4):  # type: ignore[no-untyped-def]
        self.started.set()
        assert self.release.wait(60)
        return self.inner.predict(images, batch_size=batch_size)


def test_a_batch_slower_than_the_lease_keeps_its_jobs(client, services):
    # The lease is renewed while the batch is detected: it bounds how long a dead worker's jobs wait, not how
    # long a live worker may take.
    listing_id = make_listing(client)
    upload(client, listing_id, ("a.jpg", jpeg(seed=14)))
    w = services.worker
    detector = _Slow(w.detector)
    slow = DetectionWorker(w.sessions, w.photos, detector, w.model_id, w.taxonomy, lease=timedelta(seconds=2))
    working = threading.Thread(target=slow.process_once)
    working.start()
    try:
        assert detector.started.wait(60)
        time.sleep(4)  # two leases: unrenewed, the job would be anyone's now
        assert w.claim(1) == []
    finally:
        detector.release.set()
        working.join(timeout=60)
    assert slow.stats.done == 1
    assert client.get(f"/api/v1/listings/{listing_id}/amenities").json()["processing"]["done"] == 1


# -- kill -9, restart (real processes) --------------------------------------------------------------------------

# A server like `roomscan serve`, which can be told to stop for good inside detection or inside writing the
# second file of an upload, after writing a marker file: the test kills it there.
_SERVER = r"""
import os, pathlib, socket, sys, time

import uvicorn

from roomscan.api import create_app
from roomscan.backends import get_detector
from roomscan.settings import Settings

marks = pathlib.Path(os.environ["CRASH_MARKS"])
stops = os.environ.get("CRASH_STOP_IN", "").split(",")
detector = get_detector(os.environ["CRASH_MODEL"], taxonomy=os.environ["CRASH_TAXONOMY"], device="cpu")

def stop_here(name):
    (marks / name).write_text(str(os.getpid()))
    time.sleep(3600)  # until killed

if "detection" in stops:
    detector.predict = lambda images, batch_size=4: stop_here("detection")
if "upload" in stops:
    real_fsync, synced = os.fsync, []
    def fsync(fd):  # photo files are written to a temp file, synced, then renamed into place
        synced.append(fd)
        if len(synced) == int(os.environ["CRASH_STOP_AT_FILE"]):
            stop_here("upload")
        real_fsync(fd)
    os.fsync = fsync

app = create_app(Settings.from_env(), detector=detector)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
(marks / "port").write_text(str(sock.getsockname()[1]))
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"""


class Catalog:
    """One catalog home shared by the processes of a test, and the processes started on it."""

    def __init__(self, tmp_path: Path, model_dir: Path) -> None:
        from _models import tiny_taxonomy

        self.home = tmp_path / "home"
        self.url = f"sqlite:///{tmp_path / 'catalog.db'}"
        self.taxonomy = tmp_path / "taxonomy.yaml"
        tiny_taxonomy().save(self.taxonomy)
        self.model_dir = model_dir
        self.tmp_path = tmp_path
        self.children: list[subprocess.Popen[bytes]] = []
        self.photos = PhotoStore(self.home / "photos")

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "HF_HUB_OFFLINE": "1", "ROOMSCAN_HOME": str(self.home), "ROOMSCAN_DATABASE_URL": self.url,
                "ROOMSCAN_API_KEY": API_KEY, "ROOMSCAN_DEVICE": "cpu", **extra}

    def serve(self, name: str, stop_in: str = "", stop_at_file: int = 0) -> tuple[subprocess.Popen[bytes], str, Path]:
        """Start a server; returns it, its base URL once /healthz answers, and the folder of its marker files.

        ``stop_in``: ``detection`` and/or ``upload`` (writing the ``stop_at_file``-th photo file of its life)."""
        marks = self.tmp_path / name
        marks.mkdir()
        log = (self.tmp_path / f"{name}.log").open("wb")
        child = subprocess.Popen(
            [sys.executable, "-c", _SERVER], stdout=log, stderr=subprocess.STDOUT,
            env=self.env(CRASH_MARKS=str(marks), CRASH_STOP_IN=stop_in, CRASH_STOP_AT_FILE=str(stop_at_file), CRASH_MODEL=str(self.model_dir),
                         CRASH_TAXONOMY=str(self.taxonomy)),
        )
        self.children.append(child)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert child.poll() is None, self.log(name)
            if (marks / "port").exists():
                base = f"http://127.0.0.1:{(marks / 'port').read_text()}"
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        return child, base, marks
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"server {name} did not start:\n{self.log(name)}")

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")[-4000:]

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()


@pytest.fixture
def home(tmp_path: Path, tiny_owlv2_dir: Path) -> Iterator[Catalog]:
    cat = Catalog(tmp_path, tiny_owlv2_dir)
    try:
        yield cat
    finally:
        cat.close()


def _wait_for(path: Path, child: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert child.poll() is None, "the server ended before reaching the point where the test kills it"
        assert time.monotonic() < deadline, f"the server never reached {path.name}"
        time.sleep(0.05)


def _kill(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()  # reaped, as its parent (a shell, systemd) would


def _processing(base: str, listing_id: int) -> dict[str, object]:
    return httpx.get(f"{base}/api/v1/listings/{listing_id}/amenities", timeout=10).json()["processing"]


def _assert_consistent(home: Catalog) -> None:
    """No litter, no photo file without its row, no row without its file, its listing and its finished job."""
    engine, Session = open_catalog(home.url)
    try:
        with Session() as session:
            photos = dict(session.execute(select(Photo.id, Photo.sha256)).all())
            jobs = dict(session.execute(select(PhotoJob.photo_id, PhotoJob.state)).all())
            on_listing = set(session.scalars(select(ListingPhoto.photo_id)))
            running = session.scalar(select(func.count()).where(PhotoJob.state != "done"))
    finally:
        engine.dispose()
    files = {p.name for p in home.photos.root.glob("*/*")}
    assert not [f for f in files if f.startswith(".incoming-")], files
    assert files == set(photos.values())  # every file has its row and every row its file
    assert jobs == {photo_id: "done" for photo_id in photos}
    assert on_listing == set(photos)
    assert running == 0


@pytest.mark.slow
def test_killed_during_detection_the_restarted_server_finishes_the_photos_within_seconds(home: Catalog) -> None:
    first, base, marks = home.serve("first", stop_in="detection")
    with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as http:
        listing_id = http.post("/api/v1/listings", json={"title": "Villa"}).json()["id"]
        files = [("files", (f"{i}.jpg", jpeg(seed=20 + i), "image/jpeg")) for i in range(3)]
        assert http.post(f"/api/v1/listings/{listing_id}/photos", files=files).status_code == 202
    _wait_for(marks / "detection", first)
    assert _processing(base, listing_id)["running"] == 3
    _kill(first)

    _, base, _ = home.serve("second")
    started = time.monotonic()
    while (state := _processing(base, listing_id))["state"] != "complete":
        # Without taking the killed server's jobs over, they would wait out their 3-minute lease.
        assert time.monotonic() - started < 20, (state, home.log("second"))
        time.sleep(0.2)
    assert state == {"state": "complete", "total": 3, "pending": 0, "running": 0, "done": 3, "failed": 0}
    _assert_consistent(home)


@pytest.mark.slow
def test_killed_during_an_upload_the_restarted_worker_leaves_no_litter_and_finishes_the_accepted_photos(
    home: Catalog,
) -> None:
    # Its third photo file is the second of the killed upload (the first is the accepted photo's).
    server, base, marks = home.serve("server", stop_in="detection,upload", stop_at_file=3)
    with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as http:
        listing_id = http.post("/api/v1/listings", json={"title": "Villa"}).json()["id"]
        accepted = http.post(f"/api/v1/listings/{listing_id}/photos",
                             files=[("files", ("kept.jpg", jpeg(seed=30), "image/jpeg"))])
        assert accepted.status_code == 202
    _wait_for(marks / "detection", server)  # the accepted photo is being detected...

    answers: list[object] = []

    def killed_upload() -> None:  # ...while a second upload of two photos is being written
        files = [("files", (f"lost-{i}.jpg", jpeg(seed=31 + i), "image/jpeg")) for i in range(2)]
        try:
            answers.append(httpx.post(f"{base}/api/v1/listings/{listing_id}/photos", files=files, headers=HEADERS,
                                      timeout=60))
        except httpx.TransportError as exc:
            answers.append(exc)

    uploading = threading.Thread(target=killed_upload)
    uploading.start()
    _wait_for(marks / "upload", server)
    _kill(server)
    uploading.join(timeout=30)
    assert len(answers) == 1 and isinstance(answers[0], httpx.TransportError)  # never answered

    litter = [p for p in home.photos.root.glob("*/*")]
    assert len(litter) == 3  # the accepted photo's file, the first lost photo's file, the second one's temp file
    assert sum(p.name.startswith(".incoming-") for p in litter) == 1
    for path in litter:  # the restart comes after the sweep's grace period
        old = time.time() - 2 * timedelta(minutes=10).total_seconds()
        os.utime(path, (old, old))

    started = time.monotonic()
    worker = subprocess.run(
        [str(Path(sys.executable).with_name("roomscan")), "worker", "--model", str(home.model_dir),
         "--taxonomy", str(home.taxonomy)],
        check=False, env=home.env(), capture_output=True, text=True, timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    said = " ".join(worker.stderr.split())
    assert "removed 1 unfinished upload file(s) and 1 photo file(s) no photo uses" in said, said
    assert "took over 1 photo(s) a stopped worker had left running" in said, said
    assert "1 photo(s) done" in said, said
    assert time.monotonic() - started < 60
    _assert_consistent(home)
    engine, Session = open_catalog(home.url)
    with Session() as session:
        assert session.scalars(select(Photo.id)).all() == [accepted.json()["photos"][0]["photo_id"]]
    engine.dispose()
