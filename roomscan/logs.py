"""Log lines for operators: text as always, or one JSON object per line (``ROOMSCAN_LOG_FORMAT=json``).

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; a request's line (logger
``roomscan.access``) adds ``method``, ``path``, ``status``, ``duration_ms`` and ``request_id``, and every line
logged while a request is handled carries that request's ``request_id``.

Example:
    >>> setup_logging("json")                      # doctest: +SKIP
    >>> logging.getLogger("roomscan").info("up")   # doctest: +SKIP
    {"time": "2026-12-02T11:05:45.120Z", "level": "INFO", "logger": "roomscan", "message": "up"}
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["LOG_FORMATS", "JsonFormatter", "announcer", "current_request_id", "request_id", "setup_logging"]

LOG_FORMATS = ("text", "json")

request_id: ContextVar[str | None] = ContextVar("roomscan_request_id", default=None)
"""The id of the request being handled (set by the API's middleware); threads it starts inherit it."""

# Fields a log call may pass with ``extra=``, written beside the message in this order.
_REQUEST_FIELDS = ("method", "path", "status", "duration_ms", "request_id")


def current_request_id() -> str | None:
    return request_id.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if "request_id" not in line and (rid := request_id.get()) is not None:
            line["request_id"] = rid
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup_logging` installs (told apart from others so a second call replaces it)."""


def setup_logging(log_format: str, *, level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Configure this process's logging for ``log_format``.

    ``json``: every logger (roomscan's, uvicorn's, libraries') writes JSON lines to ``stream`` (stderr), and
    uvicorn's access log is off, since roomscan's middleware logs each request with its id. ``text`` leaves
    logging as it always was (uvicorn's own lines, roomscan's warnings).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}; got {log_format!r}")
    if log_format == "text":
        return
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        # An earlier logging set-up (uvicorn's own dictConfig, a library's) may have disabled it or raised its level.
        logger.disabled = False
        logger.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    _route_transformers_logs()


def _route_transformers_logs() -> None:
    """transformers writes its warnings (a tokenizer truncating a room prompt...) through its own handler as
    plain ``[transformers] ...`` lines: send them through the root's JSON handler instead. Imports transformers
    (about 1 s), so only in JSON mode, and only where it is installed."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()


def announcer(log_format: str, console: Any, logger: str) -> Callable[..., None]:
    """``say(message, *, markup=True, level=logging.INFO)`` for a command's notes to its operator: printed on
    ``console`` (rich markup allowed) in text mode; a log line of ``logger`` in JSON mode, so every line the
    process writes is one JSON object."""

    def say(message: str, *, markup: bool = True, level: int = logging.INFO) -> None:
        if log_format == "json":
            if markup:
                from rich.text import Text

                message = Text.from_markup(message).plain
            logging.getLogger(logger).log(level, message)
        else:
            console.print(message, highlight=False, markup=markup)

    return say
