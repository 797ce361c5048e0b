"""System tests: real ``roomscan serve --no-worker`` and ``roomscan worker --watch`` processes on one PostgreSQL
catalog, under load, killed with SIGKILL, and through a PostgreSQL restart (see ``_cluster.py``).

* ``system_model``: ``(model directory, taxonomy file)`` of the tiny OWLv2 test model, loadable in a subprocess.
* ``cluster``: a :class:`_cluster.Cluster` on a fresh PostgreSQL database of ``ROOMSCAN_TEST_POSTGRES_URL``
  (skipped without it, an error when ``CI`` is set); its processes are killed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _cluster import Cluster
from _databases import fresh_database


@pytest.fixture(scope="session")
def system_model(tiny_owlv2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from _models import tiny_taxonomy

    taxonomy = tmp_path_factory.mktemp("system-taxonomy") / "taxonomy.yaml"
    tiny_taxonomy().save(taxonomy)
    return tiny_owlv2_dir, taxonomy


@pytest.fixture
def cluster(tmp_path: Path, system_model: tuple[Path, Path]) -> Iterator[Cluster]:
    with fresh_database("postgres", tmp_path) as url:
        running = Cluster(tmp_path, url, *system_model)
        try:
            yield running
        finally:
            running.close()
