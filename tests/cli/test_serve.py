"""`roomscan serve` end to end, as a separate process: create, upload, read amenities, search, bad input."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

ROOMSCAN = Path(sys.executable).with_name("roomscan")
KEY = "serve-test-key"


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype="uint8")).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def server(tmp_path, tiny_owlv2_dir):
    from _models import tiny_taxonomy

    tiny_taxonomy().save(tmp_path / "tax.yaml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ROOMSCAN_HOME": str(tmp_path / "home"), "ROOMSCAN_API_KEY": KEY, "HF_HUB_OFFLINE": "1",
           "ROOMSCAN_MAX_UPLOAD_MB": "1"}
    env.pop("ROOMSCAN_DATABASE_URL", None)
    proc = subprocess.Popen(
        [str(ROOMSCAN), "serve", "--model", str(tiny_owlv2_dir), "--taxonomy", str(tmp_path / "tax.yaml"),
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"roomscan serve exited: {proc.stdout.read()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("roomscan serve did not come up")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_serve_create_upload_read_search_and_refuse_bad_input(server):
    h = {"X-API-Key": KEY}
    with httpx.Client(base_url=server, timeout=30) as c:
        listing = c.post("/api/v1/listings", json={"title": "Cabin", "claimed_amenities": ["bed"]}, headers=h).json()
        lid = listing["id"]
        files = [("files", ("a.jpg", _jpeg(1), "image/jpeg")), ("files", ("b.jpg", _jpeg(2), "image/jpeg"))]
        assert c.post(f"/api/v1/listings/{lid}/photos", files=files, headers=h).status_code == 202

        deadline = time.monotonic() + 60
        while True:
            body = c.get(f"/api/v1/listings/{lid}/amenities").json()
            if body["processing"]["state"] == "complete" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert body["processing"]["done"] == 2
        seen = [a["slug"] for a in body["amenities"] if a["seen"]]
        assert seen
        hits = c.get("/api/v1/search", params={"amenity": seen[0]}).json()["hits"]
        assert [x["listing_id"] for x in hits] == [lid]

        bad = [
            (c.post(f"/api/v1/listings/{lid}/photos", files=[("files", ("x.jpg", b"text", "image/jpeg"))], headers=h), 415),
            (c.post(f"/api/v1/listings/{lid}/photos", files=[("files", ("e.jpg", b"", "image/jpeg"))], headers=h), 422),
            (c.post(f"/api/v1/listings/{lid}/photos",
                    files=[("files", ("big.jpg", b"\xff\xd8\xff" + b"0" * 2_000_000, "image/jpeg"))], headers=h), 413),
            (c.post("/api/v1/listings", content=b"{oops", headers={**h, "Content-Type": "application/json"}), 422),
            (c.post("/api/v1/listings", json={"title": "x"}), 401),
            (c.get("/api/v1/listings/424242"), 404),
            (c.get("/api/v1/search", params={"amenity": "1; DROP TABLE listings"}), 422),
        ]
        for response, code in bad:
            assert response.status_code == code, response.text
            assert response.json()["detail"]
        assert c.get("/healthz").json()["status"] == "ok"
        assert c.get(f"/api/v1/listings/{lid}").json()["photo_ids"] == [p for p in listing["photo_ids"]] + [1, 2]
        page = c.get(f"/listings/{lid}")
        assert page.status_code == 200 and "Cabin" in page.text
