from __future__ import annotations

import pytest


@pytest.fixture
def env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("ROOMSCAN_HOME", str(home))
    monkeypatch.delenv("ROOMSCAN_DATABASE_URL", raising=False)
    monkeypatch.delenv("ROOMSCAN_MODEL", raising=False)
    monkeypatch.delenv("ROOMSCAN_TAXONOMY", raising=False)
    return home


@pytest.fixture(scope="module")
def taxonomy_file(tmp_path_factory):
    from _models import tiny_taxonomy

    path = tmp_path_factory.mktemp("tax") / "tiny.yaml"
    tiny_taxonomy().save(path)
    return path
