"""``roomscan active simulate``."""

from __future__ import annotations

from roomscan.cli.active import app  # noqa: F401  (the command registers itself on it)
