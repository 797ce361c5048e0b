"""Runtime settings, read once from the environment (``ROOMSCAN_*``) and passed down explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from roomscan.detection.image import DEFAULT_MAX_PIXELS
from roomscan.errors import RoomscanError


def _megabytes(env: Mapping[str, str], name: str, default: float) -> int:
    text = env.get(name)
    try:
        value = float(text) if text else default
    except ValueError:
        raise RoomscanError(f"{name} must be a number of megabytes, like 20; got {text!r}") from None
    if value <= 0:
        raise RoomscanError(f"{name} must be positive, got {text!r}")
    return int(value * 1024 * 1024)


def default_home() -> Path:
    """``$ROOMSCAN_HOME``, default ``~/.roomscan``: where roomscan keeps its data, caches and sweeps."""
    return Path(os.environ.get("ROOMSCAN_HOME") or Path.home() / ".roomscan")


@dataclass(frozen=True)
class Settings:
    """Where data lives and the limits every entry point applies.

    Attributes:
        home: data directory (photo store, default SQLite database). ``ROOMSCAN_HOME``, default ``~/.roomscan``.
        database_url: SQLAlchemy URL. ``ROOMSCAN_DATABASE_URL``, default an SQLite file in ``home``.
        api_key: secret for write endpoints (``X-API-Key``). ``ROOMSCAN_API_KEY``.
        model: detector name, hub id or local directory. ``ROOMSCAN_MODEL``, default ``owlv2``.
        taxonomy: taxonomy YAML path, or ``None`` for the default. ``ROOMSCAN_TAXONOMY``.
        device: ``cpu``, ``cuda`` or ``auto``. ``ROOMSCAN_DEVICE``.
        max_upload_bytes: largest accepted photo upload, per file. ``ROOMSCAN_MAX_UPLOAD_MB`` (default 20).
        max_files_per_upload: most files in one upload request.
        max_request_bytes: largest request body (all files together). ``ROOMSCAN_MAX_REQUEST_MB`` (default 100).
        max_pixels: decompression-bomb guard for every decoded image.
    """

    home: Path = field(default_factory=default_home)
    database_url: str | None = None
    api_key: str | None = None
    model: str = "owlv2"
    taxonomy: str | None = None
    device: str = "auto"
    max_upload_bytes: int = 20 * 1024 * 1024
    max_files_per_upload: int = 20
    max_request_bytes: int = 100 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        for name in ("max_upload_bytes", "max_request_bytes", "max_pixels", "max_files_per_upload"):
            if getattr(self, name) <= 0:
                raise RoomscanError(f"setting {name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ
        settings = cls(
            home=default_home(),
            database_url=env.get("ROOMSCAN_DATABASE_URL") or None,
            api_key=env.get("ROOMSCAN_API_KEY") or None,
            model=env.get("ROOMSCAN_MODEL") or "owlv2",
            taxonomy=env.get("ROOMSCAN_TAXONOMY") or None,
            device=env.get("ROOMSCAN_DEVICE") or "auto",
            max_upload_bytes=_megabytes(env, "ROOMSCAN_MAX_UPLOAD_MB", 20),
            max_request_bytes=_megabytes(env, "ROOMSCAN_MAX_REQUEST_MB", 100),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'roomscan.db'}"

    @property
    def photo_dir(self) -> Path:
        return self.home / "photos"
