"""JSON logs: one object per line with time, level, logger and message (and a request's fields and id)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from roomscan.errors import RoomscanError
from roomscan.logs import JsonFormatter, request_id, setup_logging
from roomscan.settings import Settings


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("roomscan.test", logging.WARNING, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def test_a_line_is_one_json_object_with_the_fields():
    line = JsonFormatter().format(_record("photo 3: \"odd\"\nname", method="GET", status=404, duration_ms=1.5))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "roomscan.test"
    assert data["message"] == "photo 3: \"odd\"\nname"
    assert data["time"].endswith("Z") and "T" in data["time"]
    assert data["method"] == "GET" and data["status"] == 404 and data["duration_ms"] == 1.5
    assert "request_id" not in data


def test_lines_logged_during_a_request_carry_its_id():
    token = request_id.set("req-42")
    try:
        data = json.loads(JsonFormatter().format(_record("inside")))
    finally:
        request_id.reset(token)
    assert data["request_id"] == "req-42"


def test_an_exception_is_in_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info())
    data = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in data["exc"]


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    loggers = {n: logging.getLogger(n) for n in names}
    saved = (list(root.handlers), root.level,
             {n: (list(lg.handlers), lg.propagate, lg.disabled, lg.level) for n, lg in loggers.items()})
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    for n, (handlers, propagate, disabled, level) in saved[2].items():
        loggers[n].handlers[:] = handlers
        loggers[n].propagate, loggers[n].disabled = propagate, disabled
        loggers[n].setLevel(level)


def test_json_mode_sends_every_logger_to_json_and_silences_uvicorns_access_log(restore_logging):
    # As an earlier uvicorn or library logging set-up may leave it: json mode still shows uvicorn's lines.
    logging.getLogger("uvicorn.error").disabled = True
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    out = io.StringIO()
    setup_logging("json", stream=out)
    setup_logging("json", stream=out)  # twice: still one line per record
    logging.getLogger("roomscan.worker").info("worker up")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(d["logger"], d["message"]) for d in lines] == [
        ("roomscan.worker", "worker up"), ("uvicorn.error", "Application startup complete.")
    ]


@pytest.mark.parametrize(("value", "expected"), [("json", "json"), ("JSON", "json"), ("", "text"), (None, "text")])
def test_log_format_setting(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("ROOMSCAN_LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("ROOMSCAN_LOG_FORMAT", value)
    assert Settings.from_env().log_format == expected


def test_a_bad_log_format_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv("ROOMSCAN_LOG_FORMAT", "xml")
    with pytest.raises(RoomscanError, match="text or json"):
        Settings.from_env()
