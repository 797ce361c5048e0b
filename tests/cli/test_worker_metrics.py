"""`roomscan worker --watch --metrics-port N --log-format json` as a separate process: it serves the same metrics
as a server on its own port (photos processed, job latency, the catalog's queue) and logs JSON lines."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

ROOMSCAN = Path(sys.executable).with_name("roomscan")


def _queue_one_photo(settings, tiny_owlv2_dir, taxonomy) -> None:
    from roomscan.backends import get_detector
    from roomscan.catalog import store
    from roomscan.detection.image import load_image
    from roomscan.services import open_services

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (64, 96, 3), dtype="uint8")).save(buf, "JPEG")
    services = open_services(settings, detector=get_detector(str(tiny_owlv2_dir), taxonomy=taxonomy, device="cpu"))
    try:
        with services.sessions() as session, session.begin():
            listing = store.create_listing(session, "Loft")
            session.flush()
            store.add_photo(session, services.photos, listing, load_image(buf.getvalue(), name="a.jpg"),
                            model_id=services.model_id, taxonomy=services.taxonomy)
    finally:
        services.close()


def _scrape(port: int) -> dict[tuple[str, str | None], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, s.labels.get("outcome") or s.labels.get("state")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_watching_worker_serves_metrics_and_logs_json(tmp_path, tiny_owlv2_dir):
    from _models import tiny_taxonomy

    from roomscan.settings import Settings

    taxonomy = tiny_taxonomy()
    taxonomy.save(tmp_path / "tax.yaml")
    settings = Settings(home=tmp_path / "home")
    _queue_one_photo(settings, tiny_owlv2_dir, taxonomy)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ROOMSCAN_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "ROOMSCAN_LOG_FORMAT": "json"}
    env.pop("ROOMSCAN_DATABASE_URL", None)
    env.pop("ROOMSCAN_PHOTO_STORE", None)
    proc = subprocess.Popen(
        [str(ROOMSCAN), "worker", "--watch", "--model", str(tiny_owlv2_dir), "--taxonomy", str(tmp_path / "tax.yaml"),
         "--device", "cpu", "--poll", "0.1", "--metrics-port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    samples: dict = {}
    try:
        deadline = time.monotonic() + 90
        while samples.get(("roomscan_photos_processed_total", "done")) != 1:
            assert proc.poll() is None, f"roomscan worker exited: {proc.communicate()}"
            assert time.monotonic() < deadline, f"the worker did not detect the photo: {samples}"
            try:
                samples = _scrape(port)
            except OSError:
                pass
            time.sleep(0.2)
        assert samples[("roomscan_job_latency_seconds_count", None)] == 1
        assert samples[("roomscan_catalog_up", None)] == 1
        time.sleep(2.1)  # the queue read is kept 2 s
        assert _scrape(port)[("roomscan_queue_jobs", "done")] >= 1
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert out == ""
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    messages = [line["message"] for line in lines if line["logger"] == "roomscan.worker"]
    assert any("metrics at" in m for m in messages) and any(m.startswith("stopped:") for m in messages), messages
