"""Helpers for API tests: photo bytes, a listing, an upload."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

API_KEY = "test-key-123"
HEADERS = {"X-API-Key": API_KEY}


def jpeg(color=(180, 120, 60), size=(96, 64), seed: int = 0) -> bytes:
    """A small photo-like JPEG (noise on a colour) - different seeds give different bytes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(0, 40, (size[1], size[0], 3)) + np.array(color), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_listing(client: TestClient, title="Villa", claimed=("bed", "oven")) -> int:
    r = client.post("/api/v1/listings", json={"title": title, "claimed_amenities": list(claimed)}, headers=HEADERS)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def upload(client: TestClient, listing_id: int, *files: tuple[str, bytes], headers=HEADERS):
    return client.post(
        f"/api/v1/listings/{listing_id}/photos",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        headers=headers,
    )
