"""`roomscan serve --log-format json` as a separate process: every line it writes is one JSON object, each request
is logged once (uvicorn's access log is off) with its X-Request-ID, and /metrics counts the background worker's
photos."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

ROOMSCAN = Path(sys.executable).with_name("roomscan")
KEY = "json-logs-key"


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype="uint8")).save(buf, "JPEG")
    return buf.getvalue()


def _wait_up(proc: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"roomscan serve exited: {proc.communicate()}"
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("roomscan serve did not come up")


def test_serve_writes_json_lines_with_request_ids(tmp_path, tiny_owlv2_dir):
    from _models import tiny_taxonomy

    tiny_taxonomy().save(tmp_path / "tax.yaml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ROOMSCAN_HOME": str(tmp_path / "home"), "ROOMSCAN_API_KEY": KEY, "HF_HUB_OFFLINE": "1"}
    env.pop("ROOMSCAN_DATABASE_URL", None)
    env.pop("ROOMSCAN_LOG_FORMAT", None)
    proc = subprocess.Popen(
        [str(ROOMSCAN), "serve", "--model", str(tiny_owlv2_dir), "--taxonomy", str(tmp_path / "tax.yaml"),
         "--port", str(port), "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_up(proc, base)
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/healthz", headers={"X-Request-ID": "e2e-health-1"}).headers["x-request-id"] == "e2e-health-1"
            lid = c.post("/api/v1/listings", json={"title": "Cabin"}, headers={"X-API-Key": KEY}).json()["id"]
            files = [("files", ("a.jpg", _jpeg(1), "image/jpeg"))]
            assert c.post(f"/api/v1/listings/{lid}/photos", files=files, headers={"X-API-Key": KEY}).status_code == 202
            deadline = time.monotonic() + 60
            while c.get(f"/api/v1/listings/{lid}/amenities").json()["processing"]["state"] != "complete":
                assert time.monotonic() < deadline, "the background worker did not detect the photo"
                time.sleep(0.3)
            samples = {
                (s.name, s.labels.get("outcome")): s.value
                for family in text_string_to_metric_families(c.get("/metrics").text)
                for s in family.samples
            }
        assert samples[("roomscan_photos_processed_total", "done")] == 1
        assert samples[("roomscan_job_latency_seconds_count", None)] == 1
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)

    assert out == ""
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    health = [line for line in lines if line.get("request_id") == "e2e-health-1"]
    assert len(health) == 1, health  # logged once: no uvicorn access line beside ours
    assert health[0]["logger"] == "roomscan.access" and health[0]["path"] == "/healthz"
    assert health[0]["status"] == 200 and health[0]["method"] == "GET"
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # uvicorn's own lines, as JSON
