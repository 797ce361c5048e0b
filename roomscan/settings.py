"""Runtime settings, read once from the environment (``ROOMSCAN_*``) and passed down explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from roomscan.detection.image import DEFAULT_MAX_PIXELS
from roomscan.errors import RoomscanError


def _positive(env: Mapping[str, str], name: str, default: float, kind: type = int, what: str = "") -> Any:
    """``env[name]`` as a positive ``kind`` (``default`` when unset); a clear error naming the variable if not."""
    text = env.get(name)
    try:
        value = kind(text) if text else default
    except ValueError:
        what = what or f"a positive {'whole ' if kind is int else ''}number"
        raise RoomscanError(f"{name} must be {what}; got {text!r}") from None
    if value <= 0:
        raise RoomscanError(f"{name} must be positive, got {text!r}")
    return value


def _megabytes(env: Mapping[str, str], name: str, default: float) -> int:
    return int(_positive(env, name, default, float, "a number of megabytes, like 20") * 1024 * 1024)


def check_rate(name: str, value: str) -> str:
    """``value`` if it is one rate ``limits.parse`` reads (``120/minute``, ``10 per second``); a clear error naming
    the setting if not. Without the ``limits`` package (installed with the ``api`` extra) nothing applies rates,
    so nothing is checked."""
    try:
        from limits import parse
    except ImportError:
        return value
    try:
        amount = parse(value).amount
    except ValueError:
        amount = 0
    if amount <= 0:
        raise RoomscanError(f"{name} must be a rate like 120/minute, 10/second or 1000/hour; got {value!r}")
    return value


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
        room_types: room-type YAML path (the rooms a photo is typed as, their prompts and amenity evidence), or
            ``None`` for the default (``roomscan/data/rooms.yaml``). ``ROOMSCAN_ROOM_TYPES``.
        device: ``cpu``, ``cuda`` or ``auto``. ``ROOMSCAN_DEVICE``.
        max_upload_bytes: largest accepted photo upload, per file. ``ROOMSCAN_MAX_UPLOAD_MB`` (default 20).
        max_files_per_upload: most files in one upload request.
        max_request_bytes: largest request body (all files together). ``ROOMSCAN_MAX_REQUEST_MB`` (default 100).
        max_pixels: decompression-bomb guard for every decoded image.
        threads: the server's threads for blocking request work (database, files, decoding); requests beyond
            them wait their turn without blocking the event loop. ``ROOMSCAN_THREADS`` (default 16).
        db_pool_size: catalog connections per process; 0 means ``threads`` + 4 (the detection worker, health
            checks), so a thread never waits for a connection another thread holds. ``ROOMSCAN_DB_POOL_SIZE``.
        db_pool_timeout: seconds a request waits for a connection before it is answered 503.
            ``ROOMSCAN_DB_POOL_TIMEOUT`` (default 10).
        max_inflight: requests the server works on at once; beyond that it answers 503 with ``Retry-After`` at
            once instead of queueing without bound. ``ROOMSCAN_MAX_INFLIGHT`` (default 64).
        photo_store: where photo bytes are kept: a local directory, or an fsspec URL such as
            ``s3://bucket/prefix``. ``ROOMSCAN_PHOTO_STORE``, default ``home/photos``.
        log_format: ``text`` (default) or ``json`` (one object per line, with each request's id).
            ``ROOMSCAN_LOG_FORMAT``.
        write_rate: writes (API and page forms) one key may make, as ``N/second|minute|hour|day``; more are
            answered 429 with ``Retry-After``. Counted per server process; admins are exempt.
            ``ROOMSCAN_WRITE_RATE`` (default ``120/minute``).
        upload_rate: uploads (photos, receipts) one key may make, counted apart from the other writes.
            ``ROOMSCAN_UPLOAD_RATE`` (default ``30/minute``).
        rate_limit_storage: where the counts live, as a ``limits`` storage URI: ``memory://`` (default: each
            server process counts on its own) or ``redis://host:6379`` (every process and machine shares them;
            needs ``pip install redis``). ``ROOMSCAN_RATE_LIMIT_STORAGE``.
        host_photo_quota: photos a host may have attached across their listings; an upload beyond it is refused
            whole (403). Listings an admin owns have none. ``ROOMSCAN_HOST_PHOTO_QUOTA`` (default 10000).
        mark_key: a radioactive-data marking key (``.npz``, ``roomscan.radioactive.MarkingKey``) kept on the server,
            never served. With ``mark_network`` set too, published photos get marked copies (``roomscan photos
            mark``) which public image URLs serve; owners and admins still get the originals.
            ``ROOMSCAN_MARK_KEY``.
        mark_network: the marking network file the key was made with. ``ROOMSCAN_MARK_NETWORK``.
        mark_set: which of the key's carriers marks published photos; needed only when the key has several.
            ``ROOMSCAN_MARK_SET``.
    """

    home: Path = field(default_factory=default_home)
    database_url: str | None = None
    api_key: str | None = None
    model: str = "owlv2"
    taxonomy: str | None = None
    room_types: str | None = None
    device: str = "auto"
    max_upload_bytes: int = 20 * 1024 * 1024
    max_files_per_upload: int = 20
    max_request_bytes: int = 100 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int = 16
    db_pool_size: int = 0
    db_pool_timeout: float = 10.0
    max_inflight: int = 64
    photo_store: str | None = None
    log_format: str = "text"
    write_rate: str = "120/minute"
    upload_rate: str = "30/minute"
    rate_limit_storage: str = "memory://"
    host_photo_quota: int = 10_000
    mark_key: str | None = None
    mark_network: str | None = None
    mark_set: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.db_pool_size == 0:
            object.__setattr__(self, "db_pool_size", self.threads + 4)
        for name in ("max_upload_bytes", "max_request_bytes", "max_pixels", "max_files_per_upload", "threads",
                     "db_pool_size", "db_pool_timeout", "max_inflight", "host_photo_quota"):
            if getattr(self, name) <= 0:
                raise RoomscanError(f"setting {name} must be positive, got {getattr(self, name)}")
        object.__setattr__(self, "log_format", self.log_format.strip().lower())
        if self.log_format not in ("text", "json"):
            raise RoomscanError(f"log format (ROOMSCAN_LOG_FORMAT, --log-format) must be text or json, "
                                f"got {self.log_format!r}")
        check_rate("ROOMSCAN_WRITE_RATE", self.write_rate)
        check_rate("ROOMSCAN_UPLOAD_RATE", self.upload_rate)
        if bool(self.mark_key) != bool(self.mark_network):
            raise RoomscanError("ROOMSCAN_MARK_KEY and ROOMSCAN_MARK_NETWORK go together: set both (the key and the "
                                "marking network it was made with) to publish marked copies, or neither")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ
        settings = cls(
            home=default_home(),
            database_url=env.get("ROOMSCAN_DATABASE_URL") or None,
            api_key=env.get("ROOMSCAN_API_KEY") or None,
            model=env.get("ROOMSCAN_MODEL") or "owlv2",
            taxonomy=env.get("ROOMSCAN_TAXONOMY") or None,
            room_types=env.get("ROOMSCAN_ROOM_TYPES") or None,
            device=env.get("ROOMSCAN_DEVICE") or "auto",
            max_upload_bytes=_megabytes(env, "ROOMSCAN_MAX_UPLOAD_MB", 20),
            max_request_bytes=_megabytes(env, "ROOMSCAN_MAX_REQUEST_MB", 100),
            threads=_positive(env, "ROOMSCAN_THREADS", 16),
            db_pool_size=_positive(env, "ROOMSCAN_DB_POOL_SIZE", 0) if env.get("ROOMSCAN_DB_POOL_SIZE") else 0,
            db_pool_timeout=_positive(env, "ROOMSCAN_DB_POOL_TIMEOUT", 10.0, float),
            max_inflight=_positive(env, "ROOMSCAN_MAX_INFLIGHT", 64),
            photo_store=env.get("ROOMSCAN_PHOTO_STORE") or None,
            log_format=env.get("ROOMSCAN_LOG_FORMAT") or "text",
            write_rate=env.get("ROOMSCAN_WRITE_RATE") or "120/minute",
            upload_rate=env.get("ROOMSCAN_UPLOAD_RATE") or "30/minute",
            rate_limit_storage=env.get("ROOMSCAN_RATE_LIMIT_STORAGE") or "memory://",
            host_photo_quota=_positive(env, "ROOMSCAN_HOST_PHOTO_QUOTA", 10_000),
            mark_key=env.get("ROOMSCAN_MARK_KEY") or None,
            mark_network=env.get("ROOMSCAN_MARK_NETWORK") or None,
            mark_set=env.get("ROOMSCAN_MARK_SET") or None,
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'roomscan.db'}"

    @property
    def publishes_marked(self) -> bool:
        """Whether public image URLs serve marked copies (``mark_key`` and ``mark_network`` set)."""
        return bool(self.mark_key and self.mark_network)

    @property
    def photo_dir(self) -> Path:
        return self.home / "photos"

    @property
    def resolved_photo_store(self) -> str:
        """``photo_store``, else the local directory ``home/photos``."""
        return self.photo_store or str(self.photo_dir)
