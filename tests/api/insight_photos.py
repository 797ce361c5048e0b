"""Generated listing photos whose insights are known (a room scene, a dark one, a near-copy of one), and a small
catalog made of them through the API (:func:`build_catalog`), analysed by the worker: room scores come from the
tiny detector, as in production."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _models import room_scene
from api_helpers import upload
from PIL import Image


def jpeg_of(image: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def room_jpeg(seed: int, **options) -> bytes:  # type: ignore[no-untyped-def]
    return jpeg_of(room_scene(seed, **options))


def dark_jpeg(seed: int = 50) -> bytes:
    """A room shot with the lights off: brightness well under 30/255 (a ``too_dark`` problem)."""
    return jpeg_of(room_scene(seed, light=0.12))


def near_copy(seed: int) -> bytes:
    """What a copier uploads: ``room_jpeg(seed)``'s picture resized to 3/4 and re-encoded at JPEG quality 60."""
    image = room_scene(seed)
    return jpeg_of(image.resize((image.width * 3 // 4, image.height * 3 // 4)), 60)


def key_headers(key: str | None) -> dict[str, str]:
    return {"X-API-Key": key} if key else {}


def listing_with_photos(client: Any, key: str, title: str, files, published: bool = True):  # type: ignore[no-untyped-def]
    """A listing of ``key``'s account with ``files`` uploaded (a TestClient or an httpx client on a live server):
    ``(listing_id, photo_ids)``."""
    body = {"title": title, "claimed_amenities": ["bed"], "published": published}
    r = client.post("/api/v1/listings", json=body, headers=key_headers(key))
    assert r.status_code == 201, r.text
    listing_id = r.json()["id"]
    r = upload(client, listing_id, *files, headers=key_headers(key))
    assert r.status_code == 202, r.text
    return listing_id, [p["photo_id"] for p in r.json()["photos"]]


@dataclass
class Catalog:
    sea: int  # host a's published listing: a living room, a dark room, a bedroom
    living: int
    dark: int
    bedroom: int
    copy: int  # host b's published listing with a near-copy of the living room
    copied: int
    draft: int  # host b's unpublished listing with a near-copy of the bedroom
    drafted: int
    keys: dict[str, str]


def build_catalog(client: Any, hosts: dict[str, str], settle: Callable[[list[int]], None]) -> Catalog:
    """Three listings through the API; ``settle(listing_ids)`` waits for (or runs) the worker on them."""
    sea, (living, dark, bedroom) = listing_with_photos(
        client, hosts["a"], "Sea flat",
        [("living.jpg", room_jpeg(1)), ("dark.jpg", dark_jpeg()), ("bedroom.jpg", room_jpeg(2))],
    )
    copy, (copied,) = listing_with_photos(client, hosts["b"], "Copy flat", [("mine.jpg", near_copy(1))])
    draft, (drafted,) = listing_with_photos(
        client, hosts["b"], "Secret draft", [("also.jpg", near_copy(2))], published=False
    )
    settle([sea, copy, draft])
    return Catalog(sea, living, dark, bedroom, copy, copied, draft, drafted, hosts)
