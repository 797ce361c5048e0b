from __future__ import annotations

import pytest

from roomscan.errors import RoomscanError
from roomscan.settings import Settings


@pytest.mark.parametrize(("name", "value"), [("ROOMSCAN_MAX_UPLOAD_MB", "20MB"), ("ROOMSCAN_MAX_REQUEST_MB", "0")])
def test_bad_limits_in_the_environment_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(RoomscanError, match=name):
        Settings.from_env()


def test_limits_and_home_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ROOMSCAN_HOME", str(tmp_path))
    monkeypatch.setenv("ROOMSCAN_MAX_UPLOAD_MB", "1.5")
    s = Settings.from_env()
    assert s.home == tmp_path and s.max_upload_bytes == int(1.5 * 1024 * 1024)
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'roomscan.db'}"
