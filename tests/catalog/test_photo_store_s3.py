"""Every photo store behaves the same: a local directory, fsspec's memory filesystem, and S3 (a local moto server).

Object stores keep times in whole seconds, so the tests that tell old from young litter wait between the two.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from _models import tiny_taxonomy
from _s3 import free_port, s3_client

from roomscan.backends._base import ModelInfo
from roomscan.catalog import store
from roomscan.catalog.photos import (
    LocalPhotoStore,
    ObjectPhotoStore,
    PhotoStore,
    S3PhotoStore,
    SweepReport,
    open_photo_store,
    sweep_photo_store,
)
from roomscan.detection.image import load_image
from roomscan.errors import NotFoundError, RoomscanError

BACKENDS = ["local", "memory", "s3"]


@pytest.fixture(params=BACKENDS)
def photos(request: pytest.FixtureRequest, tmp_path: Path) -> PhotoStore:
    if request.param == "local":
        return open_photo_store(tmp_path / "photos")
    if request.param == "memory":
        return open_photo_store(f"memory://roomscan-{uuid.uuid4().hex[:12]}/photos")
    return open_photo_store(request.getfixturevalue("s3_store_url"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _put(photos: PhotoStore, data: bytes) -> str:
    sha = _sha(data)
    photos.put(sha, data)
    return sha


def _write_raw(photos: PhotoStore, key: str, data: bytes) -> None:
    """Write ``<root>/<key>`` behind the store's back, as a crashed upload or a damaged disk would."""
    if isinstance(photos, LocalPhotoStore):
        (photos.root / key).parent.mkdir(parents=True, exist_ok=True)
        (photos.root / key).write_bytes(data)
    else:
        assert isinstance(photos, ObjectPhotoStore)
        photos.fs.pipe_file(f"{photos.root}/{key}", data)


def _keys(photos: PhotoStore) -> set[str]:
    if isinstance(photos, LocalPhotoStore):
        return {p.relative_to(photos.root).as_posix() for p in photos.root.glob("*/*")}
    assert isinstance(photos, ObjectPhotoStore)
    try:
        return {path[len(photos.root) + 1:] for path in photos.fs.find(photos.root)}
    except FileNotFoundError:
        return set()


def _pause() -> float:
    """A moment that everything written before is older than, and everything written after younger than."""
    boundary = time.time()
    time.sleep(1.5)  # object stores keep whole seconds
    return boundary


def _since(moment: float) -> timedelta:
    return timedelta(seconds=time.time() - moment)


def test_put_stores_the_same_bytes_once_and_get_reads_them_back(photos: PhotoStore) -> None:
    sha = _put(photos, b"photo bytes")
    _put(photos, b"photo bytes")
    assert photos.get(sha) == b"photo bytes"
    assert _keys(photos) == {f"{sha[:2]}/{sha}"}  # no temp file left behind


def test_put_repairs_damaged_bytes_under_a_photo_key(photos: PhotoStore) -> None:
    sha = _sha(b"the whole photo")
    _write_raw(photos, f"{sha[:2]}/{sha}", b"the whole")
    photos.put(sha, b"the whole photo")
    assert photos.get(sha) == b"the whole photo"


def test_get_of_a_missing_photo_says_which_and_where(photos: PhotoStore) -> None:
    sha = _sha(b"never stored")
    with pytest.raises(NotFoundError, match=sha) as info:
        photos.get(sha)
    assert str(photos) in str(info.value)


def test_delete_removes_a_photo_once(photos: PhotoStore) -> None:
    sha = _put(photos, b"to be deleted")
    assert photos.delete(sha) is True
    assert photos.delete(sha) is False
    with pytest.raises(NotFoundError):
        photos.get(sha)


@pytest.mark.parametrize("key", ["../../etc/passwd", "A" * 64, "ab", "0" * 63 + "/", "", "0" * 65])
def test_only_sha256_hex_digests_are_keys(photos: PhotoStore, key: str) -> None:
    for action in (lambda: photos.put(key, b"x"), lambda: photos.get(key), lambda: photos.delete(key)):
        with pytest.raises(ValueError, match="not a SHA-256 hex digest"):
            action()
    assert _keys(photos) == set()


def test_sweep_removes_old_litter_and_keeps_rows_and_uploads_in_flight(photos: PhotoStore) -> None:
    named = _put(photos, b"a photo with a row")
    orphan = _put(photos, b"a photo whose row never committed")
    _write_raw(photos, f"{named[:2]}/.incoming-abc123", b"half a photo")
    boundary = _pause()
    in_flight = _put(photos, b"a photo whose upload is still running")
    _write_raw(photos, f"{orphan[:2]}/.incoming-def456", b"being written")
    asked: list[str] = []

    def known(hashes):  # type: ignore[no-untyped-def]
        asked.extend(hashes)
        return {h for h in hashes if h == named}

    report = photos.sweep(known, grace=_since(boundary))

    litter = len(b"half a photo") + len(b"a photo whose row never committed")
    assert report == SweepReport(temp_files=1, orphan_files=1, bytes=litter)
    assert _keys(photos) == {f"{named[:2]}/{named}", f"{in_flight[:2]}/{in_flight}", f"{orphan[:2]}/.incoming-def456"}
    assert in_flight not in asked  # young photos are never even looked up
    assert photos.sweep(known, grace=_since(boundary)) == SweepReport()  # nothing left to remove


def test_storing_bytes_again_makes_an_old_unnamed_photo_young(photos: PhotoStore) -> None:
    # An upload of the same bytes as an old orphan reuses it: the sweep must not take it before the upload's
    # row commits.
    sha = _put(photos, b"uploaded twice")
    boundary = _pause()
    _put(photos, b"uploaded twice")
    assert photos.sweep(lambda hashes: set(), grace=_since(boundary)) == SweepReport()
    assert photos.get(sha) == b"uploaded twice"


def test_sweep_of_an_empty_store_is_empty(photos: PhotoStore) -> None:
    assert photos.sweep(lambda hashes: set(), grace=timedelta(0)) == SweepReport()


def test_open_photo_store_picks_the_backend_by_location(tmp_path: Path, s3_store_url: str) -> None:
    assert type(open_photo_store(tmp_path)) is LocalPhotoStore
    assert type(open_photo_store(str(tmp_path))) is LocalPhotoStore
    assert type(open_photo_store("memory://roomscan-pick")) is ObjectPhotoStore
    s3 = open_photo_store(s3_store_url)
    assert type(s3) is S3PhotoStore
    assert str(s3).startswith(s3_store_url) and "127.0.0.1" in str(s3)  # where it is, for log lines


# S3: what a deployment relies on beyond the shared behaviour.


def test_an_s3_photo_is_one_object_under_the_prefix(s3_store_url: str, s3_server: str) -> None:
    photos = open_photo_store(s3_store_url)
    sha = _put(photos, b"on s3")
    _put(photos, b"on s3")
    bucket = s3_store_url.split("/")[2]
    listed = s3_client(s3_server).list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"photos/{sha[:2]}/{sha}"]


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_the_endpoint_comes_from_the_standard_variables(
    s3_store_url: str, s3_server: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv(variable, s3_server)
    photos = open_photo_store(s3_store_url)
    sha = _put(photos, b"reached through " + variable.encode())
    assert photos.get(sha).startswith(b"reached through")


def test_a_missing_bucket_is_reported_at_open(s3_store_url: str) -> None:
    with pytest.raises(RoomscanError, match=r"bucket 'no-such-bucket' does not exist.*ROOMSCAN_PHOTO_STORE"):
        open_photo_store("s3://no-such-bucket/photos")


def test_an_unreachable_endpoint_is_reported_at_open(s3_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore would retry for ~10 s first
    with pytest.raises(RoomscanError, match="cannot reach http://127.0.0.1:.*AWS_ENDPOINT_URL_S3"):
        open_photo_store(s3_store_url)


def test_refused_credentials_are_reported_at_open(s3_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto accepts any key; a refusal is what s3fs turns a 403 into.
    import s3fs

    def refuse(self, method, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError("The AWS Access Key Id you provided does not exist in our records.")

    monkeypatch.setattr(s3fs.S3FileSystem, "call_s3", refuse)
    with pytest.raises(RoomscanError, match="access denied.*AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        open_photo_store(s3_store_url)


def test_an_unknown_protocol_is_reported_at_open() -> None:
    with pytest.raises(RoomscanError, match="no-such-protocol://x"):
        open_photo_store("no-such-protocol://x")


def test_uploads_land_in_the_bucket_once_and_the_sweep_keeps_them(  # type: ignore[no-untyped-def]
    catalog, s3_store_url: str, s3_server: str, sample_photo
) -> None:
    _, Session = catalog
    photos = open_photo_store(s3_store_url)
    taxonomy = tiny_taxonomy()
    same = load_image(sample_photo(seed=1))
    with Session() as session:
        model_id = store.ensure_model(session, ModelInfo("owlv2", "tiny", "v1", taxonomy.fingerprint())).id
        loft, studio = store.create_listing(session, "Loft"), store.create_listing(session, "Studio")
        for listing in (loft, studio):  # the same photo in two listings
            store.add_photo(session, photos, listing, same, model_id=model_id, taxonomy=taxonomy)
        session.commit()
        # An upload killed after writing its photo, before its row committed.
        store.add_photo(session, photos, loft, load_image(sample_photo(seed=2)), model_id=model_id,
                        taxonomy=taxonomy)
        session.rollback()
    bucket = s3_store_url.split("/")[2]
    assert len(s3_client(s3_server).list_objects_v2(Bucket=bucket)["Contents"]) == 2

    report = sweep_photo_store(Session, photos, grace=timedelta(0))

    assert (report.temp_files, report.orphan_files) == (0, 1)
    keys = [o["Key"] for o in s3_client(s3_server).list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"photos/{same.sha256[:2]}/{same.sha256}"]
    assert photos.get(same.sha256) == same.data
