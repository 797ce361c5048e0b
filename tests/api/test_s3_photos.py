"""The whole path on object storage: the app with ``ROOMSCAN_PHOTO_STORE=s3://...`` (a local S3-API server) stores
uploads in the bucket, the worker detects them from there, and the API serves them back."""

from __future__ import annotations

from dataclasses import replace

from api_helpers import jpeg, make_listing, upload
from fastapi.testclient import TestClient

from roomscan.api import create_app
from roomscan.services import open_services


def test_uploads_live_in_the_bucket_and_are_detected_and_served_from_it(settings, api_detector, s3_store_url):
    services = open_services(replace(settings, photo_store=s3_store_url), detector=api_detector)
    try:
        assert str(services.photos).startswith("s3://")
        with TestClient(create_app(services=services, start_worker=False)) as client:
            listing_id = make_listing(client)
            first, second = jpeg(seed=1), jpeg(seed=2)
            r = upload(client, listing_id, ("a.jpg", first), ("b.jpg", second))
            assert r.status_code == 202, r.text
            again = upload(client, make_listing(client, "Other"), ("a.jpg", first))  # same bytes, other listing
            assert again.status_code == 202, again.text
            assert not (settings.home / "photos").exists()  # nothing went to the local disk

            stats = services.worker.run_until_idle()
            assert (stats.done, stats.failed) == (2, 0)

            photo_ids = client.get(f"/api/v1/listings/{listing_id}").json()["photo_ids"]
            assert len(photo_ids) == 2
            served = [client.get(f"/api/v1/photos/{pid}/image").content for pid in photo_ids]
            assert sorted(served) == sorted([first, second])
    finally:
        services.close()


def test_readyz_is_503_naming_the_bucket_when_it_goes_away(settings, api_detector, s3_server, s3_store_url):
    from _s3 import s3_client

    services = open_services(replace(settings, photo_store=s3_store_url), detector=api_detector)
    try:
        with TestClient(create_app(services=services, start_worker=False)) as client:
            assert client.get("/readyz").status_code == 200
            bucket = s3_store_url.removeprefix("s3://").split("/")[0]
            s3_client(s3_server).delete_bucket(Bucket=bucket)
            r = client.get("/readyz")
            assert r.status_code == 503 and r.headers["Retry-After"]
            assert "photo store" in r.json()["detail"] and bucket in r.json()["detail"]
    finally:
        services.close()
