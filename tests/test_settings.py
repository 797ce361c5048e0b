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


def test_load_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ROOMSCAN_THREADS", "4")
    monkeypatch.setenv("ROOMSCAN_DB_POOL_TIMEOUT", "2.5")
    monkeypatch.setenv("ROOMSCAN_MAX_INFLIGHT", "10")
    s = Settings.from_env()
    assert (s.threads, s.db_pool_size, s.db_pool_timeout, s.max_inflight) == (4, 8, 2.5, 10)  # pool = threads + 4
    monkeypatch.setenv("ROOMSCAN_DB_POOL_SIZE", "30")
    assert Settings.from_env().db_pool_size == 30


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("ROOMSCAN_THREADS", "many", "positive whole number"), ("ROOMSCAN_MAX_INFLIGHT", "0", "must be positive"),
     ("ROOMSCAN_DB_POOL_TIMEOUT", "soon", "positive number"), ("ROOMSCAN_MAX_UPLOAD_MB", "big", "megabytes")],
)
def test_bad_load_settings_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(RoomscanError, match=message) as info:
        Settings.from_env()
    assert name in str(info.value)
