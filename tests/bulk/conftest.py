"""Bulk-job fixtures: one light local Ray for the session, catalogs (SQLite and PostgreSQL) with photos.

* ``ray_local``: ``ray.init(num_cpus=2, include_dashboard=False)`` once per session; bulk jobs reuse it.
* ``bulk_settings``: ``Settings`` of a fresh catalog (each backend) with the tiny OWLv2 as the model.
* ``seed_catalog(settings, listings)``: listings ``{title: n_photos}`` with distinct JPEGs attached, their jobs
  queued for the tiny model; returns ``{title: [photo ids]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _bulk import DETECTOR_OPTIONS, jpeg
from _databases import BACKENDS, fresh_database
from _models import tiny_taxonomy

from roomscan.settings import Settings


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_taxonomy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tax") / "tiny.yaml"
    tiny_taxonomy().save(path)
    return path


@pytest.fixture(params=BACKENDS)
def bulk_settings(request, tmp_path, tiny_owlv2_dir, tiny_taxonomy_file) -> Iterator[Settings]:
    with fresh_database(request.param, tmp_path) as url:
        yield Settings(home=tmp_path / "home", database_url=url, model=str(tiny_owlv2_dir),
                       taxonomy=str(tiny_taxonomy_file), device="cpu")


@pytest.fixture
def sqlite_settings(tmp_path, tiny_owlv2_dir, tiny_taxonomy_file) -> Settings:
    return Settings(home=tmp_path / "home", model=str(tiny_owlv2_dir), taxonomy=str(tiny_taxonomy_file),
                    device="cpu")


@pytest.fixture
def seed_catalog() -> Callable[..., dict[str, list[int]]]:
    def seed(settings: Settings, listings: dict[str, int], *, first_seed: int = 0) -> dict[str, list[int]]:
        from roomscan.catalog import store
        from roomscan.detection.image import load_image
        from roomscan.services import Services, load_detector

        services = Services.open(settings)
        try:
            detector = load_detector(settings, **DETECTOR_OPTIONS)
            with services.sessions() as session, session.begin():
                model_id = store.ensure_model(session, detector.info).id
            made: dict[str, list[int]] = {}
            n = first_seed
            with services.sessions() as session, session.begin():
                for title, count in listings.items():
                    listing = store.create_listing(session, title, ["bed"])
                    made[title] = []
                    for _ in range(count):
                        added = store.add_photo(session, services.photos, listing, load_image(jpeg(n)),
                                                model_id=model_id, taxonomy=detector.taxonomy)
                        made[title].append(added.photo_id)
                        n += 1
            return made
        finally:
            services.close()

    return seed
