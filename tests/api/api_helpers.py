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


def page_create(client: TestClient, title="Loft", claimed=("bed",), key=API_KEY) -> int:
    """Create a listing through the web page's form (303 to the listing); returns its id."""
    r = client.post("/listings", data={"title": title, "claimed": list(claimed), "api_key": key}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def set_detections(services, listing_id: int, photo_id: int, rows) -> None:
    """Replace a photo's detections with known ones, ``[(slug, score, (x1, y1, x2, y2)), ...]``, and refresh the
    listing's roll-up, as the worker does: pages and search then show exactly these boxes."""
    import numpy as np

    from roomscan.catalog import store
    from roomscan.detection.core import make_detections

    dets = make_detections(
        np.array([box for _, _, box in rows], dtype=np.float32).reshape(-1, 4),
        [score for _, score, _ in rows],
        [services.taxonomy.index(slug) for slug, _, _ in rows],
        [slug for slug, _, _ in rows],
    )
    with services.sessions() as session:
        store.save_detections(session, photo_id, services.model_id, dets)
        listing = store.get_listing(session, listing_id)
        store.refresh_listing_amenities(session, listing, services.model_id, services.taxonomy)
        session.commit()
