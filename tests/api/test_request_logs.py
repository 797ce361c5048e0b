"""Each request gets an id (the client's ``X-Request-ID``, else a new one), echoed in the answer; in JSON log mode
one ``roomscan.access`` line per request carries it with method, path, status and duration."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from fastapi.testclient import TestClient

from roomscan.api import create_app
from roomscan.logs import JsonFormatter


@pytest.fixture
def json_client(services):
    json_services = dataclasses.replace(services, settings=dataclasses.replace(services.settings, log_format="json"))
    with TestClient(create_app(services=json_services, start_worker=False)) as client:
        yield client


def _access_lines(caplog) -> list[dict]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "roomscan.access"]


def test_a_request_id_is_honoured_and_logged(json_client, caplog):
    caplog.set_level(logging.INFO, logger="roomscan.access")
    r = json_client.get("/api/v1/listings/424242", headers={"X-Request-ID": "trace-abc.123"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "trace-abc.123"
    (line,) = _access_lines(caplog)
    assert line["request_id"] == "trace-abc.123"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/listings/424242", 404)
    assert line["duration_ms"] >= 0 and line["level"] == "INFO" and line["logger"] == "roomscan.access"
    assert {"time", "message"} <= line.keys()


@pytest.mark.parametrize("sent", [None, "x" * 500, "bad id\twith spaces"])
def test_without_a_usable_id_one_is_made(json_client, caplog, sent):
    caplog.set_level(logging.INFO, logger="roomscan.access")
    r = json_client.get("/healthz", headers={"X-Request-ID": sent} if sent else {})
    made = r.headers["x-request-id"]
    assert made and made != sent and len(made) <= 128
    assert _access_lines(caplog)[-1]["request_id"] == made


def test_text_mode_logs_no_access_line_of_its_own(client, caplog):
    """uvicorn's access log covers text mode, as before; the id is echoed all the same."""
    caplog.set_level(logging.INFO, logger="roomscan.access")
    r = client.get("/healthz")
    assert r.headers["x-request-id"]
    assert not [rec for rec in caplog.records if rec.name == "roomscan.access"]
