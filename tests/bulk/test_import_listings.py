"""``roomscan.bulk.import_listings``: listings and their photos from Parquet or CSV, bad rows and photos skipped."""

from __future__ import annotations

import dataclasses

import pytest
from _bulk import jpeg
from sqlalchemy import select

from roomscan.bulk import import_listings
from roomscan.catalog.models import JobState, Listing, ListingPhoto, PhotoJob
from roomscan.errors import RoomscanError
from roomscan.services import Services

ROWS = [  # id, title, amenities, photos
    ("A1", "Beach house", ["bed", "oven"], ["a1.jpg", "a2.jpg"]),
    ("A2", "", ["bed"], ["a3.jpg"]),  # bad row: no title
    ("A3", "City flat", ["no-such-amenity"], ["a3.jpg"]),  # bad row: unknown amenity
    ("A4", "Loft", [], ["corrupt.jpg", "missing.jpg", "bomb.jpg", "a4.jpg"]),  # three bad photos
]


@pytest.fixture
def photo_dir(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(["a1.jpg", "a2.jpg", "a3.jpg", "a4.jpg"]):
        (folder / name).write_bytes(jpeg(100 + i))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    (folder / "bomb.jpg").write_bytes(jpeg(7, size=(400, 300)))  # over the max_pixels the tests set
    return folder


def _csv(path, rows):
    lines = ["id,title,amenities,photos"] + [f'{i},"{t}",{";".join(a)},{";".join(p)}' for i, t, a, p in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*rows, strict=True))
    pq.write_table(pa.table({"id": list(columns[0]), "title": list(columns[1]),
                             "amenities": [list(a) for a in columns[2]], "photos": [list(p) for p in columns[3]]}),
                   path)
    return path


def _catalog(settings):
    services = Services.open(settings)
    try:
        with services.sessions() as session:
            listings = {l.external_id: (l.title, sorted(c.amenity for c in l.claims), len(l.photos))
                        for l in session.scalars(select(Listing))}
            jobs = list(session.scalars(select(PhotoJob.state)))
            names = sorted(session.scalars(select(ListingPhoto.filename)))
        return listings, jobs, names
    finally:
        services.close()


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_import_creates_listings_with_photos_and_reports_bad_rows_and_photos(ray_local, bulk_settings, photo_dir,
                                                                              tmp_path, kind):
    if kind == "parquet" and "postgres" in (bulk_settings.database_url or ""):
        pytest.skip("the file format does not depend on the database: Parquet on SQLite only")
    settings = dataclasses.replace(bulk_settings, max_pixels=20_000)
    path = (_csv if kind == "csv" else _parquet)(tmp_path / f"listings.{kind}", ROWS)

    stats = import_listings(settings, path, photo_root=photo_dir, batch_size=2)

    assert (stats.rows, stats.listings_created, stats.bad_rows) == (4, 2, 2)
    assert (stats.photos_added, stats.photos_failed) == (3, 3)
    first = "line 3" if kind == "csv" else "row 2"  # A2: CSV lines count the header
    problems = "\n".join(stats.problems)
    assert f"{first} (id A2), column title: empty" in problems
    assert "column amenities" in problems and "no-such-amenity" in problems
    for name, why in [("corrupt.jpg", "corrupt"), ("missing.jpg", "no such file"), ("bomb.jpg", "megapixels")]:
        assert any(name in p and why in p for p in stats.problems), (name, problems)
    listings, jobs, names = _catalog(settings)
    assert listings == {"A1": ("Beach house", ["bed", "oven"], 2), "A4": ("Loft", [], 1)}
    assert jobs == [JobState.PENDING] * 3  # each photo queued for detection
    assert names == ["a1.jpg", "a2.jpg", "a4.jpg"]

    again = import_listings(settings, path, photo_root=photo_dir, batch_size=2)  # idempotent
    assert (again.listings_created, again.listings_found, again.photos_added, again.photos_present) == (0, 2, 0, 3)
    assert _catalog(settings) == (listings, jobs, names)


def test_import_resumes_with_only_what_is_missing(ray_local, sqlite_settings, photo_dir, tmp_path):
    # As a run stopped after A1's first photo leaves the catalog: the next run fetches only the rest.
    import_listings(sqlite_settings, _csv(tmp_path / "part.csv", [("A1", "Beach house", ["bed"], ["a1.jpg"])]),
                    photo_root=photo_dir)
    full = _csv(tmp_path / "full.csv", [("A1", "Beach house", ["bed"], ["a1.jpg", "a2.jpg"]),
                                        ("A5", "Barn", ["oven"], ["a3.jpg"])])
    stats = import_listings(sqlite_settings, full, photo_root=photo_dir)
    assert (stats.listings_created, stats.listings_found, stats.photos_added, stats.photos_present) == (1, 1, 2, 1)
    listings, _, _ = _catalog(sqlite_settings)
    assert listings == {"A1": ("Beach house", ["bed"], 2), "A5": ("Barn", ["oven"], 1)}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("listings.csv", "id,title,rooms\n1,Flat,3\n", "unknown column(s) 'rooms'"),
        ("listings.csv", "title,photos\nFlat,a.jpg\n", "no 'id' column"),
        ("listings.json", "[]", "use .parquet or .csv"),
        ("listings.parquet", "not parquet at all", "cannot be read as parquet"),
        (None, "", "no such file"),
    ],
)
def test_import_refuses_a_file_it_cannot_read_naming_the_problem(ray_local, sqlite_settings, tmp_path, name,
                                                                  content, message):
    path = tmp_path / (name or "absent.csv")
    if name:
        path.write_text(content)
    with pytest.raises(RoomscanError) as caught:
        import_listings(sqlite_settings, path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_import_fetches_photos_by_url(ray_local, sqlite_settings, s3_server, tmp_path):
    """http(s) and s3 URLs go through fsspec; a local S3 server's object URLs stand in for a photo host."""
    from _s3 import s3_client

    client = s3_client(s3_server)
    client.create_bucket(Bucket="listing-photos")
    client.put_object(Bucket="listing-photos", Key="b1.jpg", Body=jpeg(201), ACL="public-read")
    url = f"{s3_server}/listing-photos"
    path = _csv(tmp_path / "remote.csv", [("R1", "Remote flat", [], [f"{url}/b1.jpg", f"{url}/gone.jpg"])])

    stats = import_listings(sqlite_settings, path)

    assert (stats.photos_added, stats.photos_failed) == (1, 1)
    assert f"{url}/gone.jpg" in stats.problems[0] and "not found" in stats.problems[0]
