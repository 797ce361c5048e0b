"""``/readyz`` is ready only when the catalog and the photo store both answer, and says which one does not."""

from __future__ import annotations

import pytest

from roomscan.catalog.photos import LocalPhotoStore


class _Unreachable(LocalPhotoStore):
    """A store whose own probe fails, as an object store whose bucket or endpoint is gone."""

    def probe(self) -> None:
        raise OSError("connect timeout on endpoint http://minio:9000")


@pytest.fixture
def swap_photos(services):
    original = services.photos

    def swap(store):
        services.photos = store

    yield swap
    services.photos = original


def test_ready_when_catalog_and_photo_store_answer(client):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_a_photo_store_that_is_not_a_directory_is_not_ready(client, swap_photos, tmp_path):
    (tmp_path / "not-a-dir").write_bytes(b"x")
    swap_photos(LocalPhotoStore(tmp_path / "not-a-dir"))
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"]
    assert "photo store" in r.json()["detail"] and "not a directory" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200  # alive all the same


def test_a_store_probe_decides_and_its_reason_is_shown(client, swap_photos, tmp_path):
    swap_photos(_Unreachable(tmp_path / "photos"))
    r = client.get("/api/v1/readyz")
    assert r.status_code == 503
    assert "photo store" in r.json()["detail"] and "minio:9000" in r.json()["detail"]


def test_a_local_store_not_created_yet_is_ready(client, swap_photos, tmp_path):
    swap_photos(LocalPhotoStore(tmp_path / "fresh" / "photos"))  # made by the first upload
    assert client.get("/readyz").status_code == 200


def test_an_empty_object_store_prefix_is_ready(client, swap_photos):
    from roomscan.catalog.photos import open_photo_store

    swap_photos(open_photo_store("memory://roomscan-readyz-test/photos"))
    assert client.get("/readyz").status_code == 200
