"""PostgreSQL restarts under a running system: the server answers 503 (never 500) while the database is away and
recovers without a restart of its own, the workers reconnect and carry on, and every photo accepted before,
during or after the outage is detected and completed exactly once.

The test restarts a PostgreSQL instance of its own (``scripts/postgres.sh`` on a temporary directory and a free
port), so tests running beside it on the shared server are not disturbed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest
from _cluster import HEADERS, Cluster, audit, free_port, jpeg, make_listings
from _databases import fresh_database

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
OUTAGE_SECONDS = 3.0


def _missing_postgres() -> str | None:
    """Why this machine cannot run a throwaway PostgreSQL (as ``scripts/postgres.sh`` would find it), or None."""
    bin_dir = os.environ.get("ROOMSCAN_PG_BIN")
    found = (
        Path(bin_dir, "initdb").exists() if bin_dir
        else bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or shutil.which("initdb") is not None
    )
    if not found:
        return "initdb not found (install postgresql, or set ROOMSCAN_PG_BIN): no PostgreSQL instance to restart"
    if os.getuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode != 0:
        return "running as root without a 'postgres' OS user: initdb cannot run"
    return None


class Postgres:
    """A PostgreSQL instance of this test only: ``scripts/postgres.sh`` on its own directory and port."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: as root, the server runs as `postgres`, which cannot enter that folder.
        self.dir = tempfile.mkdtemp(prefix="roomscan-pg-restart-", dir="/tmp")
        self.env = {**os.environ, "ROOMSCAN_PG_DIR": self.dir, "ROOMSCAN_PG_PORT": str(free_port())}

    def run(self, command: str) -> str:
        done = subprocess.run(["bash", str(SCRIPT), command], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def remove(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=self.env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[Postgres]:
    with fresh_database("postgres", tmp_path):  # PostgreSQL tests run where ROOMSCAN_TEST_POSTGRES_URL is set
        pass
    if reason := _missing_postgres():
        pytest.skip(reason)
    pg = Postgres()
    try:
        yield pg
    finally:
        pg.remove()


class Traffic:
    """Uploads (one new photo each) and reads, in threads, recording every answer with the time it came."""

    def __init__(self, base: str, listing_ids: list[int]) -> None:
        self.base, self.listing_ids = base, listing_ids
        self.uploads: list[tuple[float, int | None, dict]] = []  # (time, status, answer)
        self.reads: list[tuple[float, int | None, dict]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._upload, args=(i,)) for i in range(2)]
        self.threads.append(threading.Thread(target=self._read))

    def __enter__(self) -> Self:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _record(self, into: list, response: httpx.Response | None) -> None:
        if response is None:
            into.append((time.monotonic(), None, {}))
            return
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        into.append((time.monotonic(), response.status_code, {**body, "retry-after": response.headers.get("retry-after")}))

    def _upload(self, worker: int) -> None:
        with httpx.Client(base_url=self.base, headers=HEADERS, timeout=30) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                listing = self.listing_ids[n % len(self.listing_ids)]
                files = [("files", (f"{worker}-{n}.jpg", jpeg(seed=10_000 * worker + n), "image/jpeg"))]
                try:
                    r = http.post(f"/api/v1/listings/{listing}/photos", files=files)
                except httpx.TransportError:
                    r = None
                self._record(self.uploads, r)
                if r is not None and r.status_code == 202:
                    self.uploads[-1][2]["listing_id"] = listing
                time.sleep(0.05)

    def _read(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    r = http.get("/api/v1/listings", params={"limit": 5})
                except httpx.TransportError:
                    r = None
                self._record(self.reads, r)
                time.sleep(0.1)

    def accepted(self) -> int:
        return sum(status == 202 for _, status, _ in self.uploads)


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_postgres_restart_is_503_meanwhile_and_every_accepted_photo_is_detected_once(
    own_postgres: Postgres, tmp_path: Path, system_model: tuple[Path, Path]
) -> None:
    url = own_postgres.run("start")
    cluster = Cluster(tmp_path, url, *system_model)
    try:
        server = cluster.serve(ROOMSCAN_DB_POOL_TIMEOUT="3")
        # Slow batches: the outage finds the workers inside one, with results they cannot store.
        workers = [cluster.worker(f"worker{i}", batch_size=2, detect_seconds=0.5) for i in range(2)]
        cluster.ready(server, *workers)
        listings = make_listings(server.base, 2)
        with Traffic(server.base, listings) as traffic:
            _wait(lambda: traffic.accepted() >= 6, 60, "no uploads accepted before the restart")
            down = time.monotonic()
            own_postgres.run("stop")
            time.sleep(OUTAGE_SECONDS)
            own_postgres.run("start")
            up = time.monotonic()
            before = traffic.accepted()
            _wait(lambda: traffic.accepted() >= before + 6, 60, f"no uploads accepted after the restart:\n{server.tail()}")
        # Well within the workers' one-minute lease: a batch the outage cut short is given back, not left to
        # wait out its lease under a holder that is alive.
        drained = time.monotonic() + cluster.wait_drained(timeout=100) - up
        assert drained < 40, f"the queue drained {drained:.0f} s after the restart"
        said = [cluster.stop(w) for w in workers]
        assert all(w.popen.returncode == 0 for w in workers), said
        ready = httpx.get(f"{server.base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
    finally:
        cluster.close()

    answers = traffic.uploads + traffic.reads
    statuses = Counter(status for _, status, _ in answers)
    assert set(statuses) <= {200, 202, 503}, (statuses, server.tail())  # never a 500, never a dropped connection
    refused = [(t, body) for t, status, body in answers if status == 503]
    assert refused, "requests during the outage were to be refused"
    assert all(body["retry-after"] and "database" in body["detail"] for _, body in refused), refused[:3]
    assert all(down <= t <= up + 15 for t, _ in refused), "503s only around the outage"
    assert any(status == 200 for t, status, _ in traffic.reads if t > up), "reads recover"

    # Uploads cut short by the outage may have left files no row names: the start-up sweep (after its grace
    # period) removes them, as the next start of a server or worker would.
    from roomscan.services import Services
    from roomscan.settings import Settings

    cluster.backdate_files()
    services = Services.open(Settings(home=cluster.home, database_url=url))
    swept = services.recover().swept
    services.close()
    result = audit(cluster)
    accepted = [body for _, status, body in traffic.uploads if status == 202]
    result.check()
    stored = {sha for sha in result.photos.values()}
    assert {p["sha256"] for body in accepted for p in body["photos"]} <= stored
    print(f"\n{len(accepted)} uploads accepted, {statuses[503]} answers 503 during a {OUTAGE_SECONDS:.0f} s outage, "
          f"{statuses}; drained {drained:.1f} s after the restart; swept: {swept}; "
          f"jobs claimed twice: {sum(n > 1 for n in result.claims.values())}")
