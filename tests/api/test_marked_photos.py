"""Publishing marked copies: with ROOMSCAN_MARK_KEY set, public image URLs (API image, page thumbnails, annotated
image) give readers the marked copy once `photos mark` made it, while the hosts of the photo's listings and admins
get the original; caches never hand one reader's copy to another; the key is never served."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from _marking import PSNR_FLOOR, write_marking
from _models import make_image
from api_helpers import HEADERS, upload
from PIL import Image

from roomscan.catalog import marks
from roomscan.catalog.models import PhotoMark


@pytest.fixture
def settings(settings, tmp_path):  # type: ignore[no-untyped-def]
    key, network = write_marking(tmp_path / "marking")
    return dataclasses.replace(settings, mark_key=str(key), mark_network=str(network))


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _listing(client, key: str, *, published: bool = True, seed: int = 0) -> tuple[int, int, bytes]:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/listings", json={"title": "Loft", "published": published}, headers=_h(key))
    assert r.status_code == 201, r.text
    listing_id = r.json()["id"]
    buf = io.BytesIO()
    make_image((96, 64), seed).save(buf, "JPEG", quality=90)  # a photo-like picture (pure noise breaks any JPEG)
    data = buf.getvalue()
    r = upload(client, listing_id, ("room.jpg", data), headers=_h(key))
    assert r.status_code == 202, r.text
    return listing_id, r.json()["photos"][0]["photo_id"], data


def _mark(services) -> marks.MarkStats:  # type: ignore[no-untyped-def]
    pub = marks.publishing(services.settings)
    with services.sessions() as session:
        return marks.mark_pending(session, services.photos, pub, pub.load_network(), steps=10)


def _psnr(a: bytes, b: bytes) -> float:
    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float64)
    return float(10 * np.log10(255**2 / np.mean((x - y) ** 2)))


def test_guests_get_the_marked_copy_and_the_host_the_original(client, services, hosts) -> None:  # type: ignore[no-untyped-def]
    _, photo_id, original = _listing(client, hosts["a"])
    url = f"/api/v1/photos/{photo_id}/image"
    before = client.get(url)
    assert before.content == original  # not marked yet: the original, and caches must ask again
    assert "no-cache" in before.headers["cache-control"]

    assert _mark(services).marked == 1
    guest = client.get(url)
    assert guest.status_code == 200 and guest.content != original
    with Image.open(io.BytesIO(guest.content)) as marked, Image.open(io.BytesIO(original)) as plain:
        assert (marked.format, marked.size) == (plain.format, plain.size)
    assert _psnr(original, guest.content) >= PSNR_FLOOR
    assert client.get(url, headers=_h(hosts["b"])).content == guest.content  # another host is a reader too

    for key in (hosts["a"], HEADERS["X-API-Key"]):  # the host and an admin
        own = client.get(url, headers=_h(key))
        assert own.content == original
        assert own.headers["cache-control"].startswith("private")
    assert client.get(f"{url}?original=1", headers=_h(hosts["a"])).content == original
    assert client.get(f"{url}?original=1").status_code == 403


def test_caches_never_mix_the_two_copies(client, services, hosts) -> None:  # type: ignore[no-untyped-def]
    _, photo_id, _ = _listing(client, hosts["a"])
    _mark(services)
    url = f"/api/v1/photos/{photo_id}/image"
    guest, host = client.get(url), client.get(url, headers=_h(hosts["a"]))
    assert guest.headers["etag"] != host.headers["etag"]
    assert "X-API-Key" in guest.headers["vary"] and "X-API-Key" in host.headers["vary"]
    assert guest.headers["cache-control"].startswith("public")
    # A cache revalidating the guest's copy for the host gets the original, not a 304.
    assert client.get(url, headers={**_h(hosts["a"]), "If-None-Match": guest.headers["etag"]}).status_code == 200
    assert client.get(url, headers={"If-None-Match": guest.headers["etag"]}).status_code == 304

    thumb = f"/photos/{photo_id}/160.jpg"
    guest_thumb = client.get(thumb)
    assert guest_thumb.status_code == 200 and "Cookie" in guest_thumb.headers["vary"]
    assert guest_thumb.headers["etag"].strip('"').split("-")[0] != host.headers["etag"].strip('"')[:32]


def test_thumbnails_and_the_annotated_image_are_made_from_the_marked_copy(client, services, hosts) -> None:  # type: ignore[no-untyped-def]
    _, photo_id, original = _listing(client, hosts["a"])
    before = client.get(f"/photos/{photo_id}/480.jpg").content
    _mark(services)
    after = client.get(f"/photos/{photo_id}/480.jpg").content
    assert after != before
    with services.sessions() as session:
        marked_sha = session.get(PhotoMark, photo_id).marked_sha256
    from roomscan.api.photo_pages import _resized

    assert after == _resized(services.photos, marked_sha, 480)
    assert client.get(f"/api/v1/photos/{photo_id}/annotated").status_code == 200


def test_an_unpublished_listings_photo_is_not_marked(client, services, hosts) -> None:  # type: ignore[no-untyped-def]
    _, hidden_id, original = _listing(client, hosts["a"], published=False, seed=1)
    _, shown_id, _ = _listing(client, hosts["a"], seed=2)
    assert _mark(services).marked == 1
    with services.sessions() as session:
        assert session.get(PhotoMark, hidden_id) is None
        assert session.get(PhotoMark, shown_id) is not None
    assert client.get(f"/api/v1/photos/{hidden_id}/image", headers=_h(hosts["a"])).content == original


def test_a_marked_copy_gone_from_the_store_falls_back_to_the_original_and_is_made_again(client, services, hosts) -> None:  # type: ignore[no-untyped-def]
    _, photo_id, original = _listing(client, hosts["a"])
    _mark(services)
    with services.sessions() as session:
        marked_sha = session.get(PhotoMark, photo_id).marked_sha256
    services.photos.delete(marked_sha)
    assert client.get(f"/api/v1/photos/{photo_id}/image").content == original
    assert _mark(services).marked == 1
    assert client.get(f"/api/v1/photos/{photo_id}/image").content != original


def test_no_route_serves_the_key_or_the_network(client, services) -> None:  # type: ignore[no-untyped-def]
    key_bytes = open(services.settings.mark_key, "rb").read()
    spec = client.get("/openapi.json").text
    assert "mark_key" not in spec and "key.npz" not in spec
    for path in ("/key.npz", "/static/key.npz", "/api/v1/key.npz", "/static/../marking/key.npz", "/healthz",
                 "/readyz", "/api/v1/healthz"):
        r = client.get(path, headers=HEADERS)
        assert key_bytes not in r.content and services.settings.mark_key not in r.text


def test_a_corrupt_key_stops_the_app_at_start_up(services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from roomscan.api import create_app
    from roomscan.errors import RoomscanError

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a key at all")
    bad = dataclasses.replace(services.settings, mark_key=str(corrupt))
    with pytest.raises(RoomscanError, match="ROOMSCAN_MARK_KEY: .*not a marking key"):
        create_app(bad, start_worker=False)
