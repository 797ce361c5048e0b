"""The REST API and web page (FastAPI). ``create_app`` assembles it; routes live in ``routes/``."""

from __future__ import annotations

from roomscan.api.main import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
